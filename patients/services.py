"""State changes of participants. Views, API, commands and tasks all call these."""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit, limits
from core.dates import shown_date
from core.history import change_reason
from trials.locks import refuse_new_participant
from trials.models import Site, Trial

from .consent import consent_in_force, consent_versions, is_newer
from .locks import refuse_change
from .models import (
    WITHDRAWAL_ORDER,
    ConsentKind,
    ConsentRecord,
    Participant,
    Withdrawal,
    WithdrawalLevel,
)


@transaction.atomic
def register_participant(
    trial: Trial, site: Site, *, by, screened_on: dt.date | None = None
) -> Participant:
    """Register a new participant at screening and give them the site's next study ID."""
    if site.trial_id != trial.pk:
        raise ValidationError({"site": _("This site does not belong to the trial.")})
    if not site.active:
        raise ValidationError({"site": _("Site %(code)s no longer recruits.") % {
            "code": site.code}})
    refuse_new_participant(site)
    screened_on = screened_on or timezone.localdate()
    if screened_on > timezone.localdate():
        raise ValidationError({"screened_on": _("The screening date cannot be in the future.")})
    # Lock the site row so that two coordinators of one site never draw the same number.
    Site.objects.select_for_update().get(pk=site.pk)
    number = Participant.objects.filter(site=site).count() + 1
    # The trial's mode read now, not from the caller's copy: a participant registered before
    # the trial went live is a test participant.
    in_test_mode = Trial.objects.filter(pk=trial.pk, live_since__isnull=True).exists()
    return Participant.objects.create(
        test=in_test_mode,
        trial=trial,
        site=site,
        study_id=f"{site.code}-{number:04d}",
        protocol_version_id=trial.current_version_id,
        screened_on=screened_on,
        created_by=by,
    )


def _randomised_on(participant: Participant) -> dt.date | None:
    """Day 0, read through the relation ``randomisation`` declares (the layer above): the
    calendar day of the allocation in the trials' time zone; None before randomisation."""
    try:
        allocation = participant.allocation
    except ObjectDoesNotExist:
        return None
    return timezone.localdate(allocation.randomised_at)


def consent_in_effect(participant: Participant) -> list[ConsentRecord]:
    """The participant's consent records that no later record corrects, oldest first."""
    return list(participant.consents.filter(corrected_by__isnull=True)
                .order_by("consent_date", "recorded_at", "pk"))


