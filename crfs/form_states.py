"""The state of one expected form at one visit, as the subject matrix and the participant page
show it: the record's status when it exists, else whether the form is missing (expected and
overdue) or simply not started yet.

"Missing" is the data manager's word for a form that should exist by now: its visit was done
(the site saw the participant) and the form is absent, or the visit's window has closed without
the visit being recorded at all (``VisitState.OVERDUE``). A form of a visit marked not done or
not applicable is not expected any more: it is shown as such, never as missing.

An open query is not a state of its own but a mark on top of one (a complete form can carry a
query): ``FormState.QUERY`` exists for the filters, which look for either.

Verified against the source (SDV, ``crfs.verification``): a complete form whose answers the
protocol's monitoring plan asks for all have a mark in force is shown ``verified``; a signed or
locked one keeps its state and carries a verified mark, as an open query does (the subject
matrix's filter on ``verified`` finds both).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, Func, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from patients.models import Visit, VisitStatus

from .models import CRFRecord, CRFStatus


class FormState:
    NOT_STARTED = "not_started"
    MISSING = "missing"
    NOT_DONE = "not_done"          # the visit was not done or does not apply
    DRAFT = CRFStatus.DRAFT.value
    COMPLETE = CRFStatus.COMPLETE.value
    SIGNED = CRFStatus.SIGNED.value
    LOCKED = CRFStatus.LOCKED.value
    QUERY = "query"                # a mark on a record (open or answered queries), for filters
    VERIFIED = "verified"          # complete and verified against the source (SDV)


LABELS = {
    FormState.NOT_STARTED: _("Not started"),
    FormState.MISSING: _("Missing"),
    FormState.NOT_DONE: _("Visit not done"),
    FormState.DRAFT: _("Draft"),
    FormState.COMPLETE: _("Complete"),
    FormState.SIGNED: _("Signed"),
    FormState.LOCKED: _("Locked"),
    FormState.QUERY: _("Open query"),
    FormState.VERIFIED: _("Verified against source"),
}

# The symbol shown with each state's colour, so that colour is never the only signal (WCAG
# 1.4.1). Plain characters every system font has; the state's name goes with it for screen
# readers and in the cell's title.
SYMBOLS = {
    FormState.NOT_STARTED: "·",
    FormState.MISSING: "!",
    FormState.NOT_DONE: "–",
    FormState.DRAFT: "✎",
    FormState.COMPLETE: "✓",
    FormState.SIGNED: "✍",
    FormState.LOCKED: "■",
    FormState.QUERY: "?",
    FormState.VERIFIED: "☑",
}

# The states a filter may ask for, in the order of the legend.
FILTER_STATES = [FormState.MISSING, FormState.NOT_STARTED, FormState.DRAFT, FormState.COMPLETE,
                 FormState.VERIFIED, FormState.SIGNED, FormState.LOCKED, FormState.QUERY]
LEGEND = [FormState.NOT_STARTED, FormState.MISSING, FormState.DRAFT, FormState.COMPLETE,
          FormState.VERIFIED, FormState.SIGNED, FormState.LOCKED, FormState.NOT_DONE,
          FormState.QUERY]


def form_state(visit_status: str, window_closes: dt.date | None, record_status: str | None,
               today: dt.date) -> str:
    """The state of one form expected at a visit (``record_status`` None: no record)."""
    if record_status is not None:
        return record_status
    if visit_status == VisitStatus.DONE:
        return FormState.MISSING
    if visit_status == VisitStatus.PLANNED:
        if window_closes is not None and today > window_closes:
            return FormState.MISSING
        return FormState.NOT_STARTED
    return FormState.NOT_DONE


@dataclass(frozen=True)
class MissingForm:
    visit: Visit
    crf_code: str
    label: str


def missing_forms(visits: list[Visit], records: list[CRFRecord], today: dt.date, *,
                  definition: dict | None = None) -> list[MissingForm]:
    """The forms missing at ``visits`` (one participant's), given their ``records``: pure, for
    pages that have both already. ``definition`` (the protocol's) names the forms."""
    labels = {c["code"]: c.get("label", c["code"]) for c in (definition or {}).get("crfs", [])}
    entered = {(r.visit_id, r.crf_code) for r in records if r.visit_id}
    return [MissingForm(v, code, labels.get(code, code)) for v in visits for code in (v.crfs or [])
            if (v.pk, code) not in entered
            and form_state(v.status, v.window_closes, None, today) == FormState.MISSING]


# --------------------------------------------------------------------------- in SQL


class JSONArrayLength(Func):
    """The number of elements of a JSON array column (``Visit.crfs``)."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="jsonb_array_length", **extra)


def _records_at_visit() -> Coalesce:
    counted = (CRFRecord.objects.filter(visit=OuterRef("pk")).order_by().values("visit")
               .annotate(n=Count("pk")).values("n"))
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def visits_with_missing_forms(visits, today: dt.date):
    """``visits`` narrowed to those with a missing form: done, or planned with the window
    closed, and fewer records than expected forms (a record exists only for an expected form:
    ``crfs.services.check_new_record``)."""
    due = Q(status=VisitStatus.DONE) | Q(status=VisitStatus.PLANNED, window_closes__lt=today)
    return (visits.filter(due).alias(expected=JSONArrayLength("crfs"),
                                     entered=_records_at_visit())
            .filter(expected__gt=F("entered")))


def visits_with_forms_not_started(visits, today: dt.date):
    """``visits`` narrowed to planned ones whose window is still open or to come, with a form
    not entered yet."""
    return (visits.filter(status=VisitStatus.PLANNED, window_closes__gte=today)
            .alias(expected=JSONArrayLength("crfs"), entered=_records_at_visit())
            .filter(expected__gt=F("entered")))

