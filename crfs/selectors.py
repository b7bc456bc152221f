"""Reads of CRFs, signatures, queries and their history, for the pages that show them.

Callers pass a participant they already obtained through ``patients.selectors`` (so site
isolation is settled there: another site's participant is a 404 before anything here runs) or,
for lists across participants, the user, whose scope comes from ``trials.policy``. Every query a
page runs is in this module, with what it prefetches; the tests assert the counts, which do
not grow with the number of records, signatures, queries or messages.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db.models import F, Count, Max, OuterRef, Prefetch, Q, QuerySet, Subquery

from patients.models import Participant, Visit, VisitStatus
from trials import policy
from trials.models import Site, Trial, crf_of
from trials.protocol import crf_deriving, crf_scored_as

from . import trail
from .derivations import qlq_c30_scores, worst_ctcae_grade
from .eligibility import ELIGIBILITY_CRF
from .facts import RANDOMISATION, randomisation_date, read_facts
from .form_states import SYMBOLS
from .forms import visible
from .models import UNRESOLVED, CRFRecord, CRFSignature, DataQuery, QueryMessage, QueryStatus


QUERY_LIST_LIMIT = 100  # rows of the worklist's query list; the counts cover the rest


# --------------------------------------------------------------------------- one CRF


@dataclass(frozen=True)
class SignatureView:
    signature: CRFSignature
    state: str  # "valid", "voided" or "invalid" (the data no longer match the digest)

    @property
    def valid(self) -> bool:
        return self.state == "valid"


def signature_views(record: CRFRecord, signatures: list[CRFSignature]) -> list[SignatureView]:
    """Each signature with its state against ``record``'s current content (no query)."""
    current = trail.content_digest(record)
    return [SignatureView(s, "voided" if s.voided_at else
                          "valid" if s.digest == current else "invalid") for s in signatures]


@dataclass
class CRFPage:
    participant: Participant
    crf_code: str
    visit: Visit | None
    definition: dict | None
    record: CRFRecord | None
    version: int | None = None                # newest history row: what a signature would bind
    signatures: list[SignatureView] = field(default_factory=list)
    queries: list[DataQuery] = field(default_factory=list)  # each with ``thread`` (messages)
    marks: list = field(default_factory=list)  # source verifications in force (SDV)

    def marks_by_path(self) -> dict[str, object]:
        return {m.field_path: m for m in self.marks}

    @property
    def unresolved(self) -> list[DataQuery]:
        return [q for q in self.queries if q.status != QueryStatus.CLOSED]

    def queries_by_path(self) -> dict[str, list[DataQuery]]:
        out: dict[str, list[DataQuery]] = {}
        for q in self.unresolved:
            out.setdefault(q.field_path, []).append(q)
        return out

    @property
    def has_invalid_signature(self) -> bool:
        return any(s.state == "invalid" for s in self.signatures)


def _latest_version() -> Subquery:
    history = CRFRecord.history.model
    return Subquery(history.objects.filter(id=OuterRef("pk")).order_by("-history_id")
                    .values("history_id")[:1])


def _threads() -> Prefetch:
    return Prefetch("messages", queryset=QueryMessage.objects.select_related("author")
                    .order_by("at", "pk"), to_attr="thread")


def crf_page(participant: Participant, crf_code: str, visit: Visit | None) -> CRFPage:
    """One CRF of a participant as its page shows it: the record (or None before the first
    save), its newest version, its signatures (each with its state) and its queries with their
    messages, and its source verification marks in force. Five queries when the record exists,
    one otherwise."""
    record = (CRFRecord.objects.filter(participant=participant, crf_code=crf_code, visit=visit)
              .select_related("locked_by", "updated_by")
              .annotate(version=_latest_version()).first())
    version_id = record.protocol_version_id if record else participant.protocol_version_id
    if visit is not None:
        visit.participant = participant  # its title in the reader's language (Visit.title)
    page = CRFPage(participant, crf_code, visit, crf_of(version_id, crf_code), record)
    if record is None:
        return page
    record.participant, record.visit = participant, visit
    page.version = record.version
    page.signatures = signature_views(
        record, list(record.signatures.select_related("voided_by").order_by("signed_at", "pk")))
    page.marks = list(record.verifications.filter(voided_at__isnull=True)
                      .select_related("verified_by").order_by("verified_at", "pk"))
    page.queries = list(record.queries.select_related("raised_by", "closed_by")
                        .prefetch_related(_threads()).order_by("raised_at", "pk"))
    for q in page.queries:
        q.field_label = trail.path_label(page.definition, q.field_path)
        found = trail.resolve(page.definition, q.field_path)
        top = q.field_path.split("[", 1)[0]
        q.anchor = f"{top}-group" if found and (found[1] or found[0]["type"] == "group") \
            else f"{top}-field"
    return page


