"""The visit schedule: made at randomisation from the protocol for the participant's arm,
recomputed when an anchor date is entered or corrected, ended by events, never deleted."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.models import AuditEvent
from crfs.facts import read_facts
from crfs.models import CRFRecord
from patients.models import Deviation, Visit, VisitState, VisitStatus
from patients.windows import add_months
from scheduling import services as scheduling
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories

TODAY = timezone.localdate


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def visits(p, code=None):
    qs = Visit.objects.filter(participant=p).order_by("target_date", "code", "occurrence")
    return list(qs.filter(code=code) if code else qs)


def codes(p) -> set[str]:
    return {v.code for v in visits(p)}


def randomised_on(p) -> dt.date:
    return timezone.localdate(p.allocation.randomised_at)


SURGERY = {"approach": "laparoscopy", "immunonutrition_given": False, "bowel_preparation": True}


def surgery_crf(p, on: dt.date, by, *, complete=False, reason="", record=None):
    return save_crf(p, "surgery", {**SURGERY, "surgery_date": on.isoformat()}, by=by,
                    complete=complete, reason=reason, record=record)


# --------------------------------------------------------------------------- at randomisation


def test_arm_a_gets_baseline_surgery_and_three_monthly_follow_up(arm_a):
    assert codes(arm_a) == {"baseline", "surgery", "follow_up"}
    r = randomised_on(arm_a)
    [baseline] = visits(arm_a, "baseline")
    assert (baseline.window_opens, baseline.target_date, baseline.window_closes) == (
        r - days(14), r, r)
    assert baseline.crfs == ["demographics", "qlq_c30", "qlq_cr29", "tumour_assessment"]
    [surgery] = visits(arm_a, "surgery")
    assert (surgery.window_opens, surgery.window_closes) == (r, r + days(21))
    follow_up = visits(arm_a, "follow_up")
    assert [v.occurrence for v in follow_up] == [1, 2]  # the planning horizon: 6 months ahead
    scheduling.extend_schedules(add_months(TODAY(), 24))
    follow_up = visits(arm_a, "follow_up")
    assert [v.occurrence for v in follow_up] == list(range(1, 9))  # months 3, 6, … 24
    assert [v.target_date for v in follow_up] == [
        add_months(r, 3 * n) for n in range(1, 9)]
    assert all(v.window_closes - v.window_opens == days(28) for v in follow_up)
    assert all(v.status == VisitStatus.PLANNED for v in visits(arm_a))


def test_surgery_anchored_visits_wait_for_the_surgery_date(arm_a):
    facts = read_facts(arm_a, arm_a.allocation)
    waiting = scheduling.pending_anchors(arm_a, "A", facts)
    assert [w["code"] for w in waiting] == ["surgery"]
    assert len(waiting[0]["visits"]) == 3


def test_arm_b_gets_chemotherapy_start_and_no_surgery_visits(arm_b):
    assert codes(arm_b) == {"baseline", "chemo_start_b", "follow_up"}
    r = randomised_on(arm_b)
    [chemo] = visits(arm_b, "chemo_start_b")
    assert (chemo.window_opens, chemo.window_closes) == (r, r + days(21))


def test_reminet_schedule_at_randomisation(reminet, reminet_coordinator):
    p = factories.randomised(reminet, by=reminet_coordinator)
    assert codes(p) == {"baseline", "first_injection", "tumour_assessment"}
    assert len(visits(p, "tumour_assessment")) == 2  # months 3 and 6: the planning horizon
    scheduling.extend_schedules(add_months(TODAY(), 60))
    assessments = visits(p, "tumour_assessment")
    assert len(assessments) == 20  # every 3 months to month 60, the end of follow-up
    assert all(v.crfs == ["tumour_assessment"] for v in assessments)


# --------------------------------------------------------------------------- anchors


def test_entering_the_surgery_date_schedules_the_post_operative_visits(arm_a, rectal_coordinator):
    surgery_day = TODAY()
    surgery_crf(arm_a, surgery_day, rectal_coordinator)  # a draft is enough: the date is known
    assert codes(arm_a) == {"baseline", "surgery", "follow_up", "postop_imaging", "chemo_start_a",
                            "clavien_dindo"}
    [imaging] = visits(arm_a, "postop_imaging")
    assert (imaging.anchor_code, imaging.anchor_date) == ("surgery", surgery_day)
    assert (imaging.window_opens, imaging.window_closes) == (surgery_day, surgery_day + days(28))
    [cd] = visits(arm_a, "clavien_dindo")
    assert (cd.target_date, cd.window_closes) == (surgery_day + days(30), surgery_day + days(44))
    event = AuditEvent.objects.get(action="visits.rescheduled")
    assert "date recorded" in event.message and "3 added" in event.message


def test_emergency_surgery_in_arm_b_opens_a_clavien_dindo_assessment(arm_b, rectal_coordinator):
    assert "emergency_clavien_dindo" not in codes(arm_b)
    day = TODAY()
    save_crf(arm_b, "emergency_surgery", {"surgery_date": day.isoformat(),
                                          "indication": "obstruction", "procedure": "Colostomy"},
             by=rectal_coordinator, complete=True)
    [cd] = visits(arm_b, "emergency_clavien_dindo")
    assert (cd.target_date, cd.window_opens, cd.window_closes) == (
        day + days(30), day + days(30), day + days(44))
    assert cd.crfs == ["clavien_dindo"]


def test_a_surgery_crf_in_arm_b_schedules_nothing(arm_b, rectal_coordinator):
    before = codes(arm_b)
    surgery_crf(arm_b, TODAY(), rectal_coordinator)
    assert codes(arm_b) == before


def test_correcting_the_surgery_date_moves_planned_visits_not_done_ones(
        rectal, rectal_coordinator):
    p = factories.randomised(rectal, by=rectal_coordinator, days_ago=40)
    assert p.allocation.arm.code == "A"
    r = randomised_on(p)
    record = surgery_crf(p, r + days(10), rectal_coordinator, complete=True)
    [imaging] = visits(p, "postop_imaging")
    scheduling.record_visit_done(imaging, done_on=r + days(20), by=rectal_coordinator)
    imaging.refresh_from_db()
    done_before = (imaging.target_date, imaging.window_opens, imaging.window_closes,
                   imaging.done_on)

    with pytest.raises(ValidationError, match="reason"):
        surgery_crf(p, r + days(12), rectal_coordinator, complete=True, record=record)
    surgery_crf(p, r + days(12), rectal_coordinator, complete=True, record=record,
                reason="Typo: operated on the 12th day")

    imaging.refresh_from_db()
    assert (imaging.target_date, imaging.window_opens, imaging.window_closes,
            imaging.done_on) == done_before, "a done visit is never moved"
    [chemo] = visits(p, "chemo_start_a")
    assert (chemo.anchor_date, chemo.target_date) == (r + days(12), r + days(12))
    [cd] = visits(p, "clavien_dindo")
    assert cd.target_date == r + days(42)
    event = AuditEvent.objects.filter(action="visits.rescheduled").order_by("-id").first()
    assert f"changed from {r + days(10):%Y-%m-%d} to {r + days(12):%Y-%m-%d}" in event.message
    assert "Typo: operated on the 12th day" in event.message
    assert ["clavien_dindo", 1, f"{r + days(40):%Y-%m-%d}", f"{r + days(42):%Y-%m-%d}"] in \
        event.detail["moved"]
    assert event.actor == rectal_coordinator
    # The visit's own history keeps the old and new dates.
    old, new = list(cd.history.order_by("history_id"))[-2:]
    assert (old.target_date, new.target_date) == (r + days(40), r + days(42))


def test_an_anchor_date_before_randomisation_is_refused_and_nothing_is_written(
        arm_a, rectal_coordinator):
    r = randomised_on(arm_a)
    before = len(visits(arm_a))
    with pytest.raises(ValidationError) as info:
        surgery_crf(arm_a, r - days(1), rectal_coordinator)
    assert "surgery_date" in info.value.message_dict
    assert "before randomisation" in info.value.message_dict["surgery_date"][0]
    assert not CRFRecord.objects.filter(participant=arm_a, crf_code="surgery").exists()
    assert len(visits(arm_a)) == before


def test_an_anchor_date_in_the_future_is_refused(arm_a, rectal_coordinator):
    with pytest.raises(ValidationError, match="in the future"):
        surgery_crf(arm_a, TODAY() + days(3), rectal_coordinator)
    assert not CRFRecord.objects.filter(participant=arm_a, crf_code="surgery").exists()


def test_an_anchor_date_cannot_be_removed_once_visits_hang_on_it(arm_a, rectal_coordinator):
    record = surgery_crf(arm_a, TODAY(), rectal_coordinator)
    with pytest.raises(ValidationError, match="correct it rather than removing it"):
        save_crf(arm_a, "surgery", {**SURGERY, "surgery_date": None}, by=rectal_coordinator,
                 complete=False, record=record)
    assert CRFRecord.objects.get(pk=record.pk).data["surgery_date"] == TODAY().isoformat()


def test_anchor_crfs_of_a_participant_not_yet_randomised_schedule_nothing(
        rectal, rectal_coordinator):
    p = factories.eligible_participant(rectal, by=rectal_coordinator)
    surgery_crf(p, TODAY(), rectal_coordinator)
    assert not Visit.objects.filter(participant=p).exists()


# --------------------------------------------------------------------------- events (REMINET)


def _reminet_on_injections(reminet, coordinator, *, days_ago=200):
    p = factories.randomised(reminet, by=coordinator, days_ago=days_ago)
    r = randomised_on(p)
    factories.first_injection(p, r + days(5), by=coordinator)
    return p, r


def test_first_injection_schedules_28_day_injections_to_the_end_of_follow_up(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    scheduling.extend_schedules(add_months(TODAY(), 60))
    injections = visits(p, "injection")
    first = r + days(5)
    assert injections[0].target_date == first + days(28)
    assert [v.target_date - first for v in injections[:3]] == [days(28), days(56), days(84)]
    assert all((v.window_opens, v.window_closes) == (v.target_date - days(3),
                                                     v.target_date + days(3)) for v in injections)
    horizon = add_months(r, 60)  # trial.follow_up_months
    assert injections[-1].target_date <= horizon < injections[-1].target_date + days(28)


# --------------------------------------------------------------------------- planning horizon


def created(p) -> list[tuple[str, int, dt.date]]:
    return sorted((v.code, v.occurrence, v.target_date) for v in visits(p))


def test_visits_are_created_six_months_ahead_and_the_daily_job_adds_the_next(
        reminet, reminet_coordinator, settings):
    assert settings.SCHEDULE_PLANNING_MONTHS == 6
    p, r = _reminet_on_injections(reminet, reminet_coordinator, days_ago=5)
    horizon = add_months(TODAY(), 6)
    assert max(v.target_date for v in visits(p)) <= horizon
    assert [v.occurrence for v in visits(p, "injection")] == [1, 2, 3, 4, 5, 6]
    p.refresh_from_db()
    assert p.schedule_planned_through == horizon

    assert scheduling.extend_schedules(TODAY() + days(10)) == 0, "not due: 5 months left"
    later = TODAY() + days(40)
    made = scheduling.extend_schedules(later)
    assert made >= 1
    assert max(v.target_date for v in visits(p)) <= add_months(later, 6)
    p.refresh_from_db()
    assert p.schedule_planned_through == add_months(later, 6)
    assert scheduling.extend_schedules(later) == 0, "a second run the same day adds nothing"
    extended = Visit.history.filter(id__in=[v.pk for v in visits(p)],
                                    history_change_reason__startswith="schedule extended")
    assert extended.count() == made


def test_extending_month_by_month_gives_the_whole_plan(reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator, days_ago=5)
    day = TODAY()
    while day < add_months(r, 64):
        day += days(30)
        scheduling.extend_schedules(day)
    facts = read_facts(p, p.allocation)
    plan = scheduling.plan_schedule(p.definition, p.allocation.arm.code, facts)
    assert created(p) == sorted((v.code, v.occurrence, v.window.target) for v in plan)
    p.refresh_from_db()
    assert p.schedule_planned_through is None, "the whole schedule exists"
    assert scheduling.extend_schedules(day) == 0


def test_no_visit_is_created_past_an_ending_event(reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator, days_ago=5)
    save_crf(p, "progression", {"progression_date": TODAY().isoformat(), "type": "clinical",
                                "site": ["metastatic"]}, by=reminet_coordinator, complete=True)
    scheduling.extend_schedules(add_months(TODAY(), 60))
    assert all(v.status == VisitStatus.NOT_APPLICABLE for v in visits(p, "injection"))
    assert not Visit.objects.filter(participant=p, target_date__gt=add_months(
        TODAY(), 6), status=VisitStatus.PLANNED).exclude(code="survival_follow_up").exists()
    p.refresh_from_db()
    assert p.schedule_planned_through is None


def test_extend_schedules_command(reminet, reminet_coordinator, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    p, r = _reminet_on_injections(reminet, reminet_coordinator, days_ago=5)
    call_command("extend_schedules", "--date", (TODAY() + days(60)).isoformat())
    assert "visit(s) created" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not a date"):
        call_command("extend_schedules", "--date", "31/12/2026")


def test_end_of_treatment_stops_injections_but_tumour_assessments_continue(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    end = r + days(120)
    save_crf(p, "end_of_treatment", {"end_date": end.isoformat(), "reason": "toxicity"},
             by=reminet_coordinator, complete=True)
    injections = visits(p, "injection")
    before, after = ([v for v in injections if v.target_date <= end],
                     [v for v in injections if v.target_date > end])
    assert before and after
    assert all(v.status == VisitStatus.PLANNED for v in before), "due before the end: kept"
    assert all(v.status == VisitStatus.NOT_APPLICABLE and v.closed_by == "end_of_treatment"
               for v in after)
    assert "End of study treatment" in after[0].status_reason
    assert Visit.objects.filter(participant=p, code="injection").count() == len(injections), \
        "never deleted"
    assert all(v.status == VisitStatus.PLANNED for v in visits(p, "tumour_assessment"))


def test_a_draft_end_of_treatment_stops_nothing(reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    save_crf(p, "end_of_treatment", {"end_date": (r + days(60)).isoformat()},
             by=reminet_coordinator, complete=False)
    assert all(v.status == VisitStatus.PLANNED for v in visits(p, "injection"))


def test_correcting_the_end_of_treatment_date_plans_the_injections_again(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    record = save_crf(p, "end_of_treatment", {"end_date": (r + days(60)).isoformat(),
                                              "reason": "toxicity"},
                      by=reminet_coordinator, complete=True)
    closed = sum(v.status == VisitStatus.NOT_APPLICABLE for v in visits(p, "injection"))
    save_crf(p, "end_of_treatment", {"end_date": (r + days(150)).isoformat(),
                                     "reason": "toxicity"},
             by=reminet_coordinator, complete=True, record=record, reason="Wrong month")
    reopened = [v for v in visits(p, "injection") if r + days(60) < v.target_date <= r + days(150)]
    assert reopened and all(v.status == VisitStatus.PLANNED and not v.closed_by for v in reopened)
    assert sum(v.status == VisitStatus.NOT_APPLICABLE
               for v in visits(p, "injection")) == closed - len(reopened)


def test_progression_stops_injections_and_tumour_assessments(reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    day = r + days(100)
    save_crf(p, "progression", {"progression_date": day.isoformat(), "type": "radiological",
                                "site": ["metastatic"]}, by=reminet_coordinator, complete=True)
    for code in ("injection", "tumour_assessment"):
        later = [v for v in visits(p, code) if v.target_date > day]
        assert later and all(v.closed_by == "progression" for v in later), code


def test_after_progression_survival_follow_up_every_3_months_until_death(
        reminet, reminet_coordinator):
    # DESIGN.md: survival is followed after progression until death or the end of the study.
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=500)
    r = randomised_on(p)
    factories.first_injection(p, r, by=reminet_coordinator)
    assert not visits(p, "survival_follow_up"), "none while on treatment"
    progressed = add_months(r, 8)
    save_crf(p, "progression", {"progression_date": progressed.isoformat(),
                                "type": "radiological", "site": ["metastatic"]},
             by=reminet_coordinator, complete=True)
    scheduling.extend_schedules(add_months(TODAY(), 60))
    for code in ("injection", "tumour_assessment"):
        assert not [v for v in visits(p, code) if v.target_date > progressed
                    and v.status != VisitStatus.NOT_APPLICABLE], code
    follow_up = visits(p, "survival_follow_up")
    assert [(v.anchor_code, v.anchor_date) for v in follow_up[:1]] == [
        ("progression", progressed)]
    assert [v.target_date for v in follow_up] == [
        add_months(progressed, 3 * n) for n in range(1, len(follow_up) + 1)]
    assert follow_up[-1].target_date <= add_months(r, 60) < add_months(
        follow_up[-1].target_date, 3), "to the end of follow-up"
    assert all(v.status == VisitStatus.PLANNED and v.crfs == ["last_news"] for v in follow_up)
    assert all((v.window_opens, v.window_closes) == (v.target_date - days(14),
                                                     v.target_date + days(14))
               for v in follow_up)

    died = add_months(progressed, 7)
    save_crf(p, "death", {"death_date": died.isoformat(), "cause": "disease_progression"},
             by=reminet_coordinator, complete=True)
    follow_up = visits(p, "survival_follow_up")
    assert [v.status for v in follow_up if v.target_date <= died] == [VisitStatus.PLANNED] * 2
    later = [v for v in follow_up if v.target_date > died]
    assert later and all(v.closed_by == "death" for v in later)


def test_survival_follow_up_starts_at_the_end_of_treatment_when_it_comes_first(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    end = r + days(120)
    save_crf(p, "end_of_treatment", {"end_date": end.isoformat(), "reason": "toxicity"},
             by=reminet_coordinator, complete=True)
    save_crf(p, "progression", {"progression_date": (end + days(60)).isoformat(),
                                "type": "clinical", "site": ["metastatic"]},
             by=reminet_coordinator, complete=True)
    [first, *_] = visits(p, "survival_follow_up")
    assert (first.anchor_code, first.anchor_date, first.target_date) == (
        "end_of_treatment", end, add_months(end, 3))


def test_survival_follow_up_waits_for_progression_or_end_of_treatment(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    waiting = scheduling.pending_anchors(p, p.allocation.arm.code, read_facts(p, p.allocation))
    assert [(w["code"], w["label"]) for w in waiting] == [
        ("progression", "Disease progression or End of study treatment")]


def test_rectal_survival_follow_up_continues_after_the_24_month_visits_until_death(
        rectal, rectal_coordinator):
    # DESIGN.md: survival is followed until death or the end of the study; the rectal trial's
    # 3-monthly visits end at month 24 (progression ends none of them), the contacts follow.
    p = factories.randomised(rectal, by=rectal_coordinator, days_ago=900)
    r = randomised_on(p)
    scheduling.extend_schedules(add_months(TODAY(), 60))
    follow_up = visits(p, "survival_follow_up")
    assert [v.target_date for v in follow_up] == [add_months(r, m) for m in range(27, 61, 3)]
    assert all(v.crfs == ["last_news"] and v.status == VisitStatus.PLANNED for v in follow_up)
    assert max(v.target_date for v in visits(p, "follow_up")) == add_months(r, 24)

    died = r + days(880)
    save_crf(p, "death", {"death_date": died.isoformat(), "cause": "disease_progression"},
             by=rectal_coordinator, complete=True)
    statuses = [(v.target_date <= died, v.status) for v in visits(p, "survival_follow_up")]
    assert statuses[0] == (True, VisitStatus.PLANNED)
    assert all(s == VisitStatus.NOT_APPLICABLE for before, s in statuses if not before)


def test_death_ends_every_later_visit_and_cannot_precede_a_done_visit(
        reminet, reminet_coordinator):
    p, r = _reminet_on_injections(reminet, reminet_coordinator)
    [baseline] = visits(p, "baseline")
    scheduling.record_visit_done(baseline, done_on=r, by=reminet_coordinator)
    [first] = visits(p, "first_injection")
    scheduling.record_visit_done(first, done_on=r + days(5), by=reminet_coordinator)
    death = {"cause": "disease_progression"}
    with pytest.raises(ValidationError, match="before the visit “First injection”"):
        save_crf(p, "death", {**death, "death_date": (r + days(2)).isoformat()},
                 by=reminet_coordinator, complete=True)
    save_crf(p, "death", {**death, "death_date": (r + days(40)).isoformat()},
             by=reminet_coordinator, complete=True)
    later = [v for v in visits(p) if v.target_date > r + days(40)]
    assert later and all(v.status == VisitStatus.NOT_APPLICABLE and v.closed_by == "death"
                         for v in later)


# --------------------------------------------------------------------------- done, deviations


def test_a_visit_done_within_its_window_is_no_deviation(arm_a, rectal_coordinator):
    [baseline] = visits(arm_a, "baseline")
    scheduling.record_visit_done(baseline, done_on=TODAY(), by=rectal_coordinator)
    baseline.refresh_from_db()
    assert (baseline.status, baseline.done_on) == (VisitStatus.DONE, TODAY())
    assert baseline.state(TODAY()) == VisitState.DONE
    assert not Deviation.objects.exists()


def test_a_visit_done_late_is_a_deviation_with_the_days_late(rectal, rectal_coordinator):
    p = factories.randomised(rectal, by=rectal_coordinator, days_ago=30)
    [surgery] = visits(p, "surgery")  # window: randomisation to day 21
    scheduling.record_visit_done(surgery, done_on=TODAY() - days(4), by=rectal_coordinator)
    [deviation] = Deviation.objects.all()
    assert (deviation.rule, deviation.days_outside, deviation.days_late) == ("visit_window", 5, 5)
    assert deviation.visit == surgery and deviation.participant == p
    assert "5 day(s) after its window closed" in deviation.description
    assert AuditEvent.objects.filter(action="deviation.detected").count() == 1


def test_a_visit_done_early_is_a_deviation_with_the_days_early(arm_a, rectal_coordinator):
    [first] = visits(arm_a, "follow_up")[:1]
    scheduling.record_visit_done(first, done_on=TODAY(), by=rectal_coordinator)
    deviation = Deviation.objects.get()
    assert deviation.days_outside == (TODAY() - first.window_opens).days < 0
    assert deviation.days_early == (first.window_opens - TODAY()).days
    assert "before its window opened" in deviation.description


def test_correcting_a_done_date_needs_a_reason_and_voids_the_old_deviation(
        rectal, rectal_coordinator):
    p = factories.randomised(rectal, by=rectal_coordinator, days_ago=30)
    [surgery] = visits(p, "surgery")
    scheduling.record_visit_done(surgery, done_on=TODAY() - days(2), by=rectal_coordinator)
    with pytest.raises(ValidationError) as info:
        scheduling.record_visit_done(surgery, done_on=TODAY() - days(20), by=rectal_coordinator)
    assert "reason" in info.value.message_dict
    scheduling.record_visit_done(surgery, done_on=TODAY() - days(20), by=rectal_coordinator,
                                 reason="Date copied from the wrong letter")
    old, = Deviation.objects.exclude(voided_at=None)
    assert "Date copied from the wrong letter" in old.void_reason
    assert not Deviation.objects.filter(voided_at=None).exists(), "now within the window"
    assert Deviation.objects.count() == 1, "voided, never deleted"


@pytest.mark.parametrize("done_on, message", [
    (lambda r: TODAY() + days(1), "cannot be in the future"),
    (lambda r: r - days(1), "before randomisation"),
])
def test_impossible_done_dates_are_refused(arm_a, rectal_coordinator, done_on, message):
    [surgery] = visits(arm_a, "surgery")
    with pytest.raises(ValidationError) as info:
        scheduling.record_visit_done(surgery, done_on=done_on(randomised_on(arm_a)),
                                     by=rectal_coordinator)
    assert message in info.value.message_dict["done_on"][0]
    surgery.refresh_from_db()
    assert surgery.status == VisitStatus.PLANNED and surgery.done_on is None


def test_the_baseline_visit_may_be_done_before_randomisation_but_not_before_screening(
        rectal, rectal_coordinator):
    p = factories.randomised(rectal, by=rectal_coordinator)  # screened 7 days ago
    [baseline] = visits(p, "baseline")
    scheduling.record_visit_done(baseline, done_on=TODAY() - days(5), by=rectal_coordinator)
    with pytest.raises(ValidationError, match="before screening"):
        scheduling.record_visit_done(baseline, done_on=TODAY() - days(9), by=rectal_coordinator,
                                     reason="x")


def test_missed_and_not_applicable_need_a_reason_and_the_right_moment(arm_a, rectal_coordinator):
    [baseline] = visits(arm_a, "baseline")
    last = visits(arm_a, "follow_up")[-1]
    with pytest.raises(ValidationError) as info:
        scheduling.mark_visit_missed(baseline, by=rectal_coordinator, reason="  ")
    assert "reason" in info.value.message_dict
    with pytest.raises(ValidationError, match="cannot be missed yet"):
        scheduling.mark_visit_missed(last, by=rectal_coordinator, reason="Patient moved away")
    scheduling.mark_visit_missed(baseline, by=rectal_coordinator, reason="Patient unwell")
    scheduling.mark_visit_not_applicable(last, by=rectal_coordinator, reason="Patient moved away")
    last.refresh_from_db()
    assert (last.status, last.status_reason, last.closed_by) == (
        VisitStatus.NOT_APPLICABLE, "Patient moved away", "")
    with pytest.raises(ValidationError, match="reopen it first"):
        scheduling.record_visit_done(last, done_on=TODAY(), by=rectal_coordinator)
    scheduling.reopen_visit(last, by=rectal_coordinator, reason="Came back")
    last.refresh_from_db()
    assert last.status == VisitStatus.PLANNED


def test_only_a_coordinator_of_the_site_changes_visits(arm_a, rectal, make_user):
    [baseline] = visits(arm_a, "baseline")
    investigator = make_user("investigator", rectal, arm_a.site)
    other_site = rectal.sites.order_by("code").last()
    elsewhere = make_user("coordinator", rectal, other_site)
    for user in (investigator, elsewhere):
        with pytest.raises(PermissionDenied):
            scheduling.record_visit_done(baseline, done_on=TODAY(), by=user)


def test_unscheduled_visits_are_numbered_and_checked(arm_a, rectal_coordinator):
    first = scheduling.add_unscheduled_visit(arm_a, on=TODAY(), reason="Toxicity check",
                                             crfs=["adverse_events"], by=rectal_coordinator)
    second = scheduling.add_unscheduled_visit(arm_a, on=TODAY() + days(3), reason="Phone call",
                                              by=rectal_coordinator)
    assert (first.occurrence, second.occurrence) == (1, 2)
    assert first.unscheduled and first.title == "Unscheduled visit #1"
    assert (first.window_opens, first.window_closes) == (TODAY(), TODAY())
    with pytest.raises(ValidationError) as info:
        scheduling.add_unscheduled_visit(arm_a, on=randomised_on(arm_a) - days(1), reason="",
                                         crfs=["nope"], by=rectal_coordinator)
    assert set(info.value.message_dict) == {"on", "reason", "crfs"}
    assert Visit.objects.filter(participant=arm_a, unscheduled=True).count() == 2


def test_visits_are_never_deleted(arm_a):
    from django.db.models import ProtectedError

    with pytest.raises(ProtectedError):
        visits(arm_a)[0].delete()


def test_rescheduling_twice_with_the_same_facts_changes_nothing(arm_a, rectal_coordinator):
    surgery_crf(arm_a, TODAY(), rectal_coordinator)
    snapshot = [(v.code, v.occurrence, v.target_date, v.status) for v in visits(arm_a)]
    change = scheduling.reschedule_from(arm_a, "surgery", by=rectal_coordinator)
    assert not change
    assert [(v.code, v.occurrence, v.target_date, v.status) for v in visits(arm_a)] == snapshot


def test_the_daily_extension_runs_as_a_celery_task_on_the_beat_schedule(
        reminet, reminet_coordinator, settings):
    from scheduling import tasks

    entry = settings.CELERY_BEAT_SCHEDULE["extend-schedules"]
    assert entry["task"] == tasks.extend_schedules.name
    p, r = _reminet_on_injections(reminet, reminet_coordinator, days_ago=5)
    before = len(visits(p))
    made = tasks.extend_schedules.delay((TODAY() + days(60)).isoformat()).get()
    assert made > 0 and len(visits(p)) == before + made
