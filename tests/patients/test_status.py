"""A randomised participant's status follows their CRFs, as the protocol's
``participant_status`` entries say: on treatment, in follow-up, then completed, withdrawn or
dead. Reports count participants by it (withdrawn per site, the CONSORT flow)."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from core.models import AuditEvent
from patients.models import Participant, Status
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from trials.protocol import validate_definition

TODAY = timezone.localdate


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


def status(p) -> str:
    return Participant.objects.get(pk=p.pk).status


@pytest.fixture
def on_injections(reminet, reminet_coordinator):
    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=100)
    assert status(p) == Status.RANDOMISED
    factories.first_injection(p, TODAY() - days(95), by=reminet_coordinator)
    return p


def test_the_first_injection_puts_the_participant_on_treatment(on_injections):
    assert status(on_injections) == Status.ON_TREATMENT
    event = AuditEvent.objects.get(action="participant.status_changed")
    assert "randomised → on_treatment" in event.message
    history = Participant.history.filter(id=on_injections.pk).order_by("-history_date").first()
    assert history.status == Status.ON_TREATMENT
    assert history.history_change_reason.startswith("status from the CRFs")


def test_progression_puts_them_in_follow_up_and_death_marks_them_dead(
        on_injections, reminet_coordinator):
    p = on_injections
    save_crf(p, "progression", {"progression_date": (TODAY() - days(30)).isoformat(),
                                "type": "clinical", "site": ["metastatic"]},
             by=reminet_coordinator, complete=True)
    assert status(p) == Status.FOLLOW_UP
    save_crf(p, "death", {"death_date": (TODAY() - days(2)).isoformat(),
                          "cause": "disease_progression"}, by=reminet_coordinator, complete=False)
    assert status(p) == Status.FOLLOW_UP, "a draft death form changes nothing"
    record = p.crf_records.get(crf_code="death")
    save_crf(p, "death", {"death_date": (TODAY() - days(2)).isoformat(),
                          "cause": "disease_progression"}, by=reminet_coordinator,
             complete=True, record=record)
    assert status(p) == Status.DEAD


@pytest.mark.parametrize("reason, expected", [
    ("withdrew_consent", Status.WITHDRAWN), ("lost_to_follow_up", Status.WITHDRAWN),
    ("completed_follow_up", Status.COMPLETED), ("death", Status.DEAD),
])
def test_the_end_of_study_reason_decides_between_completed_withdrawn_and_dead(
        on_injections, reminet_coordinator, reason, expected):
    save_crf(on_injections, "end_of_study", {"end_date": (TODAY() - days(1)).isoformat(),
                                             "reason": reason},
             by=reminet_coordinator, complete=True)
    assert status(on_injections) == expected


def test_chemotherapy_start_puts_a_rectal_participant_on_treatment(arm_b, rectal_coordinator):
    from demo.data import crf_answers

    crf = next(c for c in arm_b.definition["crfs"] if c["code"] == "chemotherapy_start")
    save_crf(arm_b, "chemotherapy_start", crf_answers(crf, on=TODAY()),
             by=rectal_coordinator, complete=True)
    assert status(arm_b) == Status.ON_TREATMENT


def test_a_status_rule_on_an_unknown_field_or_choice_is_refused(shipped_definitions):
    import copy

    name, data = next((n, d) for n, d in shipped_definitions if d["trial"]["slug"] == "reminet")
    data = copy.deepcopy(data)
    index, end = next((i, e) for i, e in enumerate(data["events"]) if e["code"] == "withdrawal")
    end["participant_status"] = {"field": "reason", "values": {"moved_abroad": "withdrawn"},
                                 "otherwise": "withdrawn"}
    [problem] = validate_definition(data)
    assert problem.path == f"events[{index}].participant_status.values.moved_abroad"
    end["participant_status"] = {"field": "end_date", "values": {}, "otherwise": "withdrawn"}
    [problem] = validate_definition(data)
    assert "not a choice field" in problem.message
    end["participant_status"] = "on_holiday"
    assert validate_definition(data)


def test_of_the_statuses_the_crfs_give_the_furthest_along_wins():
    """``patients.status`` decides: dead outranks follow-up, follow-up outranks treatment."""
    from patients.status import derived_status

    assert derived_status([]) is None
    assert derived_status(["on_treatment", "follow_up"]) == "follow_up"
    assert derived_status(["dead", "follow_up", "on_treatment"]) == "dead"
    assert derived_status(["withdrawn", "completed"]) == "withdrawn"