@dataclass(frozen=True)
class Change:
    path: str
    label: str
    old: str
    new: str


@dataclass
class Version:
    """One row of a CRF's history, with what changed since the row before."""
    row: Any                    # the HistoricalCRFRecord
    number: int                 # 1, 2, 3… in order of saving
    changes: list[Change]       # answers that changed (field level)
    status_change: tuple[str, str] | None  # (old, new) status labels, when it changed

    @property
    def created(self) -> bool:
        return self.row.history_type == "+"


def crf_history(record: CRFRecord) -> list[Version]:
    """Every saved version of ``record``, oldest first, with field-level differences computed
    from consecutive history rows (one query). Answers are shown as people read them."""
    rows = list(record.history.select_related("history_user").order_by("history_id"))
    return versions_of(rows, record.definition)


def versions_of(rows: list, definition: dict) -> list[Version]:
    """The versions of one record from its history rows already read, oldest first (no
    query): each with its field-level changes since the row before."""
    labels = dict(CRFRecord._meta.get_field("status").choices)
    versions, before = [], None
    for n, row in enumerate(rows, start=1):
        old_data = before.data if before is not None else {}
        changes = [Change(d.path, trail.path_label(definition, d.path),
                          trail.display(definition, d.path, d.old),
                          trail.display(definition, d.path, d.new))
                   for d in trail.differences(old_data, row.data)]
        status = None
        if before is None or before.status != row.status:
            status = (str(labels.get(before.status, "")) if before else "",
                      str(labels.get(row.status, row.status)))
        versions.append(Version(row, n, changes, status))
        before = row
    return versions


@dataclass(frozen=True)
class Answer:
    path: str
    label: str
    value: str
    level: int  # 0: a field or a group; 1: a field of a group's row


def answers(definition: dict, data: dict | None) -> list[Answer]:
    """The answers of a CRF in reading order, as printed and as shown before signing: fields
    hidden by ``show_if`` are left out, each group row is listed field by field."""
    data = data or {}
    out = []
    for f in definition.get("fields", []):
        if not visible(f, data, definition["fields"]):
            continue
        value = data.get(f["code"])
        shown = trail.flatten(data).get(f["code"], value)  # a missing-data code, if any
        out.append(Answer(f["code"], f["label"], trail.display(definition, f["code"], shown), 0))
        if f["type"] == "group":
            for i, row in enumerate(value or []):
                flat_row = trail.flatten(row)
                for sub in f["fields"]:
                    if visible(sub, row, f["fields"]):
                        path = f"{f['code']}[{i}].{sub['code']}"
                        out.append(Answer(path, f"#{i + 1} {sub['label']}",
                                          trail.display(definition, path,
                                                        flat_row.get(sub["code"])), 1))
    return out


# --------------------------------------------------------------------------- participant page


@dataclass(frozen=True)
class EventForm:
    code: str
    label: str
    record: CRFRecord | None


@dataclass(frozen=True)
class ParticipantForms:
    records: list[CRFRecord]           # each with ``label`` and ``unresolved`` (open queries)
    event_forms: list[EventForm]       # CRFs no visit lists (progression, death…)
    open_queries: list[DataQuery]      # each with ``question`` and its record
    endpoints: "Endpoints | None" = None


@dataclass(frozen=True)
class Endpoints:
    """Derived values over the participant's forms, computed from the answers (never typed)."""

    worst_ctcae_grade: int | None        # over every adverse event recorded (CTCAE v4.0)
    last_response: str | None            # RECIST 1.1 overall response at the last assessment
    qlq_c30: dict[str, float | None]     # scale scores of the last QLQ-C30 (EORTC manual)


def endpoints_of(records: list[CRFRecord], definition: dict) -> Endpoints:
    """From records already read (no query): adverse events, tumour assessments, QLQ-C30, each
    found where the protocol says (its safety section, the field it derives the RECIST
    response into, the form it scores as the QLQ-C30)."""
    ae = definition.get("safety", {}).get("adverse_events")
    events = ([{"events": [{"grade": (row or {}).get(ae["grade"])}
                           for row in (r.data or {}).get(ae["group"]) or []]}
               for r in records if r.crf_code == ae["crf"]] if ae else [])
    try:
        worst = worst_ctcae_grade(events)
    except ValueError:  # a stored grade the scale does not know: shown as unknown, not a 500
        worst = None
    response = crf_deriving(definition, "recist_overall_response")
    responses = [r.data[response[1]] for r in records
                 if response and r.crf_code == response[0] and (r.data or {}).get(response[1])]
    qlq_c30 = crf_scored_as(definition, "eortc_qlq_c30")
    questionnaires = [r for r in records if qlq_c30 and r.crf_code == qlq_c30]
    scores: dict[str, float | None] = {}
    if questionnaires:
        try:
            scores = qlq_c30_scores(questionnaires[-1].data)
        except ValueError:
            scores = {}
    return Endpoints(worst, responses[-1].upper() if responses else None, scores)


