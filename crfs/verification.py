"""Source data verification (SDV): the monitor marks a form, or answers of it, as agreeing with
the site's source documents, as the protocol's monitoring plan asks (``monitoring.sdv``: all
completed forms, the key data only, or a sample of each site's participants).

A mark stands for the value it verified. When a save changes that value (a whole form: any
answer), the mark is voided in the same transaction with what changed, by whom and why, and the
save says so (``voided``): the monitor verifies it again at the next visit.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit
from patients.locks import refuse_change
from patients.models import Participant
from trials import policy
from trials.policy import Perm

from . import trail
from .models import CRFRecord, CRFStatus, SourceVerification

WHOLE_FORM = ""


def plan(definition: dict) -> dict:
    """The protocol's monitoring plan (every completed form when it states none)."""
    return definition.get("monitoring") or {"sdv": "all"}


def sampled(participant: Participant, rules: dict) -> bool:
    """In an ``sdv: sample`` plan: is ``participant`` verified? The first ``first_per_site``
    registered at their site are; of the others, those whose study ID's SHA-256 (with the
    trial's) falls under ``fraction``: a draw anyone can redo, that nobody chooses."""
    sample = rules["sample"]
    earlier = (Participant.objects.filter(site_id=participant.site_id, pk__lt=participant.pk)
               .count())
    if earlier < sample["first_per_site"]:
        return True
    seed = f"{participant.trial.slug}:{participant.study_id}".encode()
    draw = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") / 2 ** 64
    return draw < sample["fraction"]


def required(record: CRFRecord, rules: dict | None = None) -> list[str]:
    """What the plan asks to verify of ``record``: ``[""]`` for the whole form, field codes,
    or nothing."""
    rules = rules or plan(record.participant.definition)
    if rules["sdv"] == "all":
        return [WHOLE_FORM]
    if rules["sdv"] == "sample":
        return [WHOLE_FORM] if sampled(record.participant, rules) else []
    for item in rules["key_data"]:
        if item["crf"] == record.crf_code:
            return list(item.get("fields") or [WHOLE_FORM])
    return []


def _value(record: CRFRecord, path: str):
    if path == WHOLE_FORM:
        # The answers the site entered: derived values (recomputed when other forms change)
        # are not verified against a source.
        derived = {f["code"] for f in record.definition["fields"] if f.get("derived")}
        answers = {k: v for k, v in (record.data or {}).items()
                   if k not in derived and k != "derivation_notes"}
        return hashlib.sha256(json.dumps(answers, sort_keys=True, default=str)
                              .encode()).hexdigest()
    flat = trail.flatten(record.data)
    if isinstance(flat.get(path), trail.Coded):  # a missing-data code: verified as such
        return {"missing": flat[path].code, "reason": flat[path].reason}
    if path in flat:
        return flat[path]
    # A whole group: its rows as stored.
    return (record.data or {}).get(path)


@transaction.atomic
def verify(record: CRFRecord, *, by, paths: list[str] | None = None
           ) -> list[SourceVerification]:
    """Mark ``paths`` of ``record`` (the whole form when none) verified against the source.
    Only a completed form is verified; a path already verified keeps its mark."""
    participant = record.participant
    if not policy.has_perm(by, Perm.VERIFY_SOURCE, participant.trial, participant.site):
        raise PermissionDenied
    refuse_change(participant, only_if_locked=True)  # verified while frozen, not once locked
    record = CRFRecord.objects.select_for_update().get(pk=record.pk)
    if record.status == CRFStatus.DRAFT:
        raise ValidationError(_("%(crf)s is a draft: only a completed form is verified "
                                "against the source.") % {"crf": record.definition["label"]})
    paths = [p.strip() for p in (paths or [WHOLE_FORM])]
    unknown = [p for p in paths if p and trail.resolve(record.definition, p) is None]
    if unknown:
        raise ValidationError({"field_path": _("This CRF has no field “%(path)s”.") % {
            "path": ", ".join(unknown)}})
    now = timezone.now()
    done = []
    standing = set(record.verifications.filter(voided_at__isnull=True)
                   .values_list("field_path", flat=True))
    for path in dict.fromkeys(paths):
        if path in standing:
            continue
        done.append(SourceVerification.objects.create(
            record=record, field_path=path, verified_at=now, verified_by=by,
            value=_value(record, path)))
    if done:
        what = ", ".join(v.field_path or "the whole form" for v in done)
        audit.record("crf.source_verified",
                     f"{participant.study_id} {record.crf_code}: {what} verified against the "
                     f"source.", actor=by, trial=participant.trial, obj=record)
    return done


