"""Answers that are honestly not a value: missing-data codes and partial dates. Pure functions.

**Missing-data codes** (CDISC's null flavours: ND not done, NA not applicable, UNK unknown).
A protocol field that allows them (``missing: {codes: [ND, UNK], reason: required}``) may be
answered with a code instead of a value. The field's value stays None, so every reader that
adds, averages, compares or dates it sees "no value"; the code (and the reason, when the
protocol asks for one) lives beside the answers, under ``_missing``, per record and per group
row::

    {"ki67_percent": None, "_missing": {"ki67_percent": {"code": "UNK", "reason": "not sent"}},
     "target_lesions": [{"diameter_mm": None, "_missing": {"diameter_mm": {"code": "ND"}}}]}

A coded answer counts as answered for completeness (``crfs.forms.missing_required``); the
exports write the code where the value would be (``reports.exports``, ``reports.odm``).

**Partial dates** (``partial: {precision: month, impute: middle}`` on a date field): stored as
ISO 8601 reduced precision text, ``2019-03`` or ``2019`` (a full date stays ``2019-03-12``).
``patients.windows.as_date`` reads a partial date as None, so schedules, checks and the SAE
clock never use a guessed day. An analysis may use one only through ``impute``, by the rule
the protocol states (``first_day``, ``middle``: the 15th or 1 July, ``last_day``); without a
rule the date stays unknown to it.
"""
from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any

from django.utils.translation import pgettext_lazy

from trials.protocol import MISSING_CODES

MISSING_KEY = "_missing"

CODE_LABELS = {"ND": pgettext_lazy("missing-data code", "Not done"),
               "NA": pgettext_lazy("missing-data code", "Not applicable"),
               "UNK": pgettext_lazy("missing-data code", "Unknown")}
assert set(CODE_LABELS) == set(MISSING_CODES)
# The words the derivations' reasons use (stored in English, as history reasons are).
CODE_WORDS = {"ND": "not done", "NA": "not applicable", "UNK": "unknown"}

PARTIAL = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?$")
IMPUTE_RULES = ("first_day", "middle", "last_day")


# --- missing-data codes ------------------------------------------------------------------------

def allowed_codes(fdef: dict) -> list[str]:
    """The codes the protocol allows for this field ([] when none)."""
    return list((fdef.get("missing") or {}).get("codes") or [])


def reason_rule(fdef: dict) -> str:
    """``required``, ``optional`` or ``absent`` (the reason is not asked)."""
    return (fdef.get("missing") or {}).get("reason", "absent")


def coded(answers: dict | None, code: str) -> dict | None:
    """The missing-data code of field ``code`` in ``answers`` (a record's data or a group row):
    ``{"code": "UNK", "reason": "…"}``, or None when the field is not coded."""
    table = (answers or {}).get(MISSING_KEY)
    entry = table.get(code) if isinstance(table, dict) else None
    return entry if isinstance(entry, dict) and entry.get("code") else None


def code_text(entry: dict) -> str:
    """A code as people read it: "Unknown (UNK): lab not sent"."""
    label = CODE_LABELS.get(entry.get("code"), entry.get("code"))
    text = f"{label} ({entry.get('code')})"
    return f"{text}: {entry['reason']}" if entry.get("reason") else text


def why_coded(entry: dict) -> str:
    """The code in the words a derivation's reason uses ("not done")."""
    return CODE_WORDS.get(entry.get("code"), str(entry.get("code")))


# --- partial dates -----------------------------------------------------------------------------

def precision_of(text: Any) -> str | None:
    """``day``, ``month`` or ``year`` for stored date text; None when it is no date."""
    match = PARTIAL.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    return "day" if match["day"] else "month" if match["month"] else "year"


def parts_of(text: Any) -> tuple[str, str, str]:
    """Stored date text as its (day, month, year) parts for the form; blanks where unknown."""
    match = PARTIAL.match(text) if isinstance(text, str) else None
    if match is None:
        return "", "", ""
    return (str(int(match["day"])) if match["day"] else "",
            str(int(match["month"])) if match["month"] else "", match["year"])


def impute(text: Any, rule: str | None) -> dt.date | None:
    """The date an analysis uses for stored date text, by the protocol's rule.

    A full date is itself. A partial one is imputed only when ``rule`` is given: ``first_day``
    (1 March, 1 January), ``middle`` (the 15th; 1 July for a year alone), ``last_day`` (31
    March, 31 December). No rule: None, the date is unknown to the analysis.
    """
    match = PARTIAL.match(text) if isinstance(text, str) else None
    if match is None:
        return None
    year = int(match["year"])
    try:
        if match["day"]:
            return dt.date(year, int(match["month"]), int(match["day"]))
        if rule not in IMPUTE_RULES:
            return None
        if match["month"]:
            month = int(match["month"])
            day = {"first_day": 1, "middle": 15,
                   "last_day": calendar.monthrange(year, month)[1]}[rule]
            return dt.date(year, month, day)
        return {"first_day": dt.date(year, 1, 1), "middle": dt.date(year, 7, 1),
                "last_day": dt.date(year, 12, 31)}[rule]
    except ValueError:
        return None