def _question() -> Subquery:
    return Subquery(QueryMessage.objects.filter(query=OuterRef("pk"), kind="raised")
                    .order_by("at", "pk").values("text")[:1])


def participant_forms(participant: Participant) -> ParticipantForms:
    """The participant's CRF records (visit, form, status, open queries), the event forms not
    tied to visits, and the open queries. Two queries, whatever their numbers."""
    records = list(
        CRFRecord.objects.filter(participant=participant).select_related("visit")
        .annotate(unresolved=Count("queries", filter=Q(queries__status__in=UNRESOLVED)),
                  protocol_label=F("protocol_version__label"))
        .order_by("visit__target_date", "visit__occurrence", "crf_code", "pk"))
    definition = participant.definition
    for record in records:
        record.participant = participant
        crf = crf_of(record.protocol_version_id, record.crf_code) or {}
        record.label = crf.get("label", record.crf_code)
        record.symbol = SYMBOLS.get(record.status, "")  # the state's symbol, as in the matrix
    in_visits = {code for v in definition.get("visits", []) for code in v.get("crfs", [])}
    outside = {r.crf_code: r for r in records if r.visit_id is None}
    event_forms = [EventForm(c["code"], c["label"], outside.get(c["code"]))
                   for c in definition.get("crfs", [])
                   if c["code"] not in in_visits and c["code"] != ELIGIBILITY_CRF]
    queries = list(
        DataQuery.objects.filter(record__participant=participant, status__in=UNRESOLVED)
        .annotate(question=_question()).order_by("raised_at", "pk"))
    by_id = {r.pk: r for r in records}
    for q in queries:
        q.record = by_id[q.record_id]  # the same participant's: already read above
        crf = crf_of(q.record.protocol_version_id, q.record.crf_code) or {}
        q.field_label = trail.path_label(crf, q.field_path) if crf else q.field_path
    return ParticipantForms(records, event_forms, queries, endpoints_of(records, definition))


# --------------------------------------------------------------------------- worklists


@dataclass(frozen=True)
class SiteQueries:
    site_code: str
    open: int          # awaiting an answer from the site
    answered: int      # awaiting the data manager

    @property
    def total(self) -> int:
        return self.open + self.answered


@dataclass(frozen=True)
class QueryWorklist:
    per_site: list[SiteQueries]
    queries: list[DataQuery]   # the oldest unresolved first, at most QUERY_LIST_LIMIT
    total: int

    @property
    def more(self) -> int:
        return self.total - len(self.queries)


def unresolved_queries(user, trial: Trial, *, site: Site | None = None) -> QuerySet[DataQuery]:
    """Queries not closed, at the sites where ``user`` may see participants."""
    queries = DataQuery.objects.filter(record__participant__trial=trial,
                                       status__in=UNRESOLVED).filter(
        policy.site_filter(user, trial, field="record__participant__site"))
    if site is not None:
        queries = queries.filter(record__participant__site=site)
    return queries


def query_worklist(user, trial: Trial, *, site: Site | None = None) -> QueryWorklist:
    """Open queries of the user's sites: a count per site and the list (two queries)."""
    queries = unresolved_queries(user, trial, site=site)
    per_site = [SiteQueries(row["record__participant__site__code"], row["open"], row["answered"])
                for row in queries.values("record__participant__site__code")
                .annotate(open=Count("pk", filter=Q(status=QueryStatus.OPEN)),
                          answered=Count("pk", filter=Q(status=QueryStatus.ANSWERED)))
                .order_by("record__participant__site__code")]
    rows = list(queries.select_related("record__participant__site", "record__visit")
                .annotate(question=_question()).order_by("raised_at", "pk")[:QUERY_LIST_LIMIT])
    for q in rows:
        crf = crf_of(q.record.protocol_version_id, q.record.crf_code) or {}
        q.crf_label = crf.get("label", q.record.crf_code)
        q.field_label = trail.path_label(crf, q.field_path) if crf else q.field_path
    return QueryWorklist(per_site, rows, sum(s.total for s in per_site))


# --------------------------------------------------------------------------- casebook


