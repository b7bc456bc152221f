"""`make demo` meets the visit schedule at once: every state, a deviation, arm A surgery,
injections stopped by the end of treatment; and CRFs complete, signed, locked and questioned
(by the data manager, by an edit check, and on a scan showing progression without its form); a
REMINET participant followed after progression and an arm-A participant re-baselined; survival
curves per arm for the statistician.
(One test: building the demo takes a while.)"""
from __future__ import annotations

from django.core.management import call_command
from django.utils import timezone

from crfs import selectors as crf_selectors
from crfs.models import CRFRecord, CRFSignature, DataQuery
from patients import selectors
from patients.models import Deviation, Visit, VisitStatus
from trials.models import Trial


def every_state_for_the_demo_coordinator(coordinator):
    for trial in Trial.objects.all():
        worklist = selectors.worklist(coordinator, trial)
        assert worklist.overdue and worklist.open_now, trial
    assert any(selectors.worklist(coordinator, t).upcoming for t in Trial.objects.all())
    assert set(Visit.objects.values_list("status", flat=True)) == {s.value for s in VisitStatus}
    assert Deviation.objects.filter(participant__site__memberships__user=coordinator).exists()


def an_arm_a_participant_with_a_surgery_date_at_the_first_site(coordinator):
    rectal = Trial.objects.get(slug="rectal-resection")
    first_site = coordinator.memberships.get(trial=rectal).site
    record = CRFRecord.objects.filter(crf_code="surgery", participant__site=first_site,
                                      participant__allocation__arm__code="A").first()
    assert record is not None and record.data["surgery_date"]
    post_op = Visit.objects.filter(participant=record.participant, anchor_code="surgery")
    assert {v.code for v in post_op} == {"postop_imaging", "chemo_start_a", "clavien_dindo"}


def injections_stopped_while_assessments_go_on():
    stopped = Visit.objects.filter(closed_by="end_of_treatment").first()
    assert stopped is not None and stopped.code == "injection"
    later = Visit.objects.filter(participant=stopped.participant, code="tumour_assessment",
                                 target_date__gt=timezone.localdate())
    assert later and all(v.status == VisitStatus.PLANNED for v in later)


def crfs_at_every_step_for_the_demo_investigator(investigator, data_manager):
    rectal = Trial.objects.get(slug="rectal-resection")
    first_site = investigator.memberships.get(trial=rectal).site
    here = CRFRecord.objects.filter(participant__site=first_site)
    assert {"complete", "signed", "locked"} <= set(here.values_list("status", flat=True))
    signed = (CRFSignature.objects.exclude(meaning="eligibility")
              .get(record__status="signed", record__participant__site=first_site))
    assert signed.signer == investigator and signed.printed_name == "Irène Investigator"
    queries = crf_selectors.query_worklist(investigator, rectal).queries
    assert {(q.raised_by, q.field_path) for q in queries} == {
        (data_manager, "weight_kg"), (None, "surgery_date"), (None, "assessment_date")}
    assert DataQuery.objects.filter(raised_by=None, check_code="surgery_within_21_days").exists()


def one_truth_for_each_event(investigator):
    """Issue 16: at each trial's first site, one participant whose scan shows progression has no
    progression form yet: the automatic query on the scan asks for it, and PFS counts the scan.
    Every other progression and death agrees with its records (their queries closed)."""
    from outcomes.endpoints import derive_endpoints

    for trial in Trial.objects.all():
        first_site = investigator.memberships.get(trial=trial).site
        open_ = DataQuery.objects.filter(record__participant__trial=trial, raised_by=None,
                                         check_code__startswith="agree.", status="open")
        [query] = open_
        assert query.check_code == "agree.progression.tumour_assessment", trial
        assert query.record.participant.site == first_site and query.record.data[
            "overall_response"] == "pd"
        pfs = next(v for v in derive_endpoints(trial)["pfs"]
                   if v.participant_id == query.record.participant_id)
        assert pfs.event and pfs.date.isoformat() == query.record.data["assessment_date"]


