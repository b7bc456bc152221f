"""Writes of SAE reporting: opening a report from the record that shows a serious event,
its versions (initial, follow-ups) and their signature, the sponsor's assessment.

Every function is one transaction: bad input raises ``ValidationError`` naming the field and
what is wrong, and nothing is written. Permissions come from ``trials.policy``. The rule each
check follows is in docs/safety.md (EU Regulation 536/2014 art. 41–42, ICH E2A).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit, limits
from core.dates import shown_instant
from core.reauth import password_confirmed
from crfs.models import CRFRecord
from patients.windows import as_date
from trials import policy
from trials.models import Trial
from trials.policy import Perm

from .models import (
    SUSAR_DAYS_FATAL,
    SUSAR_DAYS_OTHER,
    Causality,
    Criterion,
    Expectedness,
    Outcome,
    SAEReport,
    SAEVersion,
    SponsorAssessment,
    VersionStatus,
)

# Fields of a version the investigator writes (and the signature's digest covers).
VERSION_FIELDS = ["criteria", "onset_date", "aware_at", "outcome", "death_date", "causality",
                  "narrative"]


def products(trial: Trial) -> list[dict[str, Any]]:
    """The study products the protocol names (``safety.products``)."""
    return trial.definition.get("safety", {}).get("products", [])


def _require(by, perm: Perm, report_or_participant) -> None:
    participant = getattr(report_or_participant, "participant", report_or_participant)
    if not policy.has_perm(by, perm, participant.trial, participant.site):
        raise PermissionDenied(_("You may not do this (%(action)s) at this site.") % {
            "action": perm.value.replace("_", " ")})


# --------------------------------------------------------------------------- opening a report


def _value(data: dict, path: str, row: int | None) -> Any:
    parts = path.split(".")
    if len(parts) == 2:
        rows = data.get(parts[0]) or []
        return rows[row].get(parts[1]) if row is not None and row < len(rows) else None
    return data.get(parts[0])


def _fires(trigger: dict, value: Any) -> bool:
    if "equals" in trigger:
        return value is not None and str(value).lower() == str(trigger["equals"]).lower()
    return value not in (None, "", [], {})


def open_from_record(record: CRFRecord, *, by) -> list[SAEReport]:
    """Open an SAE report for each serious event ``record`` shows (the protocol's
    ``safety.sae_triggers``) that has none yet; returns the new ones. Called in the
    transaction that saves the record (``scheduling.services.save_crf_and_replan``): the site
    is aware of the event at the latest now, so the 24-hour clock starts now unless the initial
    report says earlier. A report is never closed by a later change of the record: an event
    once reported serious stays reported (its follow-up says what changed)."""
    participant = record.participant
    trial = participant.trial
    triggers = [t for t in trial.definition.get("safety", {}).get("sae_triggers", [])
                if t["crf"] == record.crf_code]
    if not triggers:
        return []
    data = record.data or {}
    found: dict[str, tuple[dict, int | None]] = {}
    criteria: dict[str, list[str]] = {}  # every criterion of the triggers a row meets
    for trigger in triggers:
        parts = trigger["field"].split(".")
        rows = range(len(data.get(parts[0]) or [])) if len(parts) == 2 else [None]
        for row in rows:
            unless = trigger.get("unless")
            if unless and _fires(unless, _value(data, unless["field"], row)):
                continue
            if _fires(trigger, _value(data, trigger["field"], row)):
                path = f"{parts[0]}[{row}]" if row is not None else ""
                found.setdefault(path, (trigger, row))
                if trigger.get("criterion") and trigger["criterion"] not in criteria.get(path, []):
                    criteria.setdefault(path, []).append(trigger["criterion"])
    if not found:
        return []
    existing = set(SAEReport.objects.filter(source_record=record, source_path__in=list(found))
                   .values_list("source_path", flat=True))
    now = timezone.now()
    opened = []
    for path, (trigger, row) in sorted(found.items()):
        if path in existing:
            continue
        term = (str(_value(data, trigger["term_field"], row) or "")
                if trigger.get("term_field") else "") or trigger.get("term") or record.crf_code
        report = SAEReport.objects.create(
            trial=trial, participant=participant, source_record=record, source_path=path,
            trigger=trigger["field"], term=term[:255], opened_at=now, opened_by=by,
            aware_at=now)
        onset = as_date(_value(data, trigger["onset_field"], row)) \
            if trigger.get("onset_field") else None
        version = SAEVersion(report=report, number=0, created_by=by,
                             criteria=criteria.get(path, []), onset_date=onset, aware_at=now)
        if Criterion.DEATH in criteria.get(path, []):
            version.death_date = onset
            version.outcome = Outcome.FATAL
        version._history_user = by
        version.save()
        audit.record("sae.opened", f"{report.number} opened for {participant.study_id} "
                     f"({term[:80]}) from {record.crf_code} {path}".strip(),
                     actor=by, trial=trial, obj=report, participant=participant)
        opened.append(report)
    return opened


# --------------------------------------------------------------------------- versions


def _clean(report: SAEReport, values: dict[str, Any], *, signing: bool) -> dict[str, Any]:
    """The version's values checked; raises naming each field that is wrong."""
    errors: dict[str, str] = {}
    now = timezone.now()
    criteria = list(values.get("criteria") or [])
    unknown = [c for c in criteria if c not in Criterion.values]
    if unknown:
        errors["criteria"] = _("Unknown seriousness criterion: %(c)s.") % {"c": ", ".join(unknown)}
    onset, aware, death = values.get("onset_date"), values.get("aware_at"), values.get("death_date")
    if onset and onset > timezone.localdate():
        errors["onset_date"] = _("The onset date is in the future.")
    if aware:
        if aware > now:
            errors["aware_at"] = _("The site cannot have become aware in the future.")
        elif onset and timezone.localtime(aware).date() < onset:
            errors["aware_at"] = _("The site cannot have become aware of the event before its "
                                   "onset (%(onset)s).") % {"onset": onset.isoformat()}
        elif aware > report.opened_at:
            errors["aware_at"] = _("The site was aware of the event when it was recorded "
                                   "(%(when)s) at the latest.") % {
                "when": shown_instant(report.opened_at, zone=False)}
    if values.get("outcome") and values["outcome"] not in Outcome.values:
        errors["outcome"] = _("Unknown outcome.")
    narrative = values.get("narrative")
    if isinstance(narrative, str) and len(narrative) > limits.NARRATIVE.chars:
        errors["narrative"] = limits.NARRATIVE.message(len(narrative))
    fatal = Criterion.DEATH in criteria or values.get("outcome") == Outcome.FATAL
    if fatal and not death:
        errors["death_date"] = _("A death needs its date.")
    if death:
        if death > timezone.localdate():
            errors["death_date"] = _("The date of death is in the future.")
        elif onset and death < onset:
            errors["death_date"] = _("The date of death is before the onset of the event.")
    known = {p["code"] for p in products(report.trial)}
    causality = {k: v for k, v in (values.get("causality") or {}).items() if v}
    if set(causality) - known:
        errors["causality"] = _("Unknown study product: %(p)s.") % {
            "p": ", ".join(sorted(set(causality) - known))}
    elif any(v not in Causality.values for v in causality.values()):
        errors["causality"] = _("Causality is related or not related.")
    if signing:
        missing = sorted(known - set(causality))
        if missing and "causality" not in errors:
            errors["causality"] = _("Give the causality for every study product before signing "
                                    "(missing: %(p)s).") % {"p": ", ".join(missing)}
        if not criteria and "criteria" not in errors:
            errors["criteria"] = _("Tick at least one seriousness criterion.")
        for field, message in (("onset_date", _("Give the onset date.")),
                               ("aware_at", _("Give when the site became aware.")),
                               ("outcome", _("Give the outcome.")),
                               ("narrative", _("Write the narrative."))):
            if not values.get(field) and field not in errors:
                errors[field] = message
    if errors:
        raise ValidationError(errors)
    return {**values, "criteria": criteria, "causality": causality}


