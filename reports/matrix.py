"""The subject matrix of a trial: participants as rows, each visit's expected forms (and the
event forms) as columns, one cell per expected form with its state (``crfs.form_states``).

Built for a trial of 100,000 participants with fifty visits each (5 million visits): a page
costs the same six queries at any size (bench/subject_matrix.py, figures in bench/README.md).

1. The page of participants first, by keyset on the study ID (the unique ``(trial, study_id)``
   index gives the order; ``after``/``before`` are the study IDs at the page's edges, so the
   thousandth page costs what the first does, where an OFFSET would read every row before it).
2. Only then that page's visits, records, their source verification marks in force and open
   queries, each one query with ``__in`` on the
   page's participant ids (a few thousand rows at most).
3. The total for the pager is counted over participants only, where the filters are theirs
   (site, status, study ID), which the ``(trial, site, status)`` index answers. A filter on a
   visit or on a form's state would have to look at millions of visits to count: the pager then
   says only whether a next page exists (a row more is read), and no total is shown — rather
   than an estimate presented as a count.

Site isolation is ``policy.site_filter``; blinding: no arm unless ``policy.is_blinded_for`` says
the user may see arms, and for a blinded user no visit of a template restricted to arms (the
protocol loader refuses such visits in a blinded trial already; the matrix does not rely on it).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from crfs.eligibility import ELIGIBILITY_CRF
from crfs.form_states import (FILTER_STATES, LABELS, SYMBOLS, FormState, form_state,
                              visits_with_forms_not_started, visits_with_missing_forms)
from crfs import verification
from crfs.models import UNRESOLVED, CRFRecord, CRFStatus, DataQuery
from patients.models import RANDOMISED_STATUSES, Participant, Status, Visit
from trials import policy
from trials.models import Site, Trial

PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
# Visits side by side on one page: about what a tablet shows across (two forms a visit). The
# others are a click away, like the next participants.
VISITS_PER_PAGE = 10
EVENTS = ""  # the visit key of the event forms' columns (forms not tied to a visit)


@dataclass(frozen=True)
class Filters:
    site: Site | None = None
    status: str = ""
    visit: str = ""    # a visit template's code: its occurrences only
    state: str = ""    # one of crfs.form_states.FILTER_STATES
    search: str = ""   # part of a study ID

    @property
    def counted(self) -> bool:
        """Whether the total can be counted over participants alone (see the module's doc)."""
        return not (self.visit or self.state)


@dataclass(frozen=True)
class Column:
    visit_code: str      # EVENTS for an event form
    occurrence: int
    crf_code: str
    crf_label: str


@dataclass
class VisitGroup:
    visit_code: str
    occurrence: int
    title: str
    columns: list[Column] = field(default_factory=list)


@dataclass
class Cell:
    column: Column
    state: str | None          # None: the form is not expected of this participant there
    visit_id: int | None = None
    record_id: int | None = None
    open_queries: int = 0
    url: str = ""              # set by the page or the API, each with its own links
    verified: bool = False     # verified against the source (the state says so when complete)

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.state] if self.state else ""

    @property
    def label(self) -> str:
        return LABELS[self.state] if self.state else ""


@dataclass
class Row:
    participant_id: int
    study_id: str
    site_code: str
    status: str
    arm: str | None            # None for a blinded user (never fetched), or not randomised
    cells: list[Cell]

    def get_status_display(self) -> str:
        return Status(self.status).label


@dataclass(frozen=True)
class Matrix:
    today: dt.date
    filters: Filters
    show_arms: bool
    groups: list[VisitGroup]
    columns: list[Column]
    rows: list[Row]
    total: int | None          # None when not counted (a visit or state filter)
    has_next: bool
    has_previous: bool
    per_page: int
    visit_page: int = 1
    visit_pages: int = 1

    @property
    def first_key(self) -> str:
        return self.rows[0].study_id if self.rows else ""

    @property
    def last_key(self) -> str:
        return self.rows[-1].study_id if self.rows else ""


def _hidden_codes(user, trial: Trial) -> set[str]:
    """Visit templates a blinded user must not see: those of one arm only."""
    if not policy.is_blinded_for(user, trial):
        return set()
    return {v["code"] for v in trial.definition.get("visits", []) if v.get("arms")}


def event_forms(trial: Trial) -> list[dict]:
    """The protocol's forms not tied to a visit (progression, death…), eligibility aside."""
    definition = trial.definition
    in_visits = {code for v in definition.get("visits", []) for code in v.get("crfs", [])}
    return [c for c in definition.get("crfs", [])
            if c["code"] not in in_visits and c["code"] != ELIGIBILITY_CRF]


