"""A generated kit list's numbers reveal nothing of the arm (issue 19, item 1), tested
statistically on a large list (4,000 kits) generated with a fixed seed by the statistician:

- order: the ranks of the kits' numbers (sorted) are no different between the arms
  (Mann-Whitney U);
- characters: at every position of the number, the character is independent of the arm
  (chi-square on the 18-character alphabet by arm);
- runs: sorted by number, the sequence of arms has as many runs as chance gives (Wald-Wolfowitz),
  neither blocks of one arm nor an alternation.

Each test must also catch a list that leaks (numbers sorted by arm, arms alternating along the
numbers, one arm's numbers ending in half of the alphabet), so that it can fail. The seed is
fixed: the p-values are the same on every run.
"""
from __future__ import annotations

import datetime as dt
import math

import pytest
from django.utils import timezone
from scipy import stats

from randomisation import generator, kitlist
from supply.models import Kit

KITS = 4000
ALPHA = 1e-3      # a generated list passes every test above this
DETECTED = 1e-6   # a leaking list is caught far below it


def p_values(numbers: list[str], arms: list[str]) -> dict[str, float]:
    """Every test's p-value for a list of ``numbers`` whose arms are ``arms`` (two arms)."""
    labels = sorted(set(arms))
    assert len(labels) == 2, labels
    order = sorted(range(len(numbers)), key=lambda i: numbers[i])
    rank = {i: r for r, i in enumerate(order)}
    out = {}
    first = [rank[i] for i in range(len(numbers)) if arms[i] == labels[0]]
    second = [rank[i] for i in range(len(numbers)) if arms[i] == labels[1]]
    out["order"] = stats.mannwhitneyu(first, second, alternative="two-sided").pvalue
    for position in range(len(numbers[0])):
        table = [[sum(1 for n, a in zip(numbers, arms) if n[position] == c and a == arm)
                  for arm in labels] for c in generator.KIT_ALPHABET]
        table = [row for row in table if sum(row)]
        out[f"character {position + 1}"] = stats.chi2_contingency(table).pvalue
    out["runs"] = runs_test([arms[i] for i in order])
    return out


def runs_test(sequence: list[str]) -> float:
    """Two-sided p-value of the Wald-Wolfowitz runs test of a two-valued sequence."""
    first = sequence[0]
    n1 = sum(1 for s in sequence if s == first)
    n2 = len(sequence) - n1
    runs = 1 + sum(1 for a, b in zip(sequence, sequence[1:]) if a != b)
    n = n1 + n2
    mean = 2 * n1 * n2 / n + 1
    variance = 2 * n1 * n2 * (2 * n1 * n2 - n) / (n * n * (n - 1))
    z = (runs - mean) / math.sqrt(variance)
    return 2 * stats.norm.sf(abs(z))


@pytest.fixture
def generated(reminet, statistician):
    """A sealed list of 4,000 REMINET kits, as the statistician generates it (fixed seed)."""
    kit_list = kitlist.seal(kitlist.generate(
        reminet, by=statistician, kits=KITS, lot_size=20, seed="kit-number-statistics",
        expires_on=timezone.localdate() + dt.timedelta(days=700)), by=statistician)
    rows = list(Kit.objects.filter(kit_list=kit_list).values_list("number", "arm__code"))
    assert len(rows) == KITS and len({n for n, _ in rows}) == KITS
    return [n for n, _ in rows], [a for _, a in rows]


def test_a_generated_kit_lists_numbers_reveal_nothing_of_the_arm(generated):
    numbers, arms = generated
    assert sorted(set(arms)) == ["LAN", "PBO"] and arms.count("LAN") == KITS // 2
    p = p_values(numbers, arms)
    assert set(p) == {"order", "runs"} | {f"character {i}" for i in range(1, 7)}
    failed = {test: value for test, value in p.items() if value <= ALPHA}
    assert not failed, f"the kit numbers follow the arm: {failed}"


def test_the_same_tests_catch_lists_that_leak_the_arm(generated):
    """The numbers of the generated list, with the arms given back in ways that leak them: each
    leak is caught by the test meant for it (so the test above can fail)."""
    numbers, arms = generated
    by_number = sorted(numbers)
    half = len(numbers) // 2

    # Numbers sorted by arm: the first half of the numbers are one arm's.
    sorted_by_arm = {n: ("LAN" if i < half else "PBO") for i, n in enumerate(by_number)}
    p = p_values(numbers, [sorted_by_arm[n] for n in numbers])
    assert p["order"] < DETECTED and p["runs"] < DETECTED and p["character 1"] < DETECTED

    # Arms alternating along the numbers: balanced in order and characters, caught by the runs.
    alternating = {n: ("LAN" if i % 2 else "PBO") for i, n in enumerate(by_number)}
    p = p_values(numbers, [alternating[n] for n in numbers])
    assert p["runs"] < DETECTED

    # One arm's numbers end in the first half of the alphabet (as many kits as the other arm).
    early = set(generator.KIT_ALPHABET[:len(generator.KIT_ALPHABET) // 2])
    ending = sorted(numbers, key=lambda n: (n[-1] not in early, n))
    last_character = {n: ("LAN" if i < half else "PBO") for i, n in enumerate(ending)}
    p = p_values(numbers, [last_character[n] for n in numbers])
    assert p["character 6"] < DETECTED
    assert all(p[f"character {i}"] > ALPHA for i in range(1, 6)), "the other positions hide it"