def followed_after_progression_and_re_baselined():
    """Issue 16: a REMINET participant followed after progression (last-news forms after the
    progression date); the rectal worked case of an arm-A participant re-baselined after surgery
    (the post-operative CT, the primary marked surgically removed, is the new baseline)."""
    followed = [r for r in CRFRecord.objects.filter(participant__trial__slug="reminet",
                                                    crf_code="last_news")
                if CRFRecord.objects.filter(
                    participant=r.participant, crf_code="progression",
                    data__progression_date__lt=r.data["contact_date"]).exists()]
    assert followed and all(r.data["vital_status"] == "alive" for r in followed)
    scans = sorted(CRFRecord.objects.filter(participant__study_id="CAP-DOR-0001",
                                            crf_code="tumour_assessment"),
                   key=lambda r: r.data["assessment_date"])
    assert scans[0].data["sum_of_diameters"] == "70.0"
    post_op = scans[1].data
    assert post_op["sum_of_diameters"] == "30.0" and post_op["overall_response"] is None
    assert any(row.get("surgically_removed") for row in post_op["target_lesions"])
    assert all(s.data["overall_response"] == "pr" for s in scans[2:]) and scans[2:]


def eligibility_confirmed_by_each_sites_investigator_but_one_awaiting(coordinator,
                                                                      investigator):
    """Every randomised demo participant's eligibility was confirmed by an investigator of
    their site; at the coordinator's site one participant awaits the confirmation."""
    from randomisation.selectors import to_randomise

    for trial in Trial.objects.all():
        confirmations = CRFSignature.objects.filter(meaning="eligibility",
                                                    record__participant__trial=trial)
        assert confirmations.count() >= trial.participants.filter(
            allocation__isnull=False).count()
        for c in confirmations.select_related("record__participant"):
            assert c.signer.memberships.filter(trial=trial, role="investigator",
                                               site=c.record.participant.site).exists()
        states = {c.state for c in to_randomise(coordinator, trial)}
        assert "awaiting_confirmation" in states, trial
        first_site = investigator.memberships.get(trial=trial).site
        assert confirmations.filter(record__participant__site=first_site,
                                    signer=investigator).exists()


def survival_curves_for_the_demo_statistician(statistician, sponsor):
    from outcomes.analysis import outcomes_for

    for trial in Trial.objects.all():
        view = outcomes_for(statistician, trial)
        assert view.arm_level and view.randomised >= 20, trial
        for section in view.sections:
            assert all(g.events >= 1 for g in section.analysis.groups), (trial, section.code)
            assert section.logrank is not None
        primary = next(s for s in view.sections if s.analysis.primary)
        assert all(g.landmarks[0].evaluable >= 2 for g in primary.analysis.groups), trial
        assert view.safety, "adverse events (and Clavien-Dindo in the rectal trial)"
    reminet = Trial.objects.get(slug="reminet")
    assert not outcomes_for(sponsor, reminet).arm_level  # pooled for the blinded sponsor
    rectal = outcomes_for(statistician, Trial.objects.get(slug="rectal-resection"))
    assessed = dict(rectal.safety[-1].rows)["Assessed"]
    assert int(assessed[0]) >= 3, "arm A's Clavien-Dindo assessments"


def saes_on_time_overdue_late_and_a_susar(investigator, officer):
    """Issue 18: at each trial's first site, SAE reports at every step of the clock."""
    from safety import selectors as safety

    for trial in Trial.objects.all():
        worklist = safety.worklist(investigator, trial)
        assert len(worklist.overdue) == 1 and 5 < worklist.overdue[0].hours_late < 7, trial
        assert len(worklist.late) == 1 and worklist.late[0].hours_late >= 15, trial
        assert any(r.reported_at and r.late_by() is None for r in safety.reports_for(
            investigator, trial)), "one on time"
        [susar] = safety.worklist(officer, trial).susars
        assert susar.assessment.susar_due is not None
    # Ticking "serious" is the investigator's: the demo no longer derives it from the grade.
    assert not CRFRecord.objects.filter(crf_code="adverse_events", data__events__0__grade=4,
                                        sae_reports__isnull=True,
                                        data__events__0__serious=True).exists()