def participants(user, trial: Trial, filters: Filters, *, today: dt.date) -> QuerySet:
    """The participants the matrix lists, filtered: site-scoped, blinded visits left out."""
    rows = Participant.objects.filter(trial=trial).filter(policy.site_filter(user, trial))
    if filters.site is not None:
        rows = rows.filter(site=filters.site)
    if filters.status:
        rows = rows.filter(status=filters.status)
    if filters.search:
        rows = rows.filter(study_id__icontains=filters.search)
    hidden = _hidden_codes(user, trial)
    visits = Visit.objects.filter(participant=OuterRef("pk")).exclude(code__in=hidden)
    # Eligibility has its own place (the participant page, before randomisation): not a column.
    records = (CRFRecord.objects.filter(participant=OuterRef("pk"))
               .exclude(crf_code=ELIGIBILITY_CRF).exclude(visit__code__in=hidden))
    queries = (DataQuery.objects.filter(record__participant=OuterRef("pk"), status__in=UNRESOLVED)
               .exclude(record__crf_code=ELIGIBILITY_CRF)
               .exclude(record__visit__code__in=hidden))
    if filters.visit:
        visits = visits.filter(code=filters.visit)
        records = records.filter(visit__code=filters.visit)
        queries = queries.filter(record__visit__code=filters.visit)
        rows = rows.filter(Exists(visits))
    state = filters.state
    if state == FormState.MISSING:
        rows = rows.filter(Exists(visits_with_missing_forms(visits, today)))
    elif state == FormState.NOT_STARTED:
        rows = rows.filter(Exists(visits_with_forms_not_started(visits, today)))
    elif state == FormState.QUERY:
        rows = rows.filter(Exists(queries))
    elif state == FormState.VERIFIED:
        rows = rows.filter(Exists(verification.verified_records(
            records, verification.plan(trial.definition))))
    elif state:
        assert state in FILTER_STATES, state
        rows = rows.filter(Exists(records.filter(status=state)))
    return rows


