"""A protocol may choose minimisation: allocations are decided one by one, reproducibly."""
from __future__ import annotations

import copy

import pytest

from core.models import AuditEvent
from randomisation import services
from randomisation.models import Allocation, AllocationSlot
from tests import factories
from trials.services import store_protocol


@pytest.fixture
def minimised_trial(shipped_definitions, db):
    """REMINET's definition, allocating by minimisation instead of permuted blocks."""
    definition = copy.deepcopy(dict(shipped_definitions)["reminet.yaml"])
    definition["trial"]["slug"] = "reminet-min"
    definition.pop("supply")  # kit codes from the minimisation, as in a trial without kit list
    definition["randomisation"] = {
        "method": "minimisation", "kit_code_length": 6,
        "minimisation": {"probability": 0.8, "weights": {"grade": 1, "l1_response": 2}}}
    return store_protocol(definition, source_file="reminet-min.yaml").trial


def test_minimisation_allocates_without_slots_and_balances(minimised_trial, make_user):
    statistician = make_user("statistician", minimised_trial)
    coordinator = make_user("coordinator", minimised_trial)
    alist = services.seal_and_activate(
        services.generate_list(minimised_trial, by=statistician, seed="min-seed"), by=statistician)
    assert not AllocationSlot.objects.filter(allocation_list=alist).exists()
    levels = [("G1", "stable_disease"), ("G2", "stable_disease"), ("G2", "objective_response")]
    for i in range(24):
        grade, response = levels[i % 3]
        p = factories.eligible_participant(minimised_trial, by=coordinator, tumour_grade=grade,
                                           l1_response=response)
        allocation = services.randomise(p, by=coordinator)
        assert allocation.slot is None and len(allocation.kit_code) == 6
        assert AuditEvent.objects.filter(action="participant.randomised",
                                         object_id=str(allocation.pk)).count() == 1
        assert Allocation.objects.get(pk=allocation.pk).participant_id == p.pk
    arms = list(Allocation.objects.values_list("arm__code", flat=True))
    assert abs(arms.count("LAN") - arms.count("PBO")) <= 2
    kits = list(Allocation.objects.values_list("kit_code", flat=True))
    assert len(set(kits)) == len(kits)


def test_minimisation_is_reproducible_from_the_seed(minimised_trial, make_user):
    """The same seed and the same sequence of participants give the same arms."""
    statistician = make_user("statistician", minimised_trial)
    coordinator = make_user("coordinator", minimised_trial)

    def run(seed):
        alist = services.seal_and_activate(
            services.generate_list(minimised_trial, by=statistician, seed=seed), by=statistician)
        arms = []
        for i in range(10):
            p = factories.eligible_participant(minimised_trial, by=coordinator,
                                               tumour_grade=["G1", "G2"][i % 2])
            arms.append(services.randomise(p, by=coordinator).arm.code)
        return alist, arms

    _, first = run("same")
    # A new list version with the same seed starts from an empty history again.
    _, second = run("same")
    assert first == second