@dataclass
class CasebookForm:
    """One CRF record of a participant with all that bears on it, for the casebook."""

    record: CRFRecord
    definition: dict
    versions: list[Version]
    signatures: list[SignatureView]
    queries: list[DataQuery]        # each with ``thread`` (its messages) and ``field_label``


def casebook_forms(participant: Participant) -> list[CasebookForm]:
    """Every CRF record of ``participant`` with its history (field-level changes), its
    signatures (each with its state) and its queries with their messages, in the order of
    their visits. Six queries, whatever the number of records, versions, signatures or
    queries (the protocol definitions are read once per process, ``trials.models``)."""
    records = list(CRFRecord.objects.filter(participant=participant)
                   .select_related("updated_by", "locked_by")
                   .order_by("visit__target_date", "visit__occurrence", "visit_id", "crf_code",
                             "pk"))
    ids = [r.pk for r in records]
    rows: dict[int, list] = {pk: [] for pk in ids}
    for row in (CRFRecord.history.filter(id__in=ids).select_related("history_user")
                .order_by("id", "history_id")):
        rows[row.id].append(row)
    signatures: dict[int, list[CRFSignature]] = {pk: [] for pk in ids}
    for sig in (CRFSignature.objects.filter(record__participant=participant)
                .select_related("voided_by").order_by("signed_at", "pk")):
        signatures[sig.record_id].append(sig)
    threads: dict[int, list[QueryMessage]] = {}
    for m in (QueryMessage.objects.filter(query__record__participant=participant)
              .select_related("author").order_by("at", "pk")):
        threads.setdefault(m.query_id, []).append(m)
    queries: dict[int, list[DataQuery]] = {pk: [] for pk in ids}
    for q in (DataQuery.objects.filter(record__participant=participant)
              .select_related("raised_by", "closed_by").order_by("raised_at", "pk")):
        q.thread = threads.get(q.pk, [])
        queries[q.record_id].append(q)
    out = []
    for record in records:
        record.participant = participant
        definition = crf_of(record.protocol_version_id, record.crf_code) or {}
        for q in queries[record.pk]:
            q.field_label = trail.path_label(definition, q.field_path)
        out.append(CasebookForm(record, definition, versions_of(rows[record.pk], definition),
                                signature_views(record, signatures[record.pk]),
                                queries[record.pk]))
    return out


# --------------------------------------------------------------------------- edit checks


def check_references(participant: Participant, keys: Iterable[str], *,
                     visit: Visit | None = None) -> dict[str, Any]:
    """The values outside a CRF its edit checks read, by the key the expressions name them
    (``crfs.checks``): ``anchor.<code>`` (known once the participant is randomised),
    ``last_visit`` (the last visit done), ``visit.date`` (the date the CRF's visit was done),
    ``<crf>.<field>`` (that CRF's record at the same visit when the visit plans it, else the
    participant's latest saved one) and ``<crf>@<visit>.<field>`` (its record at the
    participant's latest visit of that code). Stored values, None when unknown."""
    keys = set(keys)
    refs: dict[str, Any] = dict.fromkeys(keys)
    anchor_keys = {k for k in keys if k.startswith("anchor.")}
    allocation = (getattr(participant, "allocation", None)
                  if anchor_keys and participant.is_randomised else None)
    if allocation is not None and anchor_keys == {f"anchor.{RANDOMISATION}"}:
        refs[f"anchor.{RANDOMISATION}"] = randomisation_date(allocation)  # one query at most
    elif allocation is not None:
        # Anchors do not depend on withdrawals: their query is spared.
        anchors = read_facts(participant, allocation, withdrawals=()).anchors
        refs.update({k: anchors.get(k[len("anchor."):]) for k in anchor_keys})
    if "last_visit" in keys:
        refs["last_visit"] = (Visit.objects.filter(participant=participant,
                                                   status=VisitStatus.DONE)
                              .aggregate(last=Max("done_on"))["last"])
    if "visit.date" in keys:
        refs["visit.date"] = visit.done_on if visit is not None else None
    for key in keys:
        head, _, field_code = key.partition(".")
        if head in ("anchor", "visit", "last_visit") or not field_code:
            continue
        crf_code, _, visit_code = head.partition("@")
        records = CRFRecord.objects.filter(participant=participant, crf_code=crf_code)
        if visit_code:
            records = records.filter(visit__code=visit_code).order_by("-visit__occurrence", "-pk")
        elif visit is not None and crf_code in (visit.crfs or []):
            records = records.filter(visit=visit)
        else:
            records = records.order_by("-updated_at", "-pk")
        data = records.values_list("data", flat=True).first()
        refs[key] = data.get(field_code) if isinstance(data, dict) else None
    return refs
