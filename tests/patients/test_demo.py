"""`make demo` meets the visit schedule at once: every state, a deviation, arm A surgery,
injections stopped by the end of treatment; and CRFs complete, signed, locked and questioned
(by the data manager and by an edit check); survival curves per arm for the statistician.
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
    signed = CRFSignature.objects.get(record__status="signed", record__participant__site=first_site)
    assert signed.signer == investigator and signed.printed_name == "Irène Investigator"
    queries = crf_selectors.query_worklist(investigator, rectal).queries
    assert {(q.raised_by, q.field_path) for q in queries} == {
        (data_manager, "weight_kg"), (None, "surgery_date")}
    assert DataQuery.objects.filter(raised_by=None, check_code="surgery_within_21_days").exists()


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


def test_the_demo_meets_the_visit_schedule_at_once(db, settings, django_user_model):
    settings.DEBUG = True
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    coordinator = django_user_model.objects.get(username="coordinator")
    every_state_for_the_demo_coordinator(coordinator)
    an_arm_a_participant_with_a_surgery_date_at_the_first_site(coordinator)
    injections_stopped_while_assessments_go_on()
    crfs_at_every_step_for_the_demo_investigator(
        django_user_model.objects.get(username="investigator"),
        django_user_model.objects.get(username="datamanager"))
    survival_curves_for_the_demo_statistician(
        django_user_model.objects.get(username="statistician"),
        django_user_model.objects.get(username="sponsor"))
    screening_in_the_flow_diagram_of_every_trial(coordinator)
    count, queries = Visit.objects.count(), DataQuery.objects.count()
    call_command("demo_setup", stdout=open("/dev/null", "w"))
    assert Visit.objects.count() == count, "a second run adds no visits"
    assert DataQuery.objects.count() == queries, "nor queries"
    screening_in_the_flow_diagram_of_every_trial(coordinator)  # nor a second showcase
