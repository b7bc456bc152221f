"""Writing CRF data and everything that bears on it, one plain function per action.

- ``save_crf``: validation, status, history, derived values, deviations, automatic queries
  (a soft edit check that fails; records that disagree on an event, ``crfs.agreement``); a
  change to a signed CRF voids its signature. It then re-derives the values of the
  participant's other records that read this one (``rederive``: RECIST responses read the
  baseline and earlier assessments), each with the cause in its history, and those whose
  protocol ``rebaseline`` anchor it dates (the surgery moves the baseline). It does not touch
  the visit schedule, which is planned from CRFs one layer up: pages, API and demo save
  through ``scheduling.services.save_crf_and_replan``, which calls this and then the planner.
- ``sign_crf`` (investigator, password typed again), ``lock_crf`` / ``unlock_crf`` (data
  manager): the status flow draft → complete → signed → locked.
- ``confirm_eligibility``: the investigator's confirmation of eligibility before
  randomisation, a signature of the eligibility CRF with its own meaning (``crfs.eligibility``);
  saving the eligibility CRF also derives the criteria the protocol derives from a source value
  and refuses an answer that contradicts it.
- ``raise_query``, ``answer_query``, ``close_query``, ``reopen_query``: data queries.

Each refuses bad input with a ``ValidationError`` naming the field it is about, and writes
nothing then (one transaction each). Each checks the permission with ``trials.policy`` except
``save_crf``, whose callers (the CRF page, the demo, the tests) check ``Perm.ENTER_CRF``
themselves. Every history row written here carries its author (``_history_user``), so the
trail says who even outside a web request.
"""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from core import audit, limits
from core.history import change_reason
from core.reauth import password_confirmed
from patients.locks import refuse_change
from patients.models import Deviation, DeviationRule, Participant, Visit
from trials import policy
from trials.models import crf_of, definition_of
from trials.policy import Perm

