"""Freeze and lock of a casebook, a site and the whole trial (``trials.locks``,
``patients.locks``): the data manager's signed steps, and every path that would change the
data refused with the level named and nothing written."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.models import AuditEvent
from crfs import services as crfs
from crfs.models import CRFRecord, DataQuery, QueryMessage
from patients import locks as casebook_locks
from patients.models import Participant, Visit, VisitStatus
from patients.services import record_consent, record_withdrawal
from randomisation.services import randomise
from scheduling import services as scheduling
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.crf_world import *  # noqa: F401,F403
from tests.crf_world import demographics
from trials import locks
from trials.models import DataState, Site, Trial

LEVELS = ["casebook", "site", "trial"]


def step(level: str, participant, name: str, by, **kw):
    """Take step ``name`` at ``level`` for ``participant``'s casebook, site or trial."""
    kw = {"reason": "Data review done.", "password": PASSWORD, **kw}
    if level == "casebook":
        return casebook_locks.step_casebook(participant, name, by=by, **kw)
    if level == "site":
        return locks.step_site(participant.site, name, by=by, **kw)
    return locks.step_trial(participant.trial, name, by=by, **kw)


def close(level, participant, by, state):
    step(level, participant, "freeze", by)
    if state == DataState.LOCKED:
        step(level, participant, "lock", by)


NAMED = {"casebook": "The casebook of", "site": "Site ", "trial": "The trial"}


def test_freeze_then_lock_each_step_signed_with_a_reason_and_audited(participant, data_manager):
    trial = participant.trial
    with pytest.raises(ValidationError, match="open: it cannot be locked"):
        locks.step_trial(trial, "lock", by=data_manager, reason="x", password=PASSWORD)
    with pytest.raises(ValidationError) as refused:
        locks.step_trial(trial, "freeze", by=data_manager, reason=" ", password=PASSWORD)
    assert "reason" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        locks.step_trial(trial, "freeze", by=data_manager, reason="x" * 1001, password=PASSWORD)
    assert "at most 1,000" in refused.value.message_dict["reason"][0]
    with pytest.raises(ValidationError) as refused:
        locks.step_trial(trial, "freeze", by=data_manager, reason="End", password="wrong")
    assert "password" in refused.value.message_dict
    assert Trial.objects.get(pk=trial.pk).data_state == DataState.OPEN

    locks.step_trial(trial, "freeze", by=data_manager, reason="Last visit done.",
                     password=PASSWORD)
    locks.step_trial(trial, "lock", by=data_manager, reason="Queries closed.",
                     password=PASSWORD)
    trial = Trial.objects.get(pk=trial.pk)
    assert trial.is_locked and trial.is_frozen and trial.locked_by == data_manager
    entries = list(AuditEvent.objects.filter(action__startswith="data.").order_by("id"))
    assert [e.action for e in entries] == ["data.freeze", "data.lock"]
    assert "Queries closed." in entries[1].message and entries[1].actor == data_manager

    locks.step_trial(trial, "unlock", by=data_manager, reason="A late lab value.",
                     password=PASSWORD)
    assert Trial.objects.get(pk=trial.pk).data_state == DataState.FROZEN
    locks.step_trial(trial, "unfreeze", by=data_manager, reason="Correction needed.",
                     password=PASSWORD)
    assert Trial.objects.get(pk=trial.pk).data_state == DataState.OPEN
    assert AuditEvent.objects.filter(action__in=["data.unlock", "data.unfreeze"]).count() == 2


def test_only_a_data_manager_of_the_scope_freezes(participant, coordinator, sites, make_user):
    trial = participant.trial
    with pytest.raises(PermissionDenied):
        locks.step_trial(trial, "freeze", by=coordinator, reason="x", password=PASSWORD)
    site_dm = make_user("data_manager", trial, sites[1])
    with pytest.raises(PermissionDenied):
        locks.step_trial(trial, "freeze", by=site_dm, reason="x", password=PASSWORD)
    with pytest.raises(PermissionDenied):
        locks.step_site(sites[0], "freeze", by=site_dm, reason="x", password=PASSWORD)
    with pytest.raises(PermissionDenied):
        casebook_locks.step_casebook(participant, "freeze", by=site_dm, reason="x",
                                     password=PASSWORD)
    locks.step_site(sites[1], "freeze", by=site_dm, reason="x", password=PASSWORD)
    assert Site.objects.get(pk=sites[1].pk).is_frozen
    assert Site.objects.get(pk=sites[0].pk).data_state == DataState.OPEN


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("state", [DataState.FROZEN, DataState.LOCKED])
def test_no_crf_is_saved_in_a_closed_casebook_site_or_trial(
        level, state, participant, baseline, investigator, data_manager):
    close(level, participant, data_manager, state)
    before = CRFRecord.history.count()
    with pytest.raises(ValidationError) as refused:
        save_crf(participant, "demographics", demographics(participant), by=investigator,
                 complete=True, visit=baseline)
    message = refused.value.messages[0]
    assert message.startswith(NAMED[level]) and f"is {state}" in message
    assert "no data may change" in message
    assert CRFRecord.history.count() == before
    assert not CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()


