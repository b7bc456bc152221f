"""Writing CRF data. Every save goes through ``save_crf``: validation, status, history."""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from patients import scheduling
from patients.models import Deviation, DeviationRule, Participant, Visit, VisitStatus
from trials.models import crf_of

from . import checks
from .derivations import DERIVED
from .forms import missing_required
from .models import CRFRecord, CRFStatus


@transaction.atomic
def save_crf(
    participant: Participant,
    crf_code: str,
    data: dict,
    *,
    by,
    complete: bool,
    reason: str = "",
    record: CRFRecord | None = None,
    visit: Visit | None = None,
) -> CRFRecord:
    """Create or update one CRF record with answers already validated by its form.

    ``complete`` asks to mark it complete: refused while required answers are missing. Once a
    record has been completed, every later change needs a ``reason``; a locked one cannot change.
    A CRF carrying an anchor date (surgery, first injection) or a completed event (progression,
    end of treatment, death) updates the visit schedule in the same transaction: a date the
    schedule refuses (before randomisation…) refuses the save too.
    """
    version_id = record.protocol_version_id if record else participant.protocol_version_id
    definition = crf_of(version_id, crf_code)
    if definition is None:
        raise ValidationError(f"CRF {crf_code!r} is not part of this participant's protocol version.")
    if record is not None:
        record = CRFRecord.objects.select_for_update().get(pk=record.pk)
        if record.status == CRFStatus.LOCKED:
            raise ValidationError("This CRF is locked by the data manager; ask them to unlock it.")
        if record.ever_completed and not reason.strip():
            raise ValidationError({"reason": "Give the reason for changing a completed CRF."})
    if complete:
        missing = missing_required(definition, data)
        if missing:
            raise ValidationError(
                f"Cannot complete: required answers missing ({', '.join(missing)}).")
    results = checks.run_checks(definition, data, reference_dates(participant))
    hard = [r for r in results if r.blocks]
    if hard:
        raise ValidationError({r.path: r.message for r in hard})
    if record is None:
        record = CRFRecord(participant=participant, crf_code=crf_code, visit=visit,
                           protocol_version_id=version_id, created_by=by)
    data = derive(definition, data, participant=participant, record=record)
    record.data = data
    record.updated_by = by
    record.status = CRFStatus.COMPLETE if complete else CRFStatus.DRAFT
    record.ever_completed = record.ever_completed or complete
    record._change_reason = reason.strip() or None
    record.save()
    scheduling.apply_crf(record, by=by, reason=reason.strip())
    record.warnings = [r for r in results if not r.blocks]
    _record_deviations(record, record.warnings, by=by)
    return record


def reference_dates(participant: Participant) -> dict[str, dt.date | None]:
    """The dates edit checks compare with: every known anchor, and the last visit done."""
    refs: dict[str, dt.date | None] = {}
    allocation = getattr(participant, "allocation", None) if participant.is_randomised else None
    if allocation is not None:
        facts = scheduling.read_facts(participant, allocation)
        refs.update({f"anchor:{code}": day for code, day in facts.anchors.items()})
    refs["last_visit"] = (Visit.objects.filter(participant=participant, status=VisitStatus.DONE)
                          .aggregate(last=Max("done_on"))["last"])
    return refs


def derive(definition: dict, data: dict, *, participant: Participant, record: CRFRecord) -> dict:
    """Fill the CRF's ``derived`` fields from the answers: they are computed, never typed.

    RECIST needs the participant's other assessments of the same CRF: the earliest by date is
    the baseline, those dated between it and this one give the nadir.
    """
    derived = [f for f in definition["fields"] if f.get("derived")]
    if not derived:
        return data
    data = dict(data)
    context = {"baseline": None, "previous": []}
    date_field = next((f["code"] for f in definition["fields"] if f["type"] == "date"), None)
    if date_field and data.get(date_field):
        others = [r.data for r in CRFRecord.objects.filter(participant=participant,
                                                           crf_code=record.crf_code)
                  .exclude(pk=record.pk).only("data")
                  if r.data.get(date_field)]
        earlier = sorted((d for d in others if d[date_field] < data[date_field]),
                         key=lambda d: d[date_field])
        if earlier:
            context = {"baseline": earlier[0], "previous": earlier[1:]}
    for f in derived:
        compute = DERIVED.get(f["derived"])
        if compute is not None:
            data[f["code"]] = compute(data, context)
    return data


def _record_deviations(record: CRFRecord, warnings: list[checks.CheckResult], *, by) -> None:
    """A soft edit check that fails is a protocol deviation: recorded once per check and CRF."""
    for warning in warnings:
        description = (f"{record.crf_code}: {warning.message} "
                       f"({warning.days} day(s) past the limit; check {warning.code})")
        exists = Deviation.objects.filter(
            participant=record.participant, rule=DeviationRule.EDIT_CHECK, voided_at=None,
            description__startswith=f"{record.crf_code}: {warning.message}").exists()
        if not exists:
            Deviation.objects.create(participant=record.participant, visit=record.visit,
                                     rule=DeviationRule.EDIT_CHECK, days_outside=warning.days,
                                     description=description, detected_by=by)