from . import agreement, checks, eligibility, selectors, trail, verification
from .agreement import event_crfs
from .derivations import ACROSS_RECORDS, NOTES_KEY, derive_fields
from .facts import read_facts
from .forms import missing_required
from .models import (UNRESOLVED, CRFRecord, CRFSignature, CRFStatus, DataQuery, MessageKind,
                     QueryMessage, QueryStatus, SignatureMeaning)


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
    Nor can any while the casebook, its site or its trial is frozen or locked (``patients.locks``).
    """
    refuse_change(participant)
    version_id = record.protocol_version_id if record else participant.protocol_version_id
    definition = crf_of(version_id, crf_code)
    if definition is None:
        raise ValidationError({"crf_code": _("CRF %(crf)s is not part of this participant's "
                                             "protocol version.") % {"crf": repr(crf_code)}})
    if record is None:
        check_new_record(participant, crf_code, visit)
    else:
        record = CRFRecord.objects.select_for_update().get(pk=record.pk)
        if record.status == CRFStatus.LOCKED:
            raise ValidationError(_("This CRF is locked by the data manager; ask them to unlock "
                                    "it."))
        if record.ever_completed and not reason.strip():
            raise ValidationError({"reason": _("Give the reason for changing a completed CRF.")})
    if crf_code == eligibility.ELIGIBILITY_CRF:
        # Criteria the protocol derives from a source value: a blank answer is filled, one
        # that contradicts its source refused (crfs/eligibility.py).
        data, contradictions = eligibility.derive_criteria(
            definition_of(version_id)["eligibility"], definition, data)
        if contradictions:
            raise ValidationError(contradictions)
    if complete:
        missing = missing_required(definition, data)
        if missing:
            raise ValidationError(
                f"Cannot complete: required answers missing ({', '.join(missing)}).")
    protocol = definition_of(version_id)
    visit_of_record = record.visit if record is not None else visit
    results = checks.run_checks(
        definition, data, selectors.check_references(
            participant, checks.referenced(definition, protocol), visit=visit_of_record),
        protocol=protocol, today=timezone.localdate())
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
    was_completed = record.ever_completed
    record.ever_completed = record.ever_completed or complete
    record._change_reason = reason.strip() or None
    record._history_user = by
    record.save()
    if was_completed:
        _void_signatures(record, by=by, reason=reason.strip())
    # A verified value that changed loses its SDV mark; the page says so (``sdv_voided``).
    record.sdv_voided = verification.void_changed(record, by=by, reason=reason.strip())
    if any(f.get("derived") in ACROSS_RECORDS for f in definition["fields"]):
        rederive(participant, crf_code, by=by, cause=f"re-derived after {_named(record)} changed")
    rebaselined = rebaselined_by(participant.definition, crf_code)
    for code in rebaselined:
        rederive(participant, code, by=by,
                 cause=f"re-derived after {_named(record)} changed (new baseline from its date)")
    record.warnings = [r for r in results if not r.blocks]
    _record_deviations(record, record.warnings, by=by)
    _automatic_queries(record, definition, record.warnings)
    if event_crfs(agreement.rules_for(participant)) & {crf_code, *rebaselined}:
        agreement.reconcile(participant)
    return record


def expected_at(visit: Visit | None, crf_code: str) -> bool:
    """Whether ``crf_code`` is one of the forms of ``visit`` (None: outside visits, where the
    protocol's event forms and eligibility are entered)."""
    return visit is None or crf_code in (visit.crfs or [])


def check_new_record(participant: Participant, crf_code: str, visit: Visit | None) -> None:
    """A new record is entered only for a CRF of the participant's protocol version, where it is
    expected, and once: a second one of the same CRF at the same visit (or outside visits)
    would split its data in two. ``save_crf`` checks it; the API asks it before reading the
    answers against the CRF's definition."""
    if crf_of(participant.protocol_version_id, crf_code) is None:
        raise ValidationError({"crf_code": _("CRF %(crf)s is not part of this participant's "
                                             "protocol version.") % {"crf": repr(crf_code)}})
    if visit is not None and (visit.participant_id != participant.pk
                              or not expected_at(visit, crf_code)):
        raise ValidationError({"visit": _("This CRF is not expected at that visit of this "
                                          "participant.")})
    existing = (CRFRecord.objects.filter(participant=participant, crf_code=crf_code, visit=visit)
                .values_list("pk", flat=True).first())
    if existing is not None:
        raise ValidationError({"crf_code": _(
            "This CRF is already entered (record %(id)d): update that record.") % {
                "id": existing}})


def derive(definition: dict, data: dict, *, participant: Participant, record: CRFRecord) -> dict:
    """Fill the CRF's ``derived`` fields from the answers: they are computed, never typed.

    RECIST needs the participant's other assessments of the same CRF: the earliest by date is
    the baseline, those dated between it and this one give the nadir; a protocol's
    ``rebaseline`` rule starts a new baseline at an anchor (``rebaseline_date``). A value that
    cannot be computed is stored as not evaluable (or empty, for a sum) with its reason under
    ``derivation_notes``.
    """
    if not any(f.get("derived") for f in definition["fields"]):
        return data
    others = [r.data for r in CRFRecord.objects.filter(participant=participant,
                                                       crf_code=record.crf_code)
              .exclude(pk=record.pk).only("data")]
    return _derived(definition, data, others,
                    rebaseline_from=rebaseline_date(definition, participant))


def rebaseline_date(definition: dict, participant: Participant) -> dt.date | None:
    """From which date the CRF's assessments have a new baseline for ``participant``, if any.

    The protocol's ``rebaseline`` rule on the CRF (``arms``, ``after_anchor``): for a
    participant of one of those arms whose anchor date is known, the first assessment dated on
    or after it is the baseline of the later ones; earlier ones keep the first baseline. None
    otherwise: no rule, not randomised (no arm), another arm, or the anchor not yet dated. The
    arm is read through the relation ``randomisation`` declares (the layer above), as the
    visit planner does.
    """
    rule = definition.get("rebaseline")
    if not rule or not participant.is_randomised:
        return None
    try:
        allocation = participant.allocation
    except ObjectDoesNotExist:
        return None
    if allocation.arm.code not in rule["arms"]:
        return None
    return read_facts(participant, allocation).anchors.get(rule["after_anchor"])


def rebaselined_by(definition: dict, crf_code: str) -> list[str]:
    """The CRFs whose ``rebaseline`` anchor is dated by ``crf_code``: changing that date moves
    their baseline, so their derived values are computed again."""
    sources = {a["code"]: a["source"]["crf"] for a in definition.get("anchors", [])}
    return [c["code"] for c in definition.get("crfs", [])
            if c.get("rebaseline") and sources.get(c["rebaseline"]["after_anchor"]) == crf_code]


def _derived(definition: dict, data: dict, others: list[dict], *,
             rebaseline_from: dt.date | None = None) -> dict:
    """``data`` with its derived fields computed against ``others``, the data of the
    participant's other records of the same CRF; from ``rebaseline_from`` on, only the
    assessments dated on or after it count (``rebaseline_date``)."""
    derived = [f for f in definition["fields"] if f.get("derived")]
    if not derived:
        return data
    data = dict(data)
    context: dict = {"baseline": None, "previous": []}
    date_field = _date_field(definition)
    if date_field and not data.get(date_field):
        context["undated"] = True
    elif date_field:
        if rebaseline_from is not None:
            # Stored dates are ISO strings: they compare as the dates do.
            cut = rebaseline_from.isoformat()
            after = data[date_field] >= cut
            others = [d for d in others
                      if d.get(date_field) and (d[date_field] >= cut) == after]
        earlier = sorted((d for d in others
                          if d.get(date_field) and d[date_field] < data[date_field]),
                         key=lambda d: d[date_field])
        if earlier:
            context = {"baseline": earlier[0], "previous": earlier[1:]}
    values, notes = derive_fields(derived, data, context)
    data.update(values)
    data.pop(NOTES_KEY, None)
    if notes:
        data[NOTES_KEY] = notes
    return data


def _date_field(definition: dict) -> str | None:
    return next((f["code"] for f in definition["fields"] if f["type"] == "date"), None)


def _named(record: CRFRecord) -> str:
    """``tumour_assessment of 2026-03-02``: a record as a history reason names it."""
    date_field = _date_field(record.definition) if record.definition else None
    day = (record.data or {}).get(date_field) if date_field else None
    return f"{record.crf_code} of {day}" if day else f"{record.crf_code} #{record.pk}"


def rederive(participant: Participant, crf_code: str, *, by, cause: str,
             skip_locked: bool = False) -> list[CRFRecord]:
    """Derived values are a function of the data, always: re-derive every record of
    ``participant``'s ``crf_code`` whose derived values read the others (RECIST: a response
    reads the baseline and every earlier assessment), after one of them changed.

    Called inside the transaction of the change. Each record whose derived values change is
    saved with ``cause`` as its history reason, by ``by``; a signed one loses its signature, as
    after any change, and is complete again. A locked record that would change refuses the
    whole change, naming it (a lock says the data are final: the data manager unlocks it
    first) — unless ``skip_locked``, for the unlock of another record. Records whose derived
    values stay the same are not saved again. Returns the records re-derived.
    """
    records = list(CRFRecord.objects.select_for_update(of=("self",))
                   .filter(participant=participant, crf_code=crf_code).order_by("pk"))
    across = [r for r in records if any(f.get("derived") in ACROSS_RECORDS
                                        for f in r.definition.get("fields", []))]
    changed = []
    cause = change_reason(cause)
    # The new baseline's date depends on the participant and the CRF's definition only: read
    # once per protocol version the records were created under, not once per record.
    rebaseline_from: dict[int, dt.date | None] = {}
    for record in across:
        if record.protocol_version_id not in rebaseline_from:
            rebaseline_from[record.protocol_version_id] = rebaseline_date(record.definition,
                                                                          participant)
        others = [r.data for r in records if r.pk != record.pk]
        data = _derived(record.definition, record.data, others,
                        rebaseline_from=rebaseline_from[record.protocol_version_id])
        if data == record.data:
            continue
        if record.status == CRFStatus.LOCKED:
            if skip_locked:
                continue
            raise ValidationError(_(
                "This change would change the derived values of %(crf)s, which is locked: ask "
                "the data manager to unlock it first.") % {"crf": _named(record)})
        record.data = data
        if record.status == CRFStatus.SIGNED:
            record.status = CRFStatus.COMPLETE
        record.updated_by = by
        record._change_reason = cause
        record._history_user = by
        record.save()
        _void_signatures(record, by=by, reason=cause)
        changed.append(record)
    return changed


def _record_deviations(record: CRFRecord, warnings: list[checks.CheckResult], *, by) -> None:
    """A soft edit check that fails is a protocol deviation: recorded once per check and CRF."""
    for warning in warnings:
        past = f"{warning.days} day(s) past the limit; " if warning.days is not None else ""
        description = f"{record.crf_code}: {warning.message} ({past}check {warning.code})"
        exists = Deviation.objects.filter(
            participant=record.participant, rule=DeviationRule.EDIT_CHECK, voided_at=None,
            description__startswith=f"{record.crf_code}: {warning.message}").exists()
        if not exists:
            Deviation.objects.create(participant=record.participant, visit=record.visit,
                                     rule=DeviationRule.EDIT_CHECK,
                                     days_outside=warning.days or 0,
                                     description=description, detected_by=by)


def _void_signatures(record: CRFRecord, *, by, reason: str) -> None:
    """A signature never stands on changed data: saving a signed CRF voids its signatures."""
    voided = CRFSignature.objects.filter(record=record, voided_at=None).update(
        voided_at=timezone.now(), voided_by=by, void_reason=reason)
    if voided:
        audit.record("crf.signature_voided",
                     f"{record.participant.study_id} {record.crf_code}: signature voided by a "
                     f"change. Reason: {reason}",
                     actor=by, trial=record.participant.trial, obj=record,
                     participant=record.participant)


def _automatic_queries(record: CRFRecord, definition: dict,
                       warnings: list[checks.CheckResult]) -> None:
    """A soft edit check that fails raises a query on its field, once: not again while it is
    unresolved, nor after the data manager closed it (the deviation was accepted). When a later
    save makes the check pass, its open automatic query is marked answered by the system, and
    the data manager closes it."""
    if not any(c.get("severity") == "soft" for c in definition.get("checks", [])):
        return
    soft = [c["code"] for c in definition.get("checks", []) if c.get("severity") == "soft"]
    existing = {(q.field_path, q.check_code): q for q in
                DataQuery.objects.filter(record=record, raised_by=None, check_code__in=soft)
                .order_by("raised_at", "pk")}
    now = timezone.now()
    failing = {(w.path, w.code): w for w in warnings}
    for key, warning in failing.items():
        if key not in existing:
            query = DataQuery.objects.create(record=record, field_path=warning.path,
                                             check_code=warning.code, raised_at=now)
            QueryMessage.objects.create(query=query, kind=MessageKind.RAISED, at=now,
                                        text=f"Automatic query: {warning.message}")
    for key, query in existing.items():
        if key not in failing and query.status == QueryStatus.OPEN:
            query.status = QueryStatus.ANSWERED
            query.save(update_fields=["status"])
            QueryMessage.objects.create(query=query, kind=MessageKind.ANSWERED, at=now,
                                        text="The edit check passes after this change.")


# --------------------------------------------------------------------------- status flow


def _english(text) -> str:
    """What is stored (history reasons, audit messages, query messages written by the system)
    is in English whatever the language of the person whose action wrote it; pages translate
    what they show, from codes."""
    with translation.override("en"):
        return str(text)


def _require(by, perm: Perm, participant: Participant) -> None:
    if not policy.has_perm(by, perm, participant.trial, participant.site):
        raise PermissionDenied(_("You may not do this (%(action)s) at this site.") % {
            "action": perm.value.replace("_", " ")})


def _locked(record: CRFRecord) -> CRFRecord:
    """The record, re-read under a row lock (with what its digest and checks read)."""
    return (CRFRecord.objects.select_for_update(of=("self",))
            .select_related("participant__trial", "participant__site").get(pk=record.pk))


def latest_version(record: CRFRecord):
    """The newest history row of ``record``: the version a page shows and a signature binds."""
    return record.history.order_by("-history_id").first()


def signature_is_valid(signature: CRFSignature, record: CRFRecord) -> bool:
    """A signature counts while it is not voided and the record's content is still what was
    signed (its digest) — whatever changed the data, a page or a raw SQL statement."""
    return signature.voided_at is None and signature.digest == trail.content_digest(record)


# What ``sign_crf`` signs for; the confirmation of eligibility has its own action.
SIGN_MEANINGS = [SignatureMeaning.ACCURATE, SignatureMeaning.REVIEWED]


@transaction.atomic
def sign_crf(record: CRFRecord, *, by, password: str, meaning: str,
             version: int | None = None, request=None) -> CRFSignature:
    """The investigator signs the CRF as it is now (21 CFR 11.50, 11.70, 11.200(a)).

    The password is typed again so that a session left open cannot sign. ``version`` is the
    history row the signer was shown: if the CRF changed since, nothing is signed and they are
    asked to look again. The signature stores the signer's printed name, the instant (UTC), the
    meaning and the SHA-256 of the exact content signed.
    """
    record = _locked(record)
    participant = record.participant
    _require(by, Perm.SIGN_CRF, participant)
    refuse_change(participant, only_if_locked=True)  # a frozen casebook may still be signed
    if meaning not in SIGN_MEANINGS:
        raise ValidationError({"meaning": _("Choose what your signature means.")})
    if record.status == CRFStatus.DRAFT:
        raise ValidationError(_("Only a complete CRF can be signed: save it as complete first."))
    if record.status == CRFStatus.SIGNED:
        raise ValidationError(_("This CRF is already signed; its signature stands until its "
                                "data change."))
    if record.status == CRFStatus.LOCKED:
        raise ValidationError(_("This CRF is locked by the data manager."))
    current = latest_version(record)
    if version is not None and current is not None and version != current.history_id:
        raise ValidationError(_("This CRF changed since you opened it. Read it again, then "
                                "sign."))
    signature = _e_sign(record, by=by, password=password, request=request, meaning=meaning,
                        version=current, reason="Signed by {name}: {meaning}")
    name = signature.printed_name
    audit.record("crf.signed", f"{participant.study_id} {record.crf_code} signed by {name} "
                 f"({by.get_username()}): {_english(SignatureMeaning(meaning).label)}. "
                 f"SHA-256 {signature.digest}",
                 actor=by, trial=participant.trial, obj=signature, participant=participant)
    return signature


def _e_sign(record: CRFRecord, *, by, password: str, request, meaning: str, version,
            reason: str) -> CRFSignature:
    """The e-signature both ``sign_crf`` and ``confirm_eligibility`` give, once their own
    checks pass: the password typed again (in the session's two-factor login), then the
    signature bound to the record's content by its digest and to the history row read, and the
    record marked signed with ``reason`` ({name}, {meaning}) in its history."""
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    now = timezone.now()
    name = by.get_full_name() or by.get_username()
    signature = CRFSignature.objects.create(
        record=record, signer=by, signed_at=now, meaning=meaning, printed_name=name,
        digest=trail.content_digest(record), signed_version=version)
    record.status = CRFStatus.SIGNED
    record._history_user = by
    record._history_date = now
    record._change_reason = reason.format(name=name,
                                          meaning=_english(SignatureMeaning(meaning).label))
    record.save(update_fields=["status", "updated_at"])
    return signature


@transaction.atomic
def confirm_eligibility(participant: Participant, *, by, password: str,
                        version: int | None = None, request=None) -> CRFSignature:
    """An investigator of the participant's site confirms eligibility before randomisation:
    an e-signature of the eligibility CRF as it is now, meaning "I confirm this participant is
    eligible" (``SignatureMeaning.ELIGIBILITY``), with the password typed again in the
    session's two-factor login, as ``sign_crf``. It is bound to the record's content by its
    digest: any later change of the form voids it (``save_crf``), and ``randomise`` refuses
    until an investigator confirms again. The record is marked signed, as by ``sign_crf``.

    ``version`` is the history row the investigator was shown: if the form changed since,
    nothing is confirmed and they are asked to read it again.
    """
    record = eligibility.eligibility_record(participant)
    if record is None:
        raise ValidationError(_("The eligibility form of %(id)s is not entered yet.") % {
            "id": participant.study_id})
    record = _locked(record)
    participant = record.participant
    if not policy.has_perm(by, Perm.CONFIRM_ELIGIBILITY, participant.trial, participant.site):
        raise PermissionDenied(_("Only an investigator of %(site)s may confirm eligibility.")
                               % {"site": participant.site.code})
    refuse_change(participant)
    if participant.is_randomised:
        raise ValidationError(_("%(id)s is already randomised.") % {"id": participant.study_id})
    if record.status == CRFStatus.LOCKED:
        raise ValidationError(_("This CRF is locked by the data manager."))
    result = eligibility.evaluate(participant, record)
    if not result.complete:
        raise ValidationError(_("The eligibility form is not complete: complete it before "
                                "confirming."))
    if not result.met:
        raise ValidationError(_("%(id)s does not meet the criteria (%(failed)s): eligibility "
                                "cannot be confirmed.") % {
            "id": participant.study_id, "failed": ", ".join(c["code"] for c in result.failed)})
    if eligibility.confirmation(record) is not None:
        raise ValidationError(_("Eligibility is already confirmed; the confirmation stands "
                                "until the form changes."))
    current = latest_version(record)
    if version is not None and current is not None and version != current.history_id:
        raise ValidationError(_("The eligibility form changed since you opened it. Read it "
                                "again, then confirm."))
    signature = _e_sign(record, by=by, password=password, request=request,
                        meaning=SignatureMeaning.ELIGIBILITY, version=current,
                        reason="Eligibility confirmed by {name}: {meaning}")
    name = signature.printed_name
    audit.record("eligibility.confirmed",
                 f"{participant.study_id}: eligibility confirmed by {name} "
                 f"({by.get_username()}). SHA-256 {signature.digest}",
                 actor=by, trial=participant.trial, obj=signature, participant=participant)
    return signature


@transaction.atomic
def lock_crf(record: CRFRecord, *, by) -> CRFRecord:
    """The data manager locks a complete or signed CRF: nobody can change it until unlocked.
    Its queries must be closed first: a lock says the data are final."""
    record = _locked(record)
    participant = record.participant
    _require(by, Perm.LOCK_CRF, participant)
    refuse_change(participant, only_if_locked=True)
    if record.status == CRFStatus.LOCKED:
        raise ValidationError(_("This CRF is already locked."))
    if record.status == CRFStatus.DRAFT:
        raise ValidationError(_("A draft cannot be locked: it must be complete first."))
    unresolved = record.queries.filter(status__in=UNRESOLVED).count()
    if unresolved:
        raise ValidationError(_("Close its open queries first (%(n)d open).") % {"n": unresolved})
    now = timezone.now()
    record.status, record.locked_at, record.locked_by = CRFStatus.LOCKED, now, by
    record._history_user, record._history_date = by, now
    record._change_reason = "Locked"
    record.save(update_fields=["status", "locked_at", "locked_by", "updated_at"])
    audit.record("crf.locked", f"{participant.study_id} {record.crf_code} locked by "
                 f"{by.get_username()}", actor=by, trial=participant.trial, obj=record,
                 participant=participant)
    return record


@transaction.atomic
def unlock_crf(record: CRFRecord, *, by, reason: str) -> CRFRecord:
    """The data manager unlocks a CRF, with a reason. It goes back to signed if a signature
    still stands on its content, else to complete."""
    limits.REASON.check(reason, field="reason")
    record = _locked(record)
    participant = record.participant
    _require(by, Perm.LOCK_CRF, participant)
    refuse_change(participant, only_if_locked=True)
    if record.status != CRFStatus.LOCKED:
        raise ValidationError(_("This CRF is not locked."))
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for unlocking.")})
    signed = any(signature_is_valid(s, record) for s in record.signatures.all())
    record.status = CRFStatus.SIGNED if signed else CRFStatus.COMPLETE
    record.locked_at = record.locked_by = None
    record._history_user = by
    record._change_reason = f"Unlocked: {reason.strip()}"
    record.save(update_fields=["status", "locked_at", "locked_by", "updated_at"])
    # Values the lock kept from being re-derived (or derived by older code) are brought up to
    # date now; other records still locked wait for their own unlock.
    rederive(participant, record.crf_code, by=by, skip_locked=True,
             cause=f"re-derived after {_named(record)} was unlocked")
    if record.crf_code in event_crfs(agreement.rules_for(participant)):
        agreement.reconcile(participant)
    record.refresh_from_db()
    audit.record("crf.unlocked", f"{participant.study_id} {record.crf_code} unlocked by "
                 f"{by.get_username()}. Reason: {reason.strip()}",
                 actor=by, trial=participant.trial, obj=record, participant=participant)
    return record


# --------------------------------------------------------------------------- data queries


def _locked_query(query: DataQuery) -> DataQuery:
    return (DataQuery.objects.select_for_update(of=("self",))
            .select_related("record__participant__trial", "record__participant__site",
                            "record__visit").get(pk=query.pk))


@transaction.atomic
def raise_query(record: CRFRecord, *, by, field_path: str, text: str) -> DataQuery:
    """The data manager questions one answer of one CRF (``field_path`` as in
    ``crfs.trail``: ``weight_kg``, ``events[1].grade``, or a whole group)."""
    limits.QUERY_TEXT.check(text, field="text")
    record = _locked(record)
    _require(by, Perm.RAISE_QUERY, record.participant)
    refuse_change(record.participant, only_if_locked=True)  # queries go on while frozen
    errors = {}
    found = trail.resolve(record.definition, field_path.strip())
    if found is None:
        errors["field_path"] = _("This CRF has no field “%(path)s”.") % {"path": field_path}
    elif found[2] is not None and found[2] >= len(record.data.get(found[1]["code"]) or []):
        errors["field_path"] = _("“%(group)s” has no row %(n)d.") % {
            "group": found[1]["label"], "n": found[2] + 1}
    if not text.strip():
        errors["text"] = _("Write the question.")
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    query = DataQuery(record=record, field_path=field_path.strip(), raised_at=now, raised_by=by)
    query._history_user = by
    query.save()
    QueryMessage.objects.create(query=query, kind=MessageKind.RAISED, author=by, at=now,
                                text=text.strip())
    return query


@transaction.atomic
def answer_query(query: DataQuery, *, by, text: str, correction: dict | None = None,
                 complete: bool = True) -> DataQuery:
    """The site answers a query; with ``correction`` (the CRF's answers, as its form stores
    them) the value is corrected through ``save_crf``, the answer being the change's reason."""
    limits.QUERY_TEXT.check(text, field="text")
    query = _locked_query(query)
    record = query.record
    _require(by, Perm.ANSWER_QUERY, record.participant)
    # Answered while frozen; a correction is refused then by ``save_crf``, as a whole.
    refuse_change(record.participant, only_if_locked=True)
    if query.is_closed:
        raise ValidationError(_("This query is closed; the data manager may re-open it."))
    if not text.strip():
        raise ValidationError({"text": _("Say what you checked or changed.")})
    written = None
    if correction is not None:
        _require(by, Perm.ENTER_CRF, record.participant)
        record = save_crf(record.participant, record.crf_code, correction, by=by,
                          complete=complete, record=record, visit=record.visit,
                          reason=f"Query #{query.pk}: {text.strip()}")
        written = latest_version(record)
        query.record = record  # with the save's warnings, for the caller
    query.refresh_from_db(fields=["status"])  # an automatic query may have been answered
    query.status = QueryStatus.ANSWERED
    query._history_user = by
    query.save(update_fields=["status"])
    QueryMessage.objects.create(query=query, author=by, at=timezone.now(), text=text.strip(),
                                kind=MessageKind.CORRECTED if written else MessageKind.ANSWERED,
                                correction=written)
    return query


@transaction.atomic
def close_query(query: DataQuery, *, by, text: str = "") -> DataQuery:
    """The data manager closes a query (answered or not: a question may turn out moot)."""
    limits.QUERY_TEXT.check(text, field="text")
    query = _locked_query(query)
    _require(by, Perm.RAISE_QUERY, query.record.participant)
    refuse_change(query.record.participant, only_if_locked=True)
    if query.is_closed:
        raise ValidationError(_("This query is already closed."))
    now = timezone.now()
    query.status, query.closed_at, query.closed_by = QueryStatus.CLOSED, now, by
    query._history_user = by
    query.save(update_fields=["status", "closed_at", "closed_by"])
    QueryMessage.objects.create(query=query, kind=MessageKind.CLOSED, author=by, at=now,
                                text=text.strip() or "Closed.")
    return query


@transaction.atomic
def reopen_query(query: DataQuery, *, by, text: str) -> DataQuery:
    """The data manager re-opens an answered or closed query, saying why."""
    limits.QUERY_TEXT.check(text, field="text")
    query = _locked_query(query)
    _require(by, Perm.RAISE_QUERY, query.record.participant)
    refuse_change(query.record.participant, only_if_locked=True)
    if query.status == QueryStatus.OPEN:
        raise ValidationError(_("This query is already open."))
    if not text.strip():
        raise ValidationError({"text": _("Say why the query is re-opened.")})
    query.status, query.closed_at, query.closed_by = QueryStatus.OPEN, None, None
    query._history_user = by
    query.save(update_fields=["status", "closed_at", "closed_by"])
    QueryMessage.objects.create(query=query, kind=MessageKind.REOPENED, author=by,
                                at=timezone.now(), text=text.strip())
    return query