def _locked(report: SAEReport) -> SAEReport:
    return (SAEReport.objects.select_for_update(of=("self",))
            .select_related("trial", "participant__site", "participant__trial").get(pk=report.pk))


def draft_of(report: SAEReport) -> SAEVersion | None:
    return report.versions.filter(status=VersionStatus.DRAFT).first()


@transaction.atomic
def save_draft(report: SAEReport, values: dict[str, Any], *, by) -> SAEVersion:
    """Save the open draft (the initial report, or the follow-up begun). A signed version is
    never changed: without a draft, begin a follow-up."""
    report = _locked(report)
    _require(by, Perm.ENTER_CRF, report)
    version = draft_of(report)
    if version is None:
        raise ValidationError(_("Every version of this report is signed: begin a follow-up to "
                                "add information."))
    values = _clean(report, {k: values.get(k) for k in VERSION_FIELDS}, signing=False)
    for field in VERSION_FIELDS:
        setattr(version, field, values[field])
    version._history_user = by
    version.save()
    if version.number == 0 and version.aware_at and version.aware_at != report.aware_at:
        report.aware_at = version.aware_at
        report._history_user = by
        report.save(update_fields=["aware_at"])
    return version


@transaction.atomic
def begin_follow_up(report: SAEReport, *, by) -> SAEVersion:
    """Begin follow-up n+1, a copy of the latest signed version to complete. Refused without a
    signed initial report (nothing to follow up) or while a draft is open."""
    report = _locked(report)
    _require(by, Perm.ENTER_CRF, report)
    last = report.versions.filter(status=VersionStatus.SIGNED).order_by("-number").first()
    if last is None:
        raise ValidationError(_("A follow-up needs a signed initial report first."))
    if draft_of(report) is not None:
        raise ValidationError(_("A version of this report is still a draft: complete and sign "
                                "it first."))
    version = SAEVersion(report=report, number=last.number + 1, created_by=by,
                         **{f: getattr(last, f) for f in VERSION_FIELDS})
    version._history_user = by
    version.save()
    audit.record("sae.follow_up", f"{report.number} follow-up {version.number} begun",
                 actor=by, trial=report.trial, obj=version, participant=report.participant)
    return version


