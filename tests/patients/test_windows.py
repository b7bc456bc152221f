"""Window arithmetic: one function makes every visit date. Months clamp to the month's end,
each occurrence counts from the anchor (no drift), leap years are honoured."""
from __future__ import annotations

import datetime as dt

import pytest

from patients.windows import add_months, visit_window

D = dt.date


@pytest.mark.parametrize("start, months, expected", [
    (D(2025, 1, 31), 1, D(2025, 2, 28)),   # no 31 February: the month's last day
    (D(2024, 1, 31), 1, D(2024, 2, 29)),   # leap year
    (D(2025, 1, 31), 3, D(2025, 4, 30)),
    (D(2025, 8, 31), 6, D(2026, 2, 28)),
    (D(2024, 2, 29), 12, D(2025, 2, 28)),  # from a leap day to a common year
    (D(2024, 2, 29), 48, D(2028, 2, 29)),  # and to the next leap year
    (D(2025, 11, 30), 3, D(2026, 2, 28)),  # across the year end
    (D(2025, 12, 15), 1, D(2026, 1, 15)),
    (D(2025, 3, 31), -1, D(2025, 2, 28)),  # backwards too
    (D(2025, 5, 10), 0, D(2025, 5, 10)),
])
def test_adding_months_clamps_to_the_end_of_a_shorter_month(start, months, expected):
    assert add_months(start, months) == expected


def test_a_window_is_days_around_the_target_both_ends_included():
    w = visit_window(D(2026, 3, 1), {"days": 30}, {"start": 0, "end": 14})
    assert (w.target, w.opens, w.closes) == (D(2026, 3, 31), D(2026, 3, 31), D(2026, 4, 14))
    assert w.contains(w.opens) and w.contains(w.closes) and not w.contains(D(2026, 4, 15))


def test_three_monthly_visits_from_the_31st_do_not_drift():
    offset, every, window = {"months": 3}, {"months": 3}, {"start": -14, "end": 14}
    targets = [visit_window(D(2025, 8, 31), offset, window, every=every, occurrence=n).target
               for n in range(1, 5)]
    # Each from the anchor: 30 Nov, 28 Feb (clamped), 31 May (not 28 May), 31 Aug.
    assert targets == [D(2025, 11, 30), D(2026, 2, 28), D(2026, 5, 31), D(2026, 8, 31)]


def test_monthly_from_31_january_in_a_leap_year():
    targets = [visit_window(D(2024, 1, 31), {"months": 1}, {"start": 0, "end": 0},
                            every={"months": 1}, occurrence=n).target for n in range(1, 4)]
    assert targets == [D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30)]


def test_28_day_repetitions_cross_the_leap_day():
    w = visit_window(D(2024, 1, 4), {"days": 28}, {"start": -3, "end": 3},
                     every={"days": 28}, occurrence=2)
    assert w.target == D(2024, 2, 29)  # 4 Jan + 56 days, leap day included
    assert (w.opens, w.closes) == (D(2024, 2, 26), D(2024, 3, 3))


def test_months_then_days():
    # 31 January + 1 month = 28 February, then + 2 days = 2 March (not 31 Jan + 2 days + 1 month).
    w = visit_window(D(2025, 1, 31), {"months": 1, "days": 2}, {"start": 0, "end": 0})
    assert w.target == D(2025, 3, 2)


def test_a_window_before_the_anchor():
    w = visit_window(D(2026, 1, 10), {"days": 0}, {"start": -14, "end": 0})
    assert (w.opens, w.closes) == (D(2025, 12, 27), D(2026, 1, 10))
