"""Dates of visits: calendar months as a clinician counts them, and a visit's window. Pure
functions, the one place where visit dates are computed (the planner in ``scheduling.services``
and every page use these)."""
from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from typing import Any, Mapping


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole calendar months, clamped to the last day of a shorter month.

    31 January + 1 month = 28 February (29 in a leap year); 29 February 2024 + 12 months =
    28 February 2025. This is how a clinician reads "3 months after": same day of the month,
    or the month's last day when it has no such day.
    """
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Window:
    target: dt.date
    opens: dt.date
    closes: dt.date

    def contains(self, day: dt.date) -> bool:
        return self.opens <= day <= self.closes


def visit_window(anchor_date: dt.date, offset: Mapping[str, int], window: Mapping[str, int], *,
                 every: Mapping[str, int] | None = None, occurrence: int = 1) -> Window:
    """The target date and window of one occurrence of a visit. Every visit date is made here.

    Occurrence ``n`` (1, 2, 3…) is due ``offset + (n - 1) × every`` after the anchor. Months are
    added first, in one step from the anchor and clamped to the month's end (``add_months``),
    then days. Each occurrence is computed from the anchor, never from the previous one, so
    clamping never drifts: from 31 January, monthly visits fall on 28/29 February, 31 March,
    30 April, 31 May… (not 28 March, 28 April…). The window is ``window.start`` to
    ``window.end`` days around the target, both ends included.
    """
    n = occurrence - 1
    every = every or {}
    months = offset.get("months", 0) + n * every.get("months", 0)
    days = offset.get("days", 0) + n * every.get("days", 0)
    target = add_months(anchor_date, months) + dt.timedelta(days=days)
    return Window(target, target + dt.timedelta(days=window["start"]),
                  target + dt.timedelta(days=window["end"]))


def as_date(value: Any) -> dt.date | None:
    """A stored CRF date (ISO text) as a ``date``; None when absent or malformed."""
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and value:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None
