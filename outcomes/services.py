"""Writing CRF data. Every save goes through ``save_crf``: validation, status, history."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from patients import scheduling
from patients.models import Participant
from trials.models import crf_of

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
    if record is None:
        record = CRFRecord(participant=participant, crf_code=crf_code,
                           protocol_version_id=version_id, created_by=by)
    record.data = data
    record.updated_by = by
    record.status = CRFStatus.COMPLETE if complete else CRFStatus.DRAFT
    record.ever_completed = record.ever_completed or complete
    record._change_reason = reason.strip() or None
    record.save()
    scheduling.apply_crf(record, by=by, reason=reason.strip())
    return record
