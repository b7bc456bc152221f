"""Predictability (issue 22): the rectal trial, open-label and stratified by site, chooses larger
mixed blocks (4, 6, 8) so that a site reading its own allocations guesses the next one less
often and almost never knows it for certain; bench/predictability.py measures it. The file
still loads, its lists are whole blocks of those sizes, and it randomises."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from randomisation import services
from tests import factories

BENCH = Path(__file__).resolve().parents[2] / "bench" / "predictability.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("predictability", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("predictability", module)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


AB = [("A", 1), ("B", 1)]


@pytest.mark.parametrize("seen, sizes, forced", [
    ([], (2, 4), None),
    (["A"], (2, 4), None),                 # a block of 2 or of 4: either may follow
    (["A", "A"], (2, 4), "B"),             # only a block of 4 starts AA
    (["A", "A", "B"], (2, 4), "B"),        # ... and ends B
    (["A", "B"], (2, 4), None),            # a block of 2 may have ended
    (["A", "A"], (4, 6, 8), None),
    (["A", "A", "A"], (4, 6, 8), None),    # a block of 6 or 8
    (["A", "A", "A", "A"], (4, 6, 8), "B"),  # only a block of 8 holds four A
    (["A", "B", "A", "A", "A"], (2, 4), None),  # no cut into balanced blocks: nothing forced
])
def test_what_a_site_knows_for_certain(bench, seen, sizes, forced):
    assert bench.forced_next(seen, AB, sizes) == forced


def test_the_convergence_guess_is_the_arm_behind(bench):
    assert bench.convergence_guess({"A": 2, "B": 1}, AB) == ["B"]
    assert bench.convergence_guess({"A": 2, "B": 1}, [("A", 2), ("B", 1)]) == ["A", "B"]


def test_the_rectal_files_blocks_are_less_predictable_than_blocks_of_2_and_4(bench):
    path = Path(services.__file__).resolve().parents[1] / "trials" / "protocols" / \
        "rectal-resection.yaml"
    chosen = bench.setting_of(path, participants=60)
    assert chosen.block_sizes == (4, 6, 8)
    before = bench.simulate(bench.setting_of(path, participants=60, block_sizes=(2, 4)), 30)
    after = bench.simulate(chosen, 30)

    def rates(t):
        return t["stratum"].correct / t["stratum"].n, t["stratum"].certain / t["stratum"].n

    (guess_before, certain_before), (guess_after, certain_after) = rates(before), rates(after)
    assert guess_after < guess_before and certain_after < certain_before
    assert 0.5 < guess_after < 0.7 and certain_after < 0.05


def test_the_rectal_list_is_whole_blocks_of_4_6_or_8(rectal, statistician):
    assert rectal.definition["randomisation"]["block_sizes"] == [4, 6, 8]
    alist = services.generate_list(rectal, by=statistician, seed="p", slots_per_stratum=40)
    for stratum in alist.strata.all():
        sizes = set(stratum.slots.values_list("block_size", flat=True))
        assert sizes <= {4, 6, 8}
        arms = list(stratum.slots.order_by("sequence").values_list("arm__code", flat=True))
        assert arms.count("A") == arms.count("B") and len(arms) >= 40


def test_the_rectal_trial_still_randomises(rectal_ready):
    trial, coordinator = rectal_ready
    p = factories.eligible_participant(trial, by=coordinator, metastatic_extent="single_organ")
    allocation = services.randomise(p, by=coordinator)
    assert allocation.arm.code in {"A", "B"}
    assert allocation.slot.block_size in {4, 6, 8}
