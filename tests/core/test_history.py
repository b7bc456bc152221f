"""The history set-up of ``core.history``: django-simple-history with its manager class
built once."""
from __future__ import annotations

from patients.models import Participant
from tests import factories


def test_the_history_manager_class_is_built_once_and_bound_per_instance(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    first, second = (factories.participant(reminet, by=coordinator) for _ in range(2))
    assert type(first.history) is type(second.history) is type(Participant.history)
    assert list(first.history.values_list("id", flat=True)) == [first.pk]
    assert list(second.history.values_list("id", flat=True)) == [second.pk]
