"""Edit checks across fields and against the participant's other data.

A CRF definition may list ``checks``; each compares a date field with a reference date:

    checks:
      - code: surgery_after_randomisation
        field: surgery_date
        rule: not_before            # not_before | not_after | at_most_days_after
        reference: {anchor: randomisation}   # or {field: other_field} or {last_visit: true}
        severity: hard              # hard: blocks saving; soft: warns and records a deviation
        message: Surgery cannot be before randomisation.

``field`` and a ``reference.field`` may name a field of a repeating group as ``group.field``:
the check then runs row by row (an adverse event's end date not before its start date).

Hard checks block saving, with the message next to the field. Soft checks never block: the CRF
is saved, the user sees the warning, and a protocol deviation is recorded (e.g. surgery later
than the 21 days the rectal protocol allows). The references are read from the participant's
data by the caller (``crfs.services.reference_dates``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterable

from patients.windows import as_date

RULES = ("not_before", "not_after", "at_most_days_after")


@dataclass(frozen=True)
class CheckResult:
    code: str
    severity: str      # "hard" or "soft"
    path: str          # the field the message belongs to, e.g. "events[2].end_date"
    message: str
    days: int | None = None  # how far past the limit, for deviations

    @property
    def blocks(self) -> bool:
        return self.severity == "hard"


def _rows(data: dict, field: str) -> Iterable[tuple[str, dict, str]]:
    """(path prefix, the dict holding the field, the field's code) for a plain or group field."""
    if "." in field:
        group, code = field.split(".", 1)
        for i, row in enumerate(data.get(group) or []):
            yield f"{group}[{i}].", row, code
    else:
        yield "", data, field


def run_checks(definition: dict, data: dict, references: dict[str, dt.date | None]
               ) -> list[CheckResult]:
    """Every failed check of ``definition`` on ``data``.

    ``references`` holds the dates outside this CRF: ``anchor:<code>`` for each anchor known so
    far (``anchor:randomisation`` …) and ``last_visit`` for the last visit done. A check whose
    value or reference is unknown does not fail: missing answers are the completeness rules' job.
    """
    results = []
    for check in definition.get("checks", []):
        reference = check["reference"]
        for prefix, holder, code in _rows(data, check["field"]):
            value = as_date(holder.get(code))
            if value is None:
                continue
            if "field" in reference:
                ref_code = reference["field"].split(".", 1)[-1]
                ref = as_date(holder.get(ref_code) if "." in reference["field"]
                            else data.get(reference["field"]))
            elif "anchor" in reference:
                ref = references.get(f"anchor:{reference['anchor']}")
            else:
                ref = references.get("last_visit")
            if ref is None:
                continue
            days = (value - ref).days
            rule = check["rule"]
            over = None
            if rule == "not_before" and days < 0:
                over = -days
            elif rule == "not_after" and days > 0:
                over = days
            elif rule == "at_most_days_after" and days > check["days"]:
                over = days - check["days"]
            if over is not None:
                results.append(CheckResult(check["code"], check.get("severity", "hard"),
                                           prefix + code, check["message"], over))
    return results
