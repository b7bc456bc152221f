"""Where the protocol reads a dated fact from the CRFs: a *source*.

A source names a date field of a CRF (``field``, or ``group.field`` for every row of a repeating
group) and, optionally, a condition that must hold for the date to count (``when``: a choice, or
any of a multiple choice's values). A condition on a field of the same group is read row by row
(an adverse event of grade 5 dates a death by *its* end date), one on a top-level field for the
whole record (a tumour assessment whose derived response is PD).

The protocol's ``events`` declare, for each clinical event, the record that states it
(``source``: the progression form, the death form) and the other records that also show it
(``shown_by``: a derived PD on a tumour assessment, an end of study for death, an adverse event
of grade 5). ``event_sources`` lists them all: the endpoints take the earliest date among them
(``outcomes.endpoints``) and ``crfs.agreement`` raises a query where they disagree.

A date field the protocol allows to be partial (``partial: {precision: month}``) is read as
unknown (None) unless the reader asks for the protocol's imputation rule (``impute``): only an
analysis does (``outcomes.endpoints``), and says so in its method sentences.
"""
from __future__ import annotations

import datetime as dt
from typing import Iterator, NamedTuple

from patients.windows import as_date

from .missing_data import impute as impute_date


class Hit(NamedTuple):
    """One date a source reads in one record: where (``path``, as a query names an answer:
    ``death_date``, ``events[2].end_date``) and the date (None: the condition holds but the date
    is not given)."""

    date: dt.date | None
    path: str
    imputed: bool = False  # a partial date dated by the protocol's rule


def matches(condition: dict | None, data: dict) -> bool:
    """Whether ``condition`` holds on ``data`` (codes compared as text: a grade coded 5 in the
    protocol and stored as 5 or "5" is the same answer)."""
    if condition is None:
        return True
    value = data.get(condition["field"])
    wanted = {str(v) for v in (condition["in"] if "in" in condition else [condition["equals"]])}
    values = value if isinstance(value, list) else [value]
    return any(v is not None and str(v) in wanted for v in values)


def _read(value, impute: str | None) -> tuple[dt.date | None, bool]:
    day = as_date(value)
    if day is not None or impute is None:
        return day, False
    day = impute_date(value, impute)
    return day, day is not None


def hits(source: dict, data: dict, *, impute: str | None = None) -> Iterator[Hit]:
    """Every date ``source`` reads in one record's answers ``data`` where its ``when`` holds;
    ``impute``: the protocol's rule for partial dates (``crfs.missing_data.impute``)."""
    condition = source.get("when")
    if "." not in source["field"]:
        if matches(condition, data):
            day, imputed = _read(data.get(source["field"]), impute)
            yield Hit(day, source["field"], imputed)
        return
    group, name = source["field"].split(".", 1)
    row_condition = None
    if condition is not None and condition["field"].startswith(f"{group}."):
        row_condition = {**condition, "field": condition["field"].split(".", 1)[1]}
    elif not matches(condition, data):
        return
    for i, row in enumerate(data.get(group) or []):
        row = row or {}
        if matches(row_condition, row):
            day, imputed = _read(row.get(name), impute)
            yield Hit(day, f"{group}[{i}].{name}", imputed)


def dates(source: dict, data: dict) -> list[dt.date]:
    """The dates ``source`` reads in ``data``, undated hits left out."""
    return [hit.date for hit in hits(source, data) if hit.date is not None]


def source_field(definition: dict, source: dict) -> dict | None:
    """The field definition a source reads (``field`` or ``group.field`` of its CRF)."""
    crf = next((c for c in definition.get("crfs", []) if c["code"] == source.get("crf")), None)
    fields, found = (crf["fields"] if crf else []), None
    for part in source.get("field", "").split("."):
        found = next((f for f in fields if f["code"] == part), None)
        if found is None:
            return None
        fields = found.get("fields", [])
    return found


def impute_rule(definition: dict, source: dict) -> str | None:
    """The protocol's imputation rule for the partial date a source reads, if it states one."""
    field = source_field(definition, source) or {}
    return (field.get("partial") or {}).get("impute")


def event_sources(definition: dict, code: str) -> list[dict]:
    """The sources of the protocol event ``code``: the record that states it first (its label
    the event's), then the records that also show it, each with a label."""
    event = next(e for e in definition.get("events", []) if e["code"] == code)
    return ([{**event["source"], "label": event["label"]}]
            + [{**s, "label": s.get("label") or s["crf"]} for s in event.get("shown_by", [])])


def endpoint_event_sources(definition: dict, endpoint: dict) -> list[dict]:
    """An endpoint's event sources: a protocol event (``{event: progression}``) stands for all
    of its sources, with the ``arms`` the endpoint gives it; a CRF source stands for itself."""
    sources = []
    for item in endpoint["events"]:
        if "event" in item:
            extra = {"arms": item["arms"]} if item.get("arms") else {}
            sources += [{**source, **extra} for source in event_sources(definition,
                                                                          item["event"])]
        else:
            sources.append(item)
    return sources