def consent_history_for_the_demo_coordinator(coordinator):
    """Issue 17: each withdrawal level at the coordinator's site, and REMINET amended with
    re-consents pending there."""
    from patients.models import Withdrawal

    for trial in Trial.objects.all():
        site = coordinator.memberships.get(trial=trial).site
        assert set(Withdrawal.objects.filter(participant__site=site)
                   .values_list("level", flat=True)) == {"treatment", "visits", "consent"}
    reminet = Trial.objects.get(slug="reminet")
    pending = selectors.reconsent_worklist(coordinator, reminet)
    assert pending.exists()
    assert all(p.protocol_version_id != reminet.current_version_id for p in pending)
    assert reminet.participants.filter(consent_version="2.0",
                                       protocol_version=reminet.current_version).exists()


def screening_in_the_flow_diagram_of_every_trial(coordinator):
    """Issue 17: screening log entries, screen failures with their criteria, a re-screening
    where the protocol allows it, one randomised in error; the coordinator's own site has its
    log entries and a screen failure."""
    from patients.models import ScreeningEpisode, ScreeningLogEntry, Status
    from randomisation.models import RandomisedInError

    for trial in Trial.objects.all():
        assert ScreeningLogEntry.objects.filter(trial=trial).count() >= 2 * trial.sites.count()
        assert trial.participants.filter(status=Status.SCREEN_FAILED).exists(), trial
        assert RandomisedInError.objects.filter(allocation__trial=trial).count() == 1, trial
        site = coordinator.memberships.get(trial=trial).site
        assert ScreeningLogEntry.objects.filter(site=site).exists()
    assert ScreeningEpisode.objects.filter(participant__trial__slug="reminet").count() == 1
    assert not ScreeningEpisode.objects.filter(participant__trial__slug="rectal-resection")


def reminet_supply_at_the_first_site(django_user_model, outbox):
    """Issue 19: REMINET's sealed kit list (the statistician's), every site stocked, one receipt
    with a damaged kit; every injection form records the kit assigned at its visit, dispensed;
    a damaged kit replaced with its reason; an excursion's kits quarantined and the resupply
    request it raised, e-mailed once; the supply manager needs two factors; the rectal trial
    has no kit, no supply manager."""
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from randomisation import kitlist
    from supply.models import (Excursion, Kit, KitAssignment, KitList, KitRelease,
                               KitStatus, ResupplyRequest, ShipmentKit)
    from trials.policy import requires_two_factor

    reminet = Trial.objects.get(slug="reminet")
    rectal = Trial.objects.get(slug="rectal-resection")
    [kit_list] = KitList.objects.filter(trial=reminet)
    assert kit_list.status == "sealed" and kitlist.verify(kit_list)
    assert kit_list.created_by.username == "statistician"
    for site in reminet.sites.filter(active=True):
        assert Kit.objects.filter(site=site).exclude(status=KitStatus.IN_TRANSIT).exists(), site
    assert ShipmentKit.objects.filter(shipment__trial=reminet, outcome="damaged").count() == 1
    injections = CRFRecord.objects.filter(participant__trial=reminet, crf_code="injection",
                                          data__dose_given=True).select_related("visit")
    assert injections.count() > 20
    for record in injections:
        [current] = KitAssignment.objects.filter(visit=record.visit, release__isnull=True)
        assert current.kit.number == record.data["kit_code"], record.pk
        assert current.kit.status == KitStatus.DISPENSED
        assert current.kit.arm_id == record.participant.allocation.arm_id
    [replaced] = KitRelease.objects.filter(assignment__participant__trial=reminet)
    assert replaced.kind == "damaged" and replaced.reason
    assert KitAssignment.objects.filter(visit=replaced.assignment.visit,
                                        release__isnull=True).exists()
    [excursion] = Excursion.objects.filter(trial=reminet)
    assert excursion.decided_at is None and excursion.kits.count() > 10
    assert {k.status for k in excursion.kits.all()} == {KitStatus.QUARANTINED}
    assert len({k.arm_id for k in excursion.kits.all()}) == 2, "the fridge held both arms"
    [request] = ResupplyRequest.objects.filter(trial=reminet)
    assert request.site == excursion.site and request.notified_at is not None
    sent = [m for m in outbox if "Resupply request" in m.subject]
    assert len(sent) == 1 and "supply@demo.invalid" in sent[0].to
    supply = django_user_model.objects.get(username="supply")
    assert [(m.trial, m.role, m.site) for m in supply.memberships.all()] == [
        (reminet, "supply_manager", None)]
    assert requires_two_factor(supply) and TOTPDevice.objects.filter(user=supply).exists()
    assert not KitList.objects.filter(trial=rectal).exists()
    assert not Kit.objects.filter(trial=rectal).exists()