@transaction.atomic
def record_consent(participant: Participant, *, consent_date: dt.date, version: str, by,
                   taken_by: str = "", answers: dict | None = None,
                   corrects: ConsentRecord | None = None, reason: str = "") -> Participant:
    """Record a signed consent form: the first consent, a re-consent to a newer version (an
    amendment), or, with ``corrects``, a correction of an earlier record (with its reason).

    Refused, with nothing written: a date in the future; a first consent dated before
    screening or after randomisation; a re-consent to a version that is not newer than the
    one in effect, or dated before it; a version the protocol does not declare (when it
    declares its versions); an optional item that version does not have. A re-consent to the
    version in force under the trial's current protocol version moves the participant to that
    protocol version (their visits are re-planned by ``scheduling.services.
    record_consent_and_replan``, which the pages and the API call).
    """
    limits.REASON.check(reason, field="reason")
    participant = Participant.objects.select_for_update().select_related("trial").get(
        pk=participant.pk)
    refuse_change(participant)
    definition = participant.trial.definition
    declared = consent_versions(definition) or consent_versions(participant.definition)
    version = (version or "").strip()
    answers = dict(answers or {})
    reason = (reason or "").strip()
    history = consent_in_effect(participant)
    if corrects is not None:
        # The latest only: an earlier record corrected under a later re-consent would leave
        # the history out of order.
        if corrects.participant_id != participant.pk or not history \
                or history[-1].pk != corrects.pk:
            raise ValidationError({"corrects": _(
                "Only the latest consent record of this participant can be corrected.")})
        if not reason:
            raise ValidationError({"reason": _("Give the reason for the correction.")})
        history = [c for c in history if c.pk != corrects.pk]
    latest = history[-1] if history else None
    first = latest is None
    errors: dict[str, str] = {}
    names = {"date": shown_date(consent_date) if isinstance(consent_date, dt.date) else "",
             "version": version}
    if not isinstance(consent_date, dt.date):
        errors["consent_date"] = _("Give the date the consent form was signed.")
    elif consent_date > timezone.localdate():
        errors["consent_date"] = _("The consent date cannot be in the future.")
    elif first:
        randomised_on = _randomised_on(participant)
        if consent_date < participant.screened_on:
            errors["consent_date"] = _(
                "The first consent is dated %(date)s, before screening (%(screened_on)s).") % {
                **names, "screened_on": shown_date(participant.screened_on)}
        elif randomised_on is not None and consent_date > randomised_on:
            errors["consent_date"] = _(
                "The first consent is dated %(date)s, after randomisation (%(randomised_on)s): "
                "consent comes before randomisation.") % {
                **names, "randomised_on": shown_date(randomised_on)}
    elif consent_date < latest.consent_date:
        errors["consent_date"] = _(
            "The re-consent is dated %(date)s, before the consent in effect (version "
            "%(latest)s of %(latest_date)s).") % {
            **names, "latest": latest.version, "latest_date": shown_date(latest.consent_date)}
    form = None
    if not version:
        errors["consent_version"] = _("Give the version of the consent form signed.")
    elif declared:
        form = next((v for v in declared if v["code"] == version), None)
        if form is None:
            errors["consent_version"] = _(
                "Version %(version)s is not a consent form version of this protocol "
                "(declared: %(declared)s).") % {
                **names, "declared": ", ".join(v["code"] for v in declared)}
        elif not first and not is_newer(definition, version, latest.version):
            errors["consent_version"] = _(
                "A re-consent must be to a newer version than the one in effect (%(latest)s); "
                "%(version)s is not newer.") % {**names, "latest": latest.version}
    elif not first:
        errors["consent_version"] = _(
            "This protocol declares no consent form versions: a re-consent cannot be ordered.")
    items = {i["code"] for i in (form or {}).get("optional_items", [])}
    unknown = sorted(code for code in answers if code not in items)
    if unknown and "consent_version" not in errors:
        errors["answers"] = _(
            "Not an optional item of consent form version %(version)s: %(items)s.") % {
            **names, "items": ", ".join(unknown)}
    wrong = sorted(code for code, value in answers.items()
                   if code in items and not isinstance(value, bool))
    if wrong:
        errors["answers"] = _("Answer each optional item yes or no (%(items)s).") % {
            "items": ", ".join(wrong)}
    if errors:
        raise ValidationError(errors)
    kind = (ConsentKind.CORRECTION if corrects is not None
            else ConsentKind.FIRST if first else ConsentKind.RECONSENT)
    moves = (corrects is None and version == consent_in_force(definition)
             and participant.protocol_version_id != participant.trial.current_version_id)
    if moves:
        participant.protocol_version_id = participant.trial.current_version_id
    record = ConsentRecord(
        participant=participant, kind=kind, version=version, consent_date=consent_date,
        taken_by=(taken_by or "").strip()[:120] or (by.get_full_name() or by.get_username()),
        answers=answers, protocol_version_id=participant.protocol_version_id,
        corrects=corrects, reason=reason, recorded_by=by)
    record._history_user = by
    record.save()
    in_effect = max([*history, record], key=lambda c: (c.consent_date, c.recorded_at, c.pk))
    participant.consent_date = in_effect.consent_date
    participant.consent_version = in_effect.version
    # Stored in the history and the audit log: English.
    why = {ConsentKind.FIRST: "consent recorded", ConsentKind.RECONSENT: "re-consent recorded",
           ConsentKind.CORRECTION: "consent record corrected"}[kind]
    participant._change_reason = change_reason(
        why + (f", moved to protocol version {participant.trial.current_version.label}"
               if moves else "") + (f": {reason}" if reason else ""))
    participant._history_user = by
    participant.save(update_fields=["consent_date", "consent_version", "protocol_version"])
    audit.record("participant.consent",
                 f"{participant.study_id}: {why}, version {version} signed on "
                 f"{consent_date:%Y-%m-%d}" + (
                     f"; moved to protocol version {participant.trial.current_version.label}"
                     if moves else "") + (f". Reason: {reason}" if reason else "."),
                 actor=by, trial=participant.trial, obj=participant, participant=participant,
                 detail={"consent_record": record.pk, "answers": answers})
    return participant


