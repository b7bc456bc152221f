"""Dispensing stops while the participant's data are frozen or locked (``patients.locks``):
no kit assigned or replaced, nothing written."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from patients import locks as casebook_locks
from randomisation import services as randomisation
from supply.models import KitAssignment, KitEvent
from tests import factories
from tests.conftest import PASSWORD
from tests.supply.test_services import _next_injection
from trials import locks


def test_no_kit_is_assigned_in_a_frozen_casebook(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    data_manager = make_user("data_manager", trial)
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    visit = _next_injection(p, coordinator)
    casebook_locks.step_casebook(p, "freeze", by=data_manager, reason="Review.",
                                 password=PASSWORD)
    before = (KitAssignment.objects.count(), KitEvent.objects.count())
    with pytest.raises(ValidationError, match="The casebook of .* is frozen"):
        randomisation.assign_kit(visit, by=coordinator)
    assert (KitAssignment.objects.count(), KitEvent.objects.count()) == before


def test_no_kit_is_replaced_in_a_locked_trial(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    data_manager = make_user("data_manager", trial)
    p = factories.randomised(trial, by=coordinator)
    assignment = KitAssignment.objects.get(participant=p)
    for step in ("freeze", "lock"):
        locks.step_trial(trial, step, by=data_manager, reason="End.", password=PASSWORD)
    before = (KitAssignment.objects.count(), KitEvent.objects.count())
    with pytest.raises(ValidationError, match="The trial is locked"):
        randomisation.replace_kit(assignment, kind="damaged", reason="Broken vial.",
                                  by=coordinator)
    assert (KitAssignment.objects.count(), KitEvent.objects.count()) == before
