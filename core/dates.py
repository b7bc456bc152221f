"""Dates and instants as a reader sees them, in the active language's one format
(``config/formats/<language>/formats.py``): for PDFs, e-mails and messages built in Python.
Templates use the same formats by name (``|date:"DATE_FORMAT"``). Exports (CSV, ODM, API) and
the audit log's stored messages stay ISO 8601 and do not use these."""
from __future__ import annotations

import datetime as dt

from django.utils import formats, timezone


def shown_date(day: dt.date | None, empty: str = "") -> str:
    """``2026-12-04`` in English, ``04/12/2026`` in French."""
    return formats.date_format(day, "DATE_FORMAT") if day else empty


def shown_instant(instant: dt.datetime | None, *, zone: bool = True, empty: str = "") -> str:
    """An instant in the trials' time zone, to the minute: with the zone's name
    (``DATETIME_FORMAT``), or without it (``zone=False``, ``SHORT_DATETIME_FORMAT``)."""
    if instant is None:
        return empty
    local = timezone.localtime(instant) if timezone.is_aware(instant) else instant
    return formats.date_format(local, "DATETIME_FORMAT" if zone else "SHORT_DATETIME_FORMAT")