def content_digest(version: SAEVersion) -> str:
    """SHA-256 of what is signed: the report, the version number and its values."""
    payload = {"report": version.report.number, "participant": version.report.participant.study_id,
               "term": version.report.term, "number": version.number,
               **{f: getattr(version, f) for f in VERSION_FIELDS}}
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@transaction.atomic
def sign_version(version: SAEVersion, *, by, password: str, request=None) -> SAEVersion:
    """The investigator signs the draft as it is (two factors: the session's and the password
    typed again, as ``crfs.services.sign_crf``). Refused with what is missing; then kept as is."""
    report = _locked(version.report)
    version = SAEVersion.objects.select_for_update().get(pk=version.pk)
    _require(by, Perm.SIGN_CRF, report)
    if version.status == VersionStatus.SIGNED:
        raise ValidationError(_("This version is already signed."))
    _clean(report, {f: getattr(version, f) for f in VERSION_FIELDS}, signing=True)
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    now = timezone.now()
    version.report = report
    version.status, version.signed_at, version.signed_by = VersionStatus.SIGNED, now, by
    version.printed_name = by.get_full_name() or by.get_username()
    version.digest = content_digest(version)
    version._history_user, version._signing = by, True
    version.save()
    if version.number == 0:
        report.reported_at = now
        report._history_user = by
        report.save(update_fields=["reported_at"])
    late = report.late_by(now)
    audit.record("sae.signed", f"{report.number} {version.label} signed by "
                 f"{version.printed_name} ({by.get_username()})"
                 + (f", {_hours(late)} late" if late and version.number == 0 else "")
                 + f". SHA-256 {version.digest}", actor=by, trial=report.trial, obj=version,
                 participant=report.participant)
    return version


