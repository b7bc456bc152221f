"""One truth for each event: the records that show a protocol event must agree.

The protocol's ``events`` name, for an event such as progression or death, the record that
states it (``source``: the progression form, the death form) and the other records that also
show it (``shown_by``: a tumour assessment whose derived RECIST response is PD; an end of study
for the reason "death"; an adverse event of grade 5). The endpoints take the earliest date
among them all (``outcomes.endpoints``), so a progression seen on a scan is never lost; and
where the records disagree a data query asks the site to put them right:

- **missing**: another record shows the event but its own record is not completed (PD on a
  scan, no progression form). The query is raised on the record that shows it, at the answer
  that does (the scan's assessment date), and names the form to complete: a form not yet
  entered has no answer a query could point at.
- **unconfirmed**: the event's record is completed but a record the protocol expects beside it
  is not (``expected``: a death without its end-of-study form; ``expected_when``: a
  radiological progression without a scan whose response is PD). The query is raised on the
  event's record, at its date.
- **dates differ**: both exist but their earliest dates differ. The query is raised on the
  record dated later — the late one — naming the other's date.

Only completed, signed or locked records count, as for the endpoints: a draft is not data yet.
Each query is automatic (no author), keyed by the event and the other record's CRF
(``check_code`` ``agree.<event>.<crf>``) with the record and answer it is raised on. It closes
itself, with a message saying so, once the records agree; if they disagree again it re-opens.
One the data manager closed (the difference is accepted: a clinical progression dated before
the scan that confirmed it) is not raised again for the same record and answer.

``reconcile`` runs inside the transaction of every change that can move an event's records:
saving a CRF (and the re-derivations it causes), unlocking one.
"""
from __future__ import annotations

from typing import NamedTuple

from django.utils import timezone

from patients.models import Participant

from .models import CRFRecord, CRFStatus, DataQuery, MessageKind, QueryMessage, QueryStatus
from .sources import event_sources, hits, matches

PREFIX = "agree."
COUNTED = [CRFStatus.COMPLETE, CRFStatus.SIGNED, CRFStatus.LOCKED]


class Disagreement(NamedTuple):
    record_id: int
    field_path: str
    check_code: str
    text: str


class _Found(NamedTuple):
    date: object          # dt.date | None
    record: CRFRecord
    path: str


def event_crfs(definition: dict) -> set[str]:
    """The CRFs whose records state or show an event the protocol cross-checks."""
    return {source["crf"] for event in definition.get("events", []) if event.get("shown_by")
            for source in event_sources(definition, event["code"])}


def _earliest(source: dict, records: list[CRFRecord]) -> _Found | None:
    found = [_Found(hit.date, record, hit.path) for record in records
             if record.crf_code == source["crf"] for hit in hits(source, record.data or {})]
    # Dated first, earliest first; an undated hit still shows the event.
    found.sort(key=lambda f: (f.date is None, f.date or timezone.now().date(), f.record.pk))
    return found[0] if found else None


def _expected(source: dict, own: CRFRecord) -> bool:
    if "expected_when" in source:
        return matches(source["expected_when"], own.data or {})
    return bool(source.get("expected"))


def _when(found: _Found) -> str:
    return found.date.isoformat() if found.date else "an undated answer"


def disagreements(definition: dict, records: list[CRFRecord]) -> list[Disagreement]:
    """Where the completed ``records`` of one participant disagree on an event."""
    result = []
    for event in definition.get("events", []):
        if not event.get("shown_by"):
            continue
        own_source, *others = event_sources(definition, event["code"])
        own = _earliest(own_source, records)
        name = event["label"]
        form = own_source["crf"]
        for source in others:
            code = f"{PREFIX}{event['code']}.{source['crf']}"[:64]
            other = _earliest(source, records)
            if own is None and other is not None:
                result.append(Disagreement(
                    other.record.pk, other.path, code,
                    f"{source['label']} on {_when(other)}, but no {form} form is completed "
                    f"({name}). Complete the {form} form, or correct this record."))
            elif own is not None and other is None and _expected(source, own.record):
                result.append(Disagreement(
                    own.record.pk, own.path, code,
                    f"{name} recorded on {_when(own)}, but no record shows it as the protocol "
                    f"expects: {source['label']} ({source['crf']}). Complete that record, or "
                    f"correct this one."))
            elif (own is not None and other is not None and own.date and other.date
                  and own.date != other.date):
                late, early, early_label = ((own, other, source["label"]) if own.date > other.date
                                            else (other, own, f"the {form} form"))
                result.append(Disagreement(
                    late.record.pk, late.path, code,
                    f"{name}: dated {late.date.isoformat()} here, but {early_label} gives "
                    f"{early.date.isoformat()}. Correct the date that is wrong."))
    return result


class Reconciled(NamedTuple):
    raised: int = 0
    closed: int = 0
    reopened: int = 0


def rules_for(participant: Participant) -> dict:
    """The protocol whose ``events`` the records are checked against: the trial's current
    version, as for the endpoints they feed (``outcomes.endpoints``), whichever version the
    participant's own forms follow; so the queries ask for what the analysis reads."""
    return participant.trial.definition


def reconcile(participant: Participant) -> Reconciled:
    """Raise, close or re-open the participant's event-agreement queries so that they match
    ``disagreements`` on the records as they are now (two queries when nothing changes)."""
    definition = rules_for(participant)
    crfs = event_crfs(definition)
    if not crfs:
        return Reconciled()
    records = list(CRFRecord.objects.filter(participant=participant, crf_code__in=crfs,
                                            status__in=COUNTED).order_by("pk"))
    wanted = {(d.record_id, d.field_path, d.check_code): d
              for d in disagreements(definition, records)}
    existing = {}
    for query in (DataQuery.objects.filter(record__participant=participant, raised_by=None,
                                           check_code__startswith=PREFIX)
                  .order_by("raised_at", "pk")):
        existing[(query.record_id, query.field_path, query.check_code)] = query
    now = timezone.now()
    raised = closed = reopened = 0
    for key, found in wanted.items():
        query = existing.get(key)
        if query is None:
            query = DataQuery.objects.create(record_id=found.record_id,
                                             field_path=found.field_path,
                                             check_code=found.check_code, raised_at=now)
            QueryMessage.objects.create(query=query, kind=MessageKind.RAISED, at=now,
                                        text=f"Automatic query: {found.text}")
            raised += 1
        elif query.status == QueryStatus.CLOSED and query.closed_by_id is None:
            query.status, query.closed_at = QueryStatus.OPEN, None
            query.save(update_fields=["status", "closed_at"])
            QueryMessage.objects.create(query=query, kind=MessageKind.REOPENED, at=now,
                                        text=f"The records disagree again: {found.text}")
            reopened += 1
    for key, query in existing.items():
        if key not in wanted and query.status != QueryStatus.CLOSED:
            query.status, query.closed_at, query.closed_by = QueryStatus.CLOSED, now, None
            query.save(update_fields=["status", "closed_at", "closed_by"])
            QueryMessage.objects.create(query=query, kind=MessageKind.CLOSED, at=now,
                                        text="Closed automatically: the records agree now.")
            closed += 1
    return Reconciled(raised, closed, reopened)
