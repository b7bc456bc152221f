"""Is a participant eligible? Read from the protocol's ``eligibility`` CRF.

Convention of the protocol files: the ``eligibility`` CRF has one required yes/no field per
criterion, with the criterion's code; "yes" means the criterion holds. Eligible means every
inclusion criterion answered yes and every exclusion criterion answered no.

A criterion may say how it follows from a source value of the same form (``derive`` in the
protocol's ``eligibility``: the age from the year or date of birth at the screening date,
REMINET's "at least 2 months of first-line treatment" from the duration recorded). Saving the
form (``crfs.services.save_crf``) derives a blank answer and refuses one that contradicts its
source, naming both (``derive_criteria``).

Where the protocol asks for it (``eligibility_confirmation.required``), an investigator of the
participant's site confirms eligibility before randomisation: a ``CRFSignature`` of the
eligibility record with the meaning "eligibility confirmed" (``crfs.services.
confirm_eligibility``). Like every signature it is bound to the record's content by its digest,
so any later change of the form voids it (``confirmation``).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.utils.translation import gettext as _

from patients.models import Participant
from patients.windows import as_date

from . import trail
from .models import CRFRecord, CRFSignature, CRFStatus, SignatureMeaning

ELIGIBILITY_CRF = "eligibility"


@dataclass(frozen=True)
class Eligibility:
    complete: bool                         # every criterion answered, and the CRF completed
    met: bool                              # complete and every criterion as required
    unanswered: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)   # the criteria that exclude

    @property
    def eligible(self) -> bool:
        return self.complete and self.met


def eligibility_record(participant: Participant):
    """The participant's eligibility CRF record, or None: one at most, as for every form not
    tied to a visit (``CRFRecord``'s ``one_crf_outside_visits``)."""
    return (CRFRecord.objects.filter(participant=participant, crf_code=ELIGIBILITY_CRF)
            .order_by("pk").first())


def evaluate(participant: Participant, record=None) -> Eligibility:
    record = record if record is not None else eligibility_record(participant)
    criteria = participant.definition["eligibility"]
    data = record.data if record is not None else {}
    unanswered = [c["code"] for c in criteria if data.get(c["code"]) is None]
    failed = [c for c in criteria if data.get(c["code"]) is not None
              and bool(data[c["code"]]) != (c["kind"] == "inclusion")]
    complete = (record is not None and record.status != CRFStatus.DRAFT and not unanswered)
    return Eligibility(complete=complete, met=complete and not failed,
                       unanswered=unanswered, failed=failed)


# --------------------------------------------------------------------------- derived criteria


def _number(value) -> Decimal | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _age(born: dt.date, on: dt.date) -> int:
    """Completed years from ``born`` to ``on``."""
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def criterion_from_source(rule: dict, data: dict, fields: dict[str, dict]
                          ) -> tuple[bool | None, str]:
    """What the source value says of a criterion: (holds, the source described) — holds is
    None when the source is not recorded or does not decide (a year of birth 18 years before
    the screening year: 17 or 18 on the screening date)."""
    labels = {code: f["label"] for code, f in fields.items()}
    source, value = rule["from"], data.get(rule["from"])
    label = labels.get(source, source).lower()
    limit = Decimal(str(rule["value"]))
    if rule["rule"] == "age_at_least":
        on = as_date(data.get(rule["at"]))
        on_label = labels.get(rule["at"], rule["at"]).lower()
        born = as_date(value)
        if on is None:
            return None, ""
        if born is not None:
            age = _age(born, on)
            return age >= limit, _("the %(source)s %(value)s gives age %(age)d on the %(at)s "
                                   "%(on)s") % {"source": label, "value": born.isoformat(),
                                                "age": age, "at": on_label, "on": on.isoformat()}
        year = _number(value)
        if year is None:
            return None, ""
        oldest, youngest = on.year - int(year), on.year - int(year) - 1
        if youngest >= limit:
            holds = True
        elif oldest < limit:
            holds = False
        else:
            return None, ""
        age = f"{youngest}" if youngest == oldest else f"{youngest}-{oldest}"
        return holds, _("the %(source)s %(value)s gives age %(age)s on the %(at)s %(on)s") % {
            "source": label, "value": int(year), "age": age, "at": on_label,
            "on": on.isoformat()}
    number = _number(value)
    if number is None:
        return None, ""
    holds = number >= limit if rule["rule"] == "at_least" else number <= limit
    unit = fields.get(source, {}).get("unit", "")
    return holds, _("the %(source)s is %(value)s") % {
        "source": label, "value": f"{value} {unit}".strip()}


def derivable(definition: dict, crf_code: str) -> frozenset[str]:
    """The criteria of ``definition`` (a protocol version's) that saving the CRF ``crf_code``
    derives when left blank: the form does not require them."""
    if crf_code != ELIGIBILITY_CRF:
        return frozenset()
    return frozenset(c["code"] for c in definition.get("eligibility", []) if c.get("derive"))


def derive_criteria(criteria: list[dict], crf: dict, data: dict) -> tuple[dict, dict[str, str]]:
    """``data`` with each blank criterion the protocol can derive filled from its source, and
    the errors of answers that contradict their source (criterion code → message naming the
    answer and the source value)."""
    fields = {f["code"]: f for f in crf["fields"]}
    data = dict(data)
    errors: dict[str, str] = {}
    for criterion in criteria:
        rule = criterion.get("derive")
        if not rule:
            continue
        code = criterion["code"]
        holds, described = criterion_from_source(rule, data, fields)
        if holds is None:
            continue
        answer = data.get(code)
        if answer is None:
            data[code] = holds
        elif bool(answer) != holds:
            errors[code] = _("%(code)s answered %(answer)s but %(source)s.") % {
                "code": code, "answer": _("yes") if answer else _("no"), "source": described}
    return data, errors


# --------------------------------------------------------------------------- confirmation


def confirmation_required(participant: Participant) -> bool:
    """Whether the participant's protocol asks an investigator to confirm eligibility."""
    return bool(participant.definition.get("eligibility_confirmation", {}).get("required"))


def confirmation(record: CRFRecord | None) -> CRFSignature | None:
    """The investigator's confirmation standing on the record's current content, or None (never
    given, voided by a change, or the content changed since: its digest no longer matches).
    Reads the record's signatures (prefetched by list pages)."""
    if record is None:
        return None
    digest = None
    for signature in record.signatures.all():
        if signature.meaning != SignatureMeaning.ELIGIBILITY or signature.voided_at is not None:
            continue
        digest = digest or trail.content_digest(record)
        if signature.digest == digest:
            return signature
    return None


def record_with_signatures(participant: Participant) -> CRFRecord | None:
    """The eligibility record with its signatures (two queries; one when there is none), for
    ``confirmation`` and ``evaluate`` alike."""
    record = (CRFRecord.objects.filter(participant=participant, crf_code=ELIGIBILITY_CRF)
              .prefetch_related("signatures").order_by("pk").first())
    if record is not None:
        record.participant = participant
    return record


def confirmation_of(participant: Participant) -> CRFSignature | None:
    """The confirmation standing on the participant's eligibility record now (two queries)."""
    return confirmation(record_with_signatures(participant))


class ReadyState:
    """Where a screened participant stands before randomisation (the worklist's label)."""

    INCOMPLETE = "incomplete"          # consent or eligibility form missing
    NOT_ELIGIBLE = "not_eligible"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    READY = "ready"


def ready_state(participant: Participant, record: CRFRecord | None) -> str:
    result = evaluate(participant, record)
    if participant.consent_date is None or not result.complete:
        return ReadyState.INCOMPLETE
    if not result.met:
        return ReadyState.NOT_ELIGIBLE
    if confirmation_required(participant) and confirmation(record) is None:
        return ReadyState.AWAITING_CONFIRMATION
    return ReadyState.READY