def the_monitors_work_at_the_first_site(monitor):
    """Forms verified against the source, a verified weight changed since (its mark removed),
    a monitoring visit with findings: in each trial, at the monitor's site."""
    from crfs.models import MonitoringVisit, SourceVerification
    from trials.policy import requires_two_factor

    assert not requires_two_factor(monitor)
    for trial in Trial.objects.all():
        site = monitor.memberships.get(trial=trial).site
        marks = SourceVerification.objects.filter(record__participant__site=site)
        assert marks.filter(voided_at__isnull=True, field_path="").count() >= 2, trial
        voided = marks.filter(voided_at__isnull=False)
        assert [m.field_path for m in voided] == ["weight_kg"], trial
        assert marks.filter(voided_at__isnull=True, field_path="height_cm").exists()
        [visit] = MonitoringVisit.objects.filter(site=site)
        assert visit.monitor == monitor and "Delegation log" in visit.findings


def test_the_demo_meets_the_visit_schedule_at_once(db, settings, django_user_model, mailoutbox,
                                                    django_capture_on_commit_callbacks):
    settings.DEBUG = True
    # What runs after each commit in the demo (the stock checks, the resupply e-mail) runs here
    # at the end of the command: the test's transaction never commits.
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_setup", stdout=open("/dev/null", "w"))
    reminet_supply_at_the_first_site(django_user_model, mailoutbox)
    coordinator = django_user_model.objects.get(username="coordinator")
    every_state_for_the_demo_coordinator(coordinator)
    an_arm_a_participant_with_a_surgery_date_at_the_first_site(coordinator)
    injections_stopped_while_assessments_go_on()
    consent_history_for_the_demo_coordinator(coordinator)
    crfs_at_every_step_for_the_demo_investigator(
        django_user_model.objects.get(username="investigator"),
        django_user_model.objects.get(username="datamanager"))
    one_truth_for_each_event(django_user_model.objects.get(username="investigator"))
    followed_after_progression_and_re_baselined()
    eligibility_confirmed_by_each_sites_investigator_but_one_awaiting(
        coordinator, django_user_model.objects.get(username="investigator"))
    survival_curves_for_the_demo_statistician(
        django_user_model.objects.get(username="statistician"),
        django_user_model.objects.get(username="sponsor"))
    screening_in_the_flow_diagram_of_every_trial(coordinator)
    saes_on_time_overdue_late_and_a_susar(
        django_user_model.objects.get(username="investigator"),
        django_user_model.objects.get(username="safety"))
    the_monitors_work_at_the_first_site(django_user_model.objects.get(username="monitor"))
    count, queries = Visit.objects.count(), DataQuery.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_setup", stdout=open("/dev/null", "w"))
    the_monitors_work_at_the_first_site(django_user_model.objects.get(username="monitor"))
    assert Visit.objects.count() == count, "a second run adds no visits"
    assert DataQuery.objects.count() == queries, "nor queries"
    screening_in_the_flow_diagram_of_every_trial(coordinator)  # nor a second showcase
    reminet_supply_at_the_first_site(django_user_model, mailoutbox)  # nor more kits or mails