@dataclass(frozen=True)
class Voided:
    path: str
    label: str


def void_changed(record: CRFRecord, *, by, reason: str) -> list[Voided]:
    """After a save of ``record``: void each mark whose verified value changed (inside the
    save's transaction). Returns what lost its mark, for the page to say."""
    voided = []
    now = timezone.now()
    for mark in record.verifications.filter(voided_at__isnull=True):
        current = _value(record, mark.field_path)
        if current == mark.value:
            continue
        label = (trail.path_label(record.definition, mark.field_path) if mark.field_path
                 else _("the whole form"))
        who = by.get_full_name() or by.username
        mark.voided_at, mark.voided_by = now, by
        mark.void_reason = (f"{mark.field_path or 'form'} changed by {who}"
                            + (f": {reason}" if reason else ""))
        mark.save(update_fields=["voided_at", "voided_by", "void_reason"])
        voided.append(Voided(mark.field_path, label))
    if voided:
        audit.record("crf.source_verification_voided",
                     f"{record.participant.study_id} {record.crf_code}: verification of "
                     f"{', '.join(v.path or 'the whole form' for v in voided)} removed: the "
                     f"verified data changed.", actor=by, trial=record.participant.trial,
                     obj=record)
    return voided


def status(record: CRFRecord, marks: list[SourceVerification] | None = None) -> str:
    """``verified`` when every path the plan asks for has a mark in force, ``partial`` when
    some have, ``to_verify`` when none has, ``not_required`` when the plan asks nothing."""
    needed = required(record)
    if not needed or record.status == CRFStatus.DRAFT:
        return "not_required" if not needed else "to_verify"
    marks = marks if marks is not None else list(record.verifications.all())
    standing = {m.field_path for m in marks if m.voided_at is None}
    if WHOLE_FORM in standing or all(p in standing for p in needed):
        return "verified"
    return "partial" if standing & set(needed) else "to_verify"


# --------------------------------------------------------------------------- set-wise (matrix)


def paths_asked(rules: dict, crf_code: str) -> list[str]:
    """What makes a form of ``crf_code`` verified in the subject matrix, without a query: the
    key data the plan lists for it, else the whole form (a form the plan asks nothing of counts
    as verified when the monitor marked it whole; a sample plan's draw is not redone per cell).
    """
    if rules["sdv"] == "key_data":
        for item in rules["key_data"]:
            if item["crf"] == crf_code:
                return list(item.get("fields") or [WHOLE_FORM])
    return [WHOLE_FORM]


def is_verified(rules: dict, crf_code: str, record_status: str | None,
                standing: set[str]) -> bool:
    """Whether a record with marks in force on ``standing`` paths is verified (pure)."""
    if record_status in (None, CRFStatus.DRAFT):
        return False
    return WHOLE_FORM in standing or all(p in standing for p in paths_asked(rules, crf_code))


def standing_marks(record_ids) -> dict[int, set[str]]:
    """The paths with a mark in force of each of ``record_ids``: one query."""
    out: dict[int, set[str]] = {}
    for record_id, path in (SourceVerification.objects
                            .filter(record_id__in=record_ids, voided_at__isnull=True)
                            .order_by().values_list("record_id", "field_path")):
        out.setdefault(record_id, set()).add(path)
    return out


def verified_records(records, rules: dict):
    """``records`` (a CRFRecord queryset) narrowed to the verified ones, in SQL: the filter
    of the subject matrix."""
    def mark(path):
        return Exists(SourceVerification.objects.filter(record=OuterRef("pk"),
                                                        field_path=path,
                                                        voided_at__isnull=True))
    condition = Q(mark(WHOLE_FORM))
    if rules["sdv"] == "key_data":
        for item in rules["key_data"]:
            fields = [p for p in (item.get("fields") or []) if p]
            if fields:
                all_marked = Q(crf_code=item["crf"])
                for path in fields:
                    all_marked &= Q(mark(path))
                condition |= all_marked
    return records.exclude(status=CRFStatus.DRAFT).filter(condition)