@pytest.mark.parametrize("level", LEVELS)
def test_a_frozen_casebook_still_takes_queries_but_no_correction(
        level, complete, participant, investigator, data_manager):
    close(level, participant, data_manager, DataState.FROZEN)
    query = crfs.raise_query(complete, by=data_manager, field_path="weight_kg",
                             text="Please check the weight.")
    messages = QueryMessage.objects.count()
    with pytest.raises(ValidationError, match="no data may change"):
        crfs.answer_query(query, by=investigator, text="Corrected: 75 kg",
                          correction=demographics(participant, weight_kg="75.0"))
    assert QueryMessage.objects.count() == messages
    assert CRFRecord.objects.get(pk=complete.pk).data["weight_kg"] == complete.data["weight_kg"]
    crfs.answer_query(query, by=investigator, text="Checked against the source: right.")
    crfs.close_query(query, by=data_manager)
    assert DataQuery.objects.get(pk=query.pk).is_closed


@pytest.mark.parametrize("level", LEVELS)
def test_a_locked_casebook_takes_no_query_no_signature_no_form_lock(
        level, complete, participant, investigator, data_manager):
    close(level, participant, data_manager, DataState.LOCKED)
    with pytest.raises(ValidationError, match="is locked"):
        crfs.raise_query(complete, by=data_manager, field_path="weight_kg", text="Check.")
    with pytest.raises(ValidationError, match="is locked"):
        crfs.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    with pytest.raises(ValidationError, match="is locked"):
        crfs.lock_crf(complete, by=data_manager)
    assert not DataQuery.objects.filter(record=complete).exists()
    assert CRFRecord.objects.get(pk=complete.pk).status == complete.status


def test_every_other_path_is_refused_with_nothing_written(
        participant, baseline, coordinator, data_manager, rectal):
    other = factories.participant(rectal, participant.site, by=coordinator)
    eligible = factories.eligible_participant(rectal, participant.site, by=coordinator)
    locks.step_site(participant.site, "freeze", by=data_manager, reason="Site closing.",
                    password=PASSWORD)
    counts = (Participant.objects.count(), Visit.objects.count(), AuditEvent.objects.count(),
              Participant.history.count(), Visit.history.count())
    today = timezone.localdate()
    refused = {
        "register": lambda: factories.participant(rectal, participant.site, by=coordinator),
        "consent": lambda: record_consent(other, consent_date=today, version="1.0",
                                          by=coordinator),
        "withdrawal": lambda: record_withdrawal(participant, level="treatment",
                                                withdrawn_on=today, reason="x", by=coordinator),
        "randomise": lambda: randomise(eligible, by=coordinator),
        "visit done": lambda: scheduling.record_visit_done(baseline, done_on=today,
                                                           by=coordinator),
        "visit missed": lambda: scheduling.mark_visit_missed(baseline, by=coordinator,
                                                             reason="x"),
        "unscheduled": lambda: scheduling.add_unscheduled_visit(
            participant, on=today, reason="x", by=coordinator),
    }
    for name, action in refused.items():
        with pytest.raises(ValidationError) as error:
            action()
        assert "Site " in error.value.messages[0] and "is frozen" in error.value.messages[0], name
    assert counts == (Participant.objects.count(), Visit.objects.count(),
                      AuditEvent.objects.count(), Participant.history.count(),
                      Visit.history.count())
    assert not Participant.objects.get(pk=eligible.pk).is_randomised
    assert Visit.objects.get(pk=baseline.pk).status == baseline.status


def test_another_site_and_casebook_go_on_while_one_is_closed(
        participant, baseline, investigator, data_manager, rectal, sites, make_user):
    other_coordinator = make_user("coordinator", rectal, sites[1])
    casebook_locks.step_casebook(participant, "freeze", by=data_manager, reason="x",
                                 password=PASSWORD)
    factories.participant(rectal, sites[1], by=other_coordinator)
    assert Participant.objects.filter(site=sites[1]).count() == 1


def test_an_unlock_opens_the_data_again(participant, baseline, investigator, data_manager):
    close("casebook", participant, data_manager, DataState.LOCKED)
    step("casebook", participant, "unlock", data_manager, reason="Late lab value.")
    with pytest.raises(ValidationError, match="is frozen"):
        save_crf(participant, "demographics", demographics(participant), by=investigator,
                 complete=True, visit=baseline)
    step("casebook", participant, "unfreeze", data_manager, reason="Late lab value.")
    save_crf(participant, "demographics", demographics(participant), by=investigator,
             complete=True, visit=baseline)
    assert CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()
    assert Participant.history.filter(id=participant.pk, history_change_reason__startswith=
                                      "Unfreeze: ").exists()