def subject_matrix(user, trial: Trial, filters: Filters = Filters(), *, after: str = "",
                   before: str = "", per_page: int = PAGE_SIZE, visit_page: int = 1,
                   visits_per_page: int = VISITS_PER_PAGE,
                   today: dt.date | None = None) -> Matrix:
    """One page of the matrix: ``per_page`` participants by ``visits_per_page`` of their visits
    (the event forms with the last of these). Six queries whatever the trial's size, five
    when a filter leaves the total uncounted (the trial and the user's memberships are read by
    the caller's ``get_trial_for``)."""
    today = today or timezone.localdate()
    per_page = max(1, min(per_page, MAX_PAGE_SIZE))
    show_arms = not policy.is_blinded_for(user, trial)
    hidden = _hidden_codes(user, trial)
    rows_qs = participants(user, trial, filters, today=today)
    total = rows_qs.count() if filters.counted else None

    page = rows_qs.annotate(site_code=F("site__code"))
    if show_arms:
        page = page.annotate(arm_code=F("allocation__arm__code"))
    page = page.only("pk", "study_id", "status")
    if before:
        found = list(page.filter(study_id__lt=before).order_by("-study_id")[:per_page + 1])
        has_previous, has_next = len(found) > per_page, True
        found = list(reversed(found[:per_page]))
    else:
        if after:
            page = page.filter(study_id__gt=after)
        found = list(page.order_by("study_id")[:per_page + 1])
        has_next, has_previous = len(found) > per_page, bool(after)
        found = found[:per_page]
    ids = [p.pk for p in found]

    visits = Visit.objects.filter(participant_id__in=ids).exclude(code__in=hidden)
    if filters.visit:
        visits = visits.filter(code=filters.visit)
    visit_rows = list(visits.order_by().values_list(
        "pk", "participant_id", "code", "occurrence", "label", "unscheduled", "status",
        "window_closes", "crfs"))
    groups = _visit_groups(trial, visit_rows)
    visit_pages = max(1, -(-len(groups) // visits_per_page))
    visit_page = max(1, min(visit_page, visit_pages))
    groups = groups[(visit_page - 1) * visits_per_page:visit_page * visits_per_page]
    with_events = visit_page == visit_pages and not filters.visit
    if with_events:
        groups += _event_group(trial)
    shown = {(g.visit_code, g.occurrence) for g in groups}
    visit_rows = [v for v in visit_rows if (v[2], v[3]) in shown]
    in_view = Q(visit_id__in=[v[0] for v in visit_rows])
    if with_events:
        in_view |= Q(visit__isnull=True)
    records = {(pid, vid, code): (pk, status) for pk, pid, vid, code, status in
               CRFRecord.objects.filter(in_view, participant_id__in=ids).order_by()
               .values_list("pk", "participant_id", "visit_id", "crf_code", "status")}
    marks = verification.standing_marks([r[0] for r in records.values()])
    rules = verification.plan(trial.definition)
    queries = dict(DataQuery.objects.filter(record_id__in=[r[0] for r in records.values()],
                                            status__in=UNRESOLVED).order_by()
                   .values_list("record_id").annotate(n=Count("pk")))

    columns = [c for g in groups for c in g.columns]
    by_participant: dict[int, dict[tuple[str, int, str], tuple]] = {pk: {} for pk in ids}
    for pk, pid, code, occurrence, _label, _u, status, closes, crfs in visit_rows:
        for crf_code in crfs or []:
            record_id, record_status = records.get((pid, pk, crf_code), (None, None))
            by_participant[pid][(code, occurrence, crf_code)] = (
                pk, record_id, form_state(status, closes, record_status, today))

    def cell(column, state, visit_id, record_id):
        verified = record_id is not None and verification.is_verified(
            rules, column.crf_code, state, marks.get(record_id, set()))
        if verified and state == CRFStatus.COMPLETE:
            state = FormState.VERIFIED
        return Cell(column, state, visit_id, record_id, queries.get(record_id, 0),
                    verified=verified)

    rows = []
    for p in found:
        mine = by_participant[p.pk]
        cells = []
        for column in columns:
            if column.visit_code == EVENTS:
                if p.status not in RANDOMISED_STATUSES:  # event forms follow randomisation
                    cells.append(Cell(column, None))
                    continue
                record_id, status = records.get((p.pk, None, column.crf_code), (None, None))
                cells.append(cell(column, status or FormState.NOT_STARTED, None, record_id))
                continue
            hit = mine.get((column.visit_code, column.occurrence, column.crf_code))
            if hit is None:
                cells.append(Cell(column, None))
            else:
                cells.append(cell(column, hit[2], hit[0], hit[1]))
        rows.append(Row(p.pk, p.study_id, p.site_code, p.status,
                        getattr(p, "arm_code", None) if show_arms else None, cells))
    return Matrix(today, filters, show_arms, groups, columns, rows, total, has_next,
                  has_previous, per_page, visit_page, visit_pages)


def _visit_groups(trial: Trial, visit_rows: list[tuple]) -> list[VisitGroup]:
    """The visit columns of a page: each visit (template and occurrence) some participant of
    the page has, in the protocol's order of templates then by occurrence, unscheduled visits
    last; each with the forms expected there."""
    definition = trial.definition
    order = {v["code"]: i for i, v in enumerate(definition.get("visits", []))}
    labels = _crf_labels(trial)
    groups: dict[tuple[str, int], VisitGroup] = {}
    forms: dict[tuple[str, int], list[str]] = {}
    for _pk, _pid, code, occurrence, label, unscheduled, _s, _c, crfs in visit_rows:
        key = (code, occurrence)
        if key not in groups:
            title = f"{label} #{occurrence}" if unscheduled or occurrence > 1 else label
            groups[key] = VisitGroup(code, occurrence, title)
            forms[key] = []
        for crf_code in crfs or []:
            if crf_code not in forms[key]:
                forms[key].append(crf_code)
    result = []
    for key in sorted(groups, key=lambda k: (order.get(k[0], len(order)), k[0], k[1])):
        group = groups[key]
        group.columns = [Column(key[0], key[1], code, labels.get(code, code))
                         for code in forms[key]]
        result.append(group)
    return result


def _crf_labels(trial: Trial) -> dict[str, str]:
    return {c["code"]: c.get("label", c["code"]) for c in trial.definition.get("crfs", [])}


def _event_group(trial: Trial) -> list[VisitGroup]:
    """The event forms' columns (none when the protocol has no such form)."""
    events = VisitGroup(EVENTS, 0, "")
    events.columns = [Column(EVENTS, 0, c["code"], c.get("label", c["code"]))
                      for c in event_forms(trial)]
    return [events] if events.columns else []


def visit_choices(user, trial: Trial) -> list[tuple[str, str]]:
    """The visit templates a filter may name, in the protocol's order (arm-specific ones left
    out for a blinded user)."""
    hidden = _hidden_codes(user, trial)
    return [(v["code"], v.get("label", v["code"])) for v in trial.definition.get("visits", [])
            if v["code"] not in hidden]