@transaction.atomic
def record_withdrawal(participant: Participant, *, level: str, withdrawn_on: dt.date,
                      reason: str, by) -> Withdrawal:
    """Record that a randomised participant withdraws at ``level`` from ``withdrawn_on``.

    Refused, with nothing written: an unknown level, no reason, a date in the future, before
    the first consent or before randomisation, a level already recorded or below one recorded
    (a participant goes further, never back: a mistake is a data query), a date before an
    earlier withdrawal's. The schedule follows through ``scheduling.services.
    record_withdrawal_and_replan``, which the pages and the API call.
    """
    limits.REASON.check(reason, field="reason")
    participant = Participant.objects.select_for_update().select_related("trial").get(
        pk=participant.pk)
    refuse_change(participant)
    reason = (reason or "").strip()
    errors: dict[str, str] = {}
    if level not in WithdrawalLevel.values:
        errors["level"] = _("Choose the level of the withdrawal (%(levels)s).") % {
            "levels": ", ".join(WithdrawalLevel.values)}
    if not reason:
        errors["reason"] = _("Give the reason for the withdrawal.")
    randomised_on = _randomised_on(participant)
    if randomised_on is None:
        errors["level"] = _(
            "%(id)s is not randomised: someone who leaves before randomisation is not "
            "withdrawn from the trial.") % {"id": participant.study_id}
    history = consent_in_effect(participant)
    if not isinstance(withdrawn_on, dt.date):
        errors["withdrawn_on"] = _("Give the date of the withdrawal.")
    elif withdrawn_on > timezone.localdate():
        errors["withdrawn_on"] = _("The withdrawal date cannot be in the future.")
    elif not history:
        errors["withdrawn_on"] = _("%(id)s has no recorded consent: there is no consent to "
                                   "withdraw from.") % {"id": participant.study_id}
    elif withdrawn_on < history[0].consent_date:
        errors["withdrawn_on"] = _(
            "The withdrawal is dated %(date)s, before the consent (%(consent)s).") % {
            "date": shown_date(withdrawn_on), "consent": shown_date(history[0].consent_date)}
    elif randomised_on is not None and withdrawn_on < randomised_on:
        errors["withdrawn_on"] = _(
            "The withdrawal is dated %(date)s, before randomisation (%(randomised_on)s).") % {
            "date": shown_date(withdrawn_on), "randomised_on": shown_date(randomised_on)}
    earlier = list(participant.withdrawals.all())
    if level in WithdrawalLevel.values and earlier:
        furthest = max(earlier, key=lambda w: WITHDRAWAL_ORDER.index(w.level))
        if WITHDRAWAL_ORDER.index(furthest.level) >= WITHDRAWAL_ORDER.index(level):
            errors["level"] = _(
                "%(id)s already withdrew at this level or further (%(recorded)s, from "
                "%(date)s).") % {"id": participant.study_id,
                                 "recorded": furthest.get_level_display().lower(),
                                 "date": shown_date(furthest.withdrawn_on)}
        elif isinstance(withdrawn_on, dt.date) and withdrawn_on < furthest.withdrawn_on:
            errors["withdrawn_on"] = _(
                "The withdrawal is dated %(date)s, before the earlier one (%(earlier)s).") % {
                "date": shown_date(withdrawn_on),
                "earlier": shown_date(furthest.withdrawn_on)}
    if errors:
        raise ValidationError(errors)
    withdrawal = Withdrawal(participant=participant, level=level, withdrawn_on=withdrawn_on,
                            reason=reason, recorded_by=by)
    withdrawal._history_user = by
    withdrawal._change_reason = change_reason(reason)
    withdrawal.save()
    # Audit-log text: English, like every stored text.
    audit.record("participant.withdrawal",
                 f"{participant.study_id}: withdrawal ({level}) from {withdrawn_on:%Y-%m-%d}. "
                 f"Reason: {reason}", actor=by, trial=participant.trial, obj=participant,
                 participant=participant,
                 detail={"level": level, "withdrawn_on": f"{withdrawn_on:%Y-%m-%d}"})
    return withdrawal
