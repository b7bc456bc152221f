"""Endpoints derived from hand-built histories: censoring at the last evidence, death without
progression, progression then death, the rectal time to progression's arm rule, administrative
censoring at the protocol's horizon; a whole trial in three queries."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from demo.data import crf_answers
from outcomes.endpoints import DAYS_PER_MONTH, derive_endpoints
from patients.models import Visit
from scheduling import services as scheduling
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from trials.models import crf_of

TODAY = timezone.localdate()


def months(days: int) -> float:
    return days / DAYS_PER_MONTH


@pytest.fixture
def randomise(rectal, coordinator):
    """``randomise(days_ago)``: the next participant of the first site; arms alternate A, B."""
    def make(days_ago: int):
        return factories.randomised(rectal, by=coordinator, days_ago=days_ago)
    return make


def record(participant, crf_code, by, *, on_day: int, complete=True, **answers):
    """A CRF of ``participant`` dated ``on_day`` days after randomisation."""
    randomised_on = timezone.localdate(participant.allocation.randomised_at)
    crf = crf_of(participant.protocol_version_id, crf_code)
    data = crf_answers(crf, on=randomised_on + dt.timedelta(days=on_day), **answers)
    return save_crf(participant, crf_code, data, by=by, complete=complete)


def visit_done(participant, by, *, on_day: int):
    randomised_on = timezone.localdate(participant.allocation.randomised_at)
    done_on = randomised_on + dt.timedelta(days=on_day)
    visit = (Visit.objects.filter(participant=participant, code="follow_up")
             .order_by("occurrence").first())
    scheduling.record_visit_done(visit, done_on=done_on, by=by)


def by_id(values):
    return {v.study_id: v for v in values}


def test_a_participant_alive_is_censored_at_the_last_evidence(rectal, randomise, coordinator):
    p = randomise(200)
    visit_done(p, coordinator, on_day=95)
    record(p, "end_of_study", coordinator, on_day=150, reason="lost_to_follow_up")
    found = derive_endpoints(rectal)
    os_ = by_id(found["os"])[p.study_id]
    assert not os_.event and os_.months == pytest.approx(months(150))
    assert os_.reason == "censored at the last evidence (end_of_study.end_date)"
    # No tumour assessment after randomisation: PFS is censored at day 0.
    pfs = by_id(found["pfs"])[p.study_id]
    assert not pfs.event and pfs.months == 0 and "no follow-up" in pfs.reason


def test_death_without_progression(rectal, randomise, coordinator):
    p = randomise(300)
    visit_done(p, coordinator, on_day=92)
    record(p, "death", coordinator, on_day=120)
    found = derive_endpoints(rectal)
    os_, pfs, ttp = (by_id(found[code])[p.study_id] for code in ("os", "pfs", "ttp"))
    assert os_.event and os_.months == pytest.approx(120 / 30.4375) and os_.reason == "Death"
    assert pfs.event and pfs.months == pytest.approx(months(120)) and pfs.reason == "Death"
    # Time to progression counts progressions only: death censors it, at the death date.
    assert not ttp.event and ttp.months == pytest.approx(months(120))
    assert ttp.date == timezone.localdate(p.allocation.randomised_at) + dt.timedelta(days=120)


def test_progression_then_death(rectal, randomise, coordinator):
    p = randomise(400)
    record(p, "progression", coordinator, on_day=100, site=["metastatic"])
    record(p, "death", coordinator, on_day=250)
    found = derive_endpoints(rectal)
    assert by_id(found["pfs"])[p.study_id].months == pytest.approx(months(100))
    assert by_id(found["pfs"])[p.study_id].reason == "Disease progression"
    assert by_id(found["ttp"])[p.study_id].event
    assert by_id(found["os"])[p.study_id].months == pytest.approx(months(250))
    assert by_id(found["os"])[p.study_id].event


def test_primary_tumour_progression_counts_for_time_to_progression_in_arm_b_only(
        rectal, randomise, coordinator):
    arm_a, arm_b = randomise(300), randomise(300)
    assert (arm_a.allocation.arm.code, arm_b.allocation.arm.code) == ("A", "B")
    for p in (arm_a, arm_b):
        record(p, "tumour_assessment", coordinator, on_day=60)
        record(p, "progression", coordinator, on_day=90, site=["primary_tumour"])
    found = derive_endpoints(rectal)
    ttp = by_id(found["ttp"])
    assert not ttp[arm_a.study_id].event
    assert ttp[arm_a.study_id].months == pytest.approx(months(60))  # last assessment
    assert ttp[arm_b.study_id].event
    assert ttp[arm_b.study_id].reason == "Progression of the primary tumour (arm B)"
    # Progression-free survival counts any progression, in both arms.
    assert all(v.event for v in found["pfs"])


def test_an_event_after_the_follow_up_is_censored_at_the_horizon(rectal, randomise, coordinator):
    p = randomise(800)
    record(p, "death", coordinator, on_day=760)  # 24.97 months: after the 24-month horizon
    os_ = by_id(derive_endpoints(rectal)["os"])[p.study_id]
    assert not os_.event and os_.months == 24.0
    assert os_.reason == "censored at the end of follow-up (24 months)"


def test_a_draft_is_not_data_yet(rectal, randomise, coordinator):
    p = randomise(200)
    record(p, "death", coordinator, on_day=100, complete=False)
    assert not by_id(derive_endpoints(rectal)["os"])[p.study_id].event


def test_a_whole_trial_in_three_queries(rectal, randomise, coordinator,
                                        django_assert_num_queries):
    for days in (100, 200, 300, 400):
        p = randomise(days)
        record(p, "progression", coordinator, on_day=days // 2, site=["metastatic"])
        visit_done(p, coordinator, on_day=92)
    with django_assert_num_queries(3):
        found = derive_endpoints(rectal)
    assert [len(v) for v in found.values()] == [4, 4, 4]


# --------------------------------------------------------------------------- survival follow-up


@pytest.fixture
def reminet_coordinator(reminet, statistician, make_user):
    factories.scripted_list(reminet, by=statistician, arms=["LAN", "PBO"])
    return make_user("coordinator", reminet, reminet.sites.order_by("code").first())


def _day(participant, on_day: int) -> str:
    randomised_on = timezone.localdate(participant.allocation.randomised_at)
    return (randomised_on + dt.timedelta(days=on_day)).isoformat()


def test_os_is_censored_at_the_last_news_alive_not_at_progression(
        reminet, reminet_coordinator):
    # DESIGN.md: survival is followed after progression; OS is censored at the latest date the
    # participant was known alive from any record (here a last-news contact at month 40).
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=1300)
    record(p, "progression", reminet_coordinator, on_day=243, site=["metastatic"])
    record(p, "last_news", reminet_coordinator, on_day=1218, vital_status="alive",
           date_last_known_alive=_day(p, 1200))
    os_ = by_id(derive_endpoints(reminet, codes=["os"])["os"])[p.study_id]
    assert not os_.event and os_.months == pytest.approx(months(1218))
    assert os_.reason == "censored at the last evidence (last_news.contact_date)"


def test_a_last_news_that_is_not_alive_counts_only_its_date_last_known_alive(
        reminet, reminet_coordinator):
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=1300)
    record(p, "progression", reminet_coordinator, on_day=243, site=["metastatic"])
    record(p, "last_news", reminet_coordinator, on_day=1218, vital_status="lost_to_follow_up",
           date_last_known_alive=_day(p, 900))
    os_ = by_id(derive_endpoints(reminet, codes=["os"])["os"])[p.study_id]
    assert not os_.event and os_.months == pytest.approx(months(900))
    assert os_.reason == "censored at the last evidence (last_news.date_last_known_alive)"


def test_reminet_follows_os_to_60_months(reminet, reminet_coordinator):
    # choice (reminet.yaml): 60 months, so the placebo arm's median OS of 41.9 months (seed l.7)
    # can be shown; an event at month 42 is an event, not censored at 36.
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=1300)
    record(p, "death", reminet_coordinator, on_day=1280)
    os_ = by_id(derive_endpoints(reminet, codes=["os"])["os"])[p.study_id]
    assert os_.event and os_.months == pytest.approx(months(1280))


def test_os_counts_every_dated_record_as_evidence_of_life(reminet, reminet_coordinator):
    # "the latest date the participant was known alive from any record": an adverse event that
    # ended after the last visit counts.
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=400)
    record(p, "progression", reminet_coordinator, on_day=100, site=["metastatic"])
    record(p, "adverse_events", reminet_coordinator, on_day=150, any_event=True, events=[{
        "term": "Fatigue", "grade": 1, "serious": False, "attribution": "possible",
        "start_date": _day(p, 140), "end_date": _day(p, 300), "ongoing": False}])
    os_ = by_id(derive_endpoints(reminet, codes=["os"])["os"])[p.study_id]
    assert not os_.event and os_.months == pytest.approx(months(300))
    assert os_.reason == "censored at the last evidence (adverse_events.events.end_date)"