def _hours(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h"


# --------------------------------------------------------------------------- sponsor assessment


def susar_days(version: SAEVersion) -> int:
    """EU Reg. 536/2014 art. 42(2)(a)–(b): 7 days for a fatal or life-threatening SUSAR,
    otherwise 15."""
    grave = {Criterion.DEATH, Criterion.LIFE_THREATENING} & set(version.criteria)
    return SUSAR_DAYS_FATAL if grave or version.outcome == Outcome.FATAL else SUSAR_DAYS_OTHER


@transaction.atomic
def assess(report: SAEReport, *, by, causality: dict[str, str], expectedness: dict[str, str],
           comment: str = "") -> SponsorAssessment:
    """The safety officer's assessment of the latest signed version, per product: causality
    (never below the investigator's: a product the investigator found related stays related,
    CT-3 7.2.3.2) and expectedness against the protocol's reference safety information.
    Related and unexpected for any product: a SUSAR, due 7 or 15 days after the sponsor
    received the initial report."""
    limits.COMMENT.check(comment, field="comment")
    report = _locked(report)
    if not policy.has_perm(by, Perm.ASSESS_SAFETY, report.trial):
        raise PermissionDenied(_("You may not assess safety reports in this trial."))
    latest = report.versions.filter(status=VersionStatus.SIGNED).order_by("-number").first()
    if latest is None:
        raise ValidationError(_("The site has not signed the initial report yet."))
    codes = [p["code"] for p in products(report.trial)]
    errors = {}
    causality = {k: v for k, v in causality.items() if v}
    expectedness = {k: v for k, v in expectedness.items() if v}
    for code in codes:
        if causality.get(code) not in Causality.values:
            errors[f"causality_{code}"] = _("Give the causality.")
        elif (latest.causality.get(code) == Causality.RELATED
              and causality[code] == Causality.NOT_RELATED):
            errors[f"causality_{code}"] = _("The investigator found this product related: the "
                                            "sponsor may not downgrade that assessment.")
        if expectedness.get(code) not in Expectedness.values:
            errors[f"expectedness_{code}"] = _("Give the expectedness.")
    if errors:
        raise ValidationError(errors)
    susar = any(causality[c] == Causality.RELATED and expectedness[c] == Expectedness.UNEXPECTED
                for c in codes)
    day0 = timezone.localtime(report.reported_at).date()
    values = {
        "causality": {c: causality[c] for c in codes},
        "expectedness": {c: expectedness[c] for c in codes},
        "reference": {p["code"]: f"{p['reference_safety_information']['document']}, version "
                                 f"{p['reference_safety_information']['version']}"
                      for p in products(report.trial)},
        "comment": comment.strip(), "susar": susar,
        "susar_due": day0 + dt.timedelta(days=susar_days(latest)) if susar else None,
        "assessed_at": timezone.now(), "assessed_by": by}
    assessment = SponsorAssessment.objects.filter(report=report).first() \
        or SponsorAssessment(report=report)
    for key, value in values.items():
        setattr(assessment, key, value)
    assessment._history_user = by
    assessment.save()
    audit.record("sae.assessed", f"{report.number} assessed by {by.get_username()}: "
                 + ("SUSAR, due " + values["susar_due"].isoformat() if susar else "not a SUSAR"),
                 actor=by, trial=report.trial, obj=assessment, participant=report.participant)
    return assessment


@transaction.atomic
def record_susar_submission(report: SAEReport, *, by, submitted_on: dt.date,
                            reference: str) -> SponsorAssessment:
    """The safety officer records that a SUSAR's expedited report went to the authorities
    (EU Reg. 536/2014 art. 42: EudraVigilance), on which day and under which reference; once.
    Late when after ``susar_due`` (7 or 15 days); the SAE list shows how late, and which
    SUSARs are overdue while nothing is recorded."""
    report = _locked(report)
    if not policy.has_perm(by, Perm.ASSESS_SAFETY, report.trial):
        raise PermissionDenied(_("You may not assess safety reports in this trial."))
    assessment = SponsorAssessment.objects.select_for_update().filter(report=report).first()
    if assessment is None or not assessment.susar:
        raise ValidationError(_("Only a SUSAR is reported to the authorities as such."))
    if assessment.susar_submitted_on is not None:
        raise ValidationError(_("The submission of this SUSAR is already recorded (%(day)s, "
                                "%(ref)s).") % {"day": assessment.susar_submitted_on,
                                                "ref": assessment.susar_reference})
    errors = {}
    received = timezone.localtime(report.reported_at).date()
    if submitted_on > timezone.localdate():
        errors["submitted_on"] = _("The submission date cannot be in the future.")
    elif submitted_on < received:
        errors["submitted_on"] = _("The submission cannot be before the sponsor received the "
                                   "report (%(day)s).") % {"day": received}
    if not reference.strip():
        errors["reference"] = _("Give the reference the authorities' system returned.")
    if errors:
        raise ValidationError(errors)
    assessment.susar_submitted_on = submitted_on
    assessment.susar_reference = reference.strip()
    assessment._history_user = by
    assessment.save(update_fields=["susar_submitted_on", "susar_reference"])
    late = assessment.susar_days_late(submitted_on)
    audit.record("sae.susar_submitted",
                 f"{report.number}: SUSAR submitted to the authorities on {submitted_on} "
                 f"({assessment.susar_reference}) by {by.get_username()}"
                 + (f", {late} day(s) after the deadline {assessment.susar_due}" if late else ""),
                 actor=by, trial=report.trial, obj=assessment, participant=report.participant)
    return assessment
