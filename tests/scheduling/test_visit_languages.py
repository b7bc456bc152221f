"""A visit row keeps the protocol's first language whoever's request plans it; its title reads
the reader's language when the participant is at hand."""
from __future__ import annotations

from django.utils import translation

from patients.models import Visit
from tests import factories


def test_a_visit_planned_in_french_is_stored_in_the_first_language(rectal_ready):
    trial, coordinator = rectal_ready
    with translation.override("fr"):
        participant = factories.randomised(trial, by=coordinator)
    baseline = Visit.objects.get(participant=participant, code="baseline")
    assert baseline.label == "Baseline (randomisation)"
    with translation.override("fr"):
        assert baseline.title == "Baseline (randomisation)"  # participant not loaded: the row
        visits = {v.code: v for v in participant.visits.all()}
        assert visits["baseline"].title == "Inclusion (randomisation)"
    with translation.override("en"):
        assert visits["baseline"].title == "Baseline (randomisation)"
