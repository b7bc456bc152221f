"""Withdrawal levels (issue 17, item 5): what each level ends, what it refuses, its counts."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from crfs.models import CRFRecord
from demo.data import crf_answers
from patients import reminders, selectors
from patients.models import (
    Participant,
    Status,
    Visit,
    VisitReminder,
    VisitStatus,
    Withdrawal,
    WithdrawalLevel,
)
from scheduling.services import (
    record_visit_done,
    record_withdrawal_and_replan,
    save_crf_and_replan,
)
from tests import factories
from trials.models import crf_of

pytestmark = pytest.mark.django_db


def on_treatment(trial, coordinator, days_ago: int) -> tuple[Participant, dt.date]:
    """A REMINET participant randomised ``days_ago`` days ago, first injection on day 0."""
    p = factories.randomised(trial, by=coordinator, days_ago=days_ago)
    r = timezone.localdate(p.allocation.randomised_at)
    factories.first_injection(p, r, by=coordinator)
    return Participant.objects.get(pk=p.pk), r


def states(p, code: str) -> set[tuple[str, str]]:
    return {(v.status, v.closed_by) for v in Visit.objects.filter(participant=p, code=code)}


def test_stopping_study_treatment_ends_injections_only_and_starts_survival_follow_up(
        reminet_ready):
    trial, coordinator = reminet_ready
    p, r = on_treatment(trial, coordinator, days_ago=60)
    assert p.status == Status.ON_TREATMENT
    record_withdrawal_and_replan(p, by=coordinator, level="treatment",
                                 withdrawn_on=r + dt.timedelta(days=20), reason="toxicity")
    p = Participant.objects.get(pk=p.pk)
    assert states(p, "injection") == {(VisitStatus.NOT_APPLICABLE, "withdrawal:treatment")}
    assert states(p, "tumour_assessment") == {(VisitStatus.PLANNED, "")}
    follow_up = Visit.objects.filter(participant=p, code="survival_follow_up").order_by(
        "occurrence").first()
    assert follow_up.anchor_date == r + dt.timedelta(days=20)  # counts as end of treatment
    assert p.status == Status.FOLLOW_UP


def test_stopping_visits_keeps_only_the_vital_status_follow_up(reminet_ready):
    trial, coordinator = reminet_ready
    p, r = on_treatment(trial, coordinator, days_ago=60)
    record_withdrawal_and_replan(p, by=coordinator, level="visits",
                                 withdrawn_on=r + dt.timedelta(days=30), reason="moved away")
    assert states(p, "tumour_assessment") == {(VisitStatus.NOT_APPLICABLE, "withdrawal:visits")}
    # Injections after the date end (the one due before it stays, to be done or missed).
    assert {(v.status, v.closed_by) for v in Visit.objects.filter(
        participant=p, code="injection", target_date__gt=r + dt.timedelta(days=30))} <= {
        (VisitStatus.NOT_APPLICABLE, "withdrawal:visits"),
        (VisitStatus.NOT_APPLICABLE, "withdrawal:treatment")}
    assert states(p, "survival_follow_up") == {(VisitStatus.PLANNED, "")}


def test_withdrawing_consent_ends_every_visit_and_no_reminder_is_raised(reminet_ready):
    trial, coordinator = reminet_ready
    p, r = on_treatment(trial, coordinator, days_ago=60)
    withdrawn_on = r + dt.timedelta(days=30)
    record_withdrawal_and_replan(p, by=coordinator, level="consent", withdrawn_on=withdrawn_on,
                                 reason="withdraws consent")
    p = Participant.objects.get(pk=p.pk)
    assert p.status == Status.WITHDRAWN
    assert not Visit.objects.filter(participant=p, status=VisitStatus.PLANNED,
                                    target_date__gt=withdrawn_on).exists()
    assert not Visit.objects.filter(participant=p, code="survival_follow_up",
                                    status=VisitStatus.PLANNED).exists()
    reminders.raise_reminders(timezone.localdate())
    assert not VisitReminder.objects.filter(visit__participant=p,
                                            visit__target_date__gt=withdrawn_on).exists()
    # Data collected before it is kept; no form is collected at a visit after it.
    assert CRFRecord.objects.filter(participant=p, crf_code="injection").exists()
    later = Visit.objects.filter(participant=p, target_date__gt=withdrawn_on).exclude(
        code="unscheduled").order_by("target_date").first()
    with pytest.raises(ValidationError, match="withdrew consent"):
        save_crf_and_replan(p, later.crfs[0], {}, by=coordinator, complete=False, visit=later)
    assert not CRFRecord.objects.filter(visit=later).exists()


def test_a_rectal_participant_who_stops_visits_keeps_the_survival_contacts(rectal_ready):
    trial, coordinator = rectal_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    record_withdrawal_and_replan(p, by=coordinator, level="visits",
                                 withdrawn_on=timezone.localdate(), reason="moved away")
    assert states(p, "follow_up") == {(VisitStatus.NOT_APPLICABLE, "withdrawal:visits")}
    assert Participant.objects.get(pk=p.pk).status == Status.FOLLOW_UP
    assert not Visit.objects.filter(participant=p, status=VisitStatus.PLANNED).exclude(
        code="survival_follow_up").filter(target_date__gt=timezone.localdate()).exists()


def test_a_withdrawal_before_consent_is_refused_and_nothing_is_written(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    with pytest.raises(ValidationError) as exc:
        record_withdrawal_and_replan(p, by=coordinator, level="consent",
                                     withdrawn_on=p.consent_date - dt.timedelta(days=1),
                                     reason="x")
    assert "before the consent" in exc.value.message_dict["withdrawn_on"][0]
    assert not Withdrawal.objects.exists()


@pytest.mark.parametrize("kwargs, field, text", [
    ({"level": "consent", "reason": ""}, "reason", "reason"),
    ({"level": "everything", "reason": "x"}, "level", "level"),
    ({"level": "consent", "reason": "x", "days": 5}, "withdrawn_on", "future"),
    ({"level": "consent", "reason": "x", "days": -30}, "withdrawn_on", "before"),
])
def test_bad_withdrawals_are_refused_naming_the_field(reminet_ready, kwargs, field, text):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    day = timezone.localdate() + dt.timedelta(days=kwargs.pop("days", 0))
    with pytest.raises(ValidationError) as exc:
        record_withdrawal_and_replan(p, by=coordinator, withdrawn_on=day, **kwargs)
    assert text in exc.value.message_dict[field][0]
    assert not Withdrawal.objects.exists()


def test_a_level_not_further_than_one_recorded_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    today = timezone.localdate()
    record_withdrawal_and_replan(p, by=coordinator, level="visits", withdrawn_on=today,
                                 reason="moved")
    with pytest.raises(ValidationError) as exc:
        record_withdrawal_and_replan(p, by=coordinator, level="treatment", withdrawn_on=today,
                                     reason="again")
    assert "already withdrew" in exc.value.message_dict["level"][0]
    record_withdrawal_and_replan(p, by=coordinator, level="consent", withdrawn_on=today,
                                 reason="now consent too")
    assert Withdrawal.objects.filter(participant=p).count() == 2


def test_a_withdrawal_before_a_visit_done_that_it_would_end_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p, r = on_treatment(trial, coordinator, days_ago=120)
    visit = Visit.objects.get(participant=p, code="tumour_assessment", occurrence=1)
    record_visit_done(visit, done_on=visit.target_date, by=coordinator)
    with pytest.raises(ValidationError) as exc:
        record_withdrawal_and_replan(p, by=coordinator, level="consent",
                                     withdrawn_on=r + dt.timedelta(days=50), reason="x")
    assert visit.title in exc.value.message_dict["withdrawn_on"][0]
    assert not Withdrawal.objects.exists()
    # Stopping treatment ends no assessment: accepted.
    record_withdrawal_and_replan(p, by=coordinator, level="treatment",
                                 withdrawn_on=r + dt.timedelta(days=50), reason="toxicity")


def test_counts_per_furthest_level_for_the_flow_diagram(reminet_ready):
    trial, coordinator = reminet_ready
    today = timezone.localdate()
    ps = [factories.randomised(trial, by=coordinator, days_ago=10) for _ in range(4)]
    for p, levels in zip(ps, [["treatment"], ["treatment", "consent"], ["visits"], []]):
        for level in levels:
            record_withdrawal_and_replan(p, by=coordinator, level=level, withdrawn_on=today,
                                         reason="r")
    counts = selectors.withdrawal_counts(Participant.objects.filter(trial=trial))
    assert counts == {WithdrawalLevel.TREATMENT: 1, WithdrawalLevel.VISITS: 1,
                      WithdrawalLevel.CONSENT: 1}


def test_the_withdrawal_page_records_a_level_and_shows_it(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    client_for(coordinator)
    url = reverse("record_withdrawal", args=[trial.slug, p.study_id])
    response = client.post(url, {"level": "visits", "reason": "x",
                                 "withdrawn_on": (p.consent_date - dt.timedelta(days=1))
                                 .isoformat()})
    assert response.status_code == 400 and "before the consent" in response.content.decode()
    response = client.post(url, {"level": "visits", "reason": "moved away",
                                 "withdrawn_on": timezone.localdate().isoformat()})
    assert response.status_code == 302
    page = client.get(reverse("participant_detail", args=[trial.slug, p.study_id]))
    assert "moved away" in page.content.decode()
