"""Screen failure as a fact of the eligibility form, and screening episodes.

A participant whose eligibility form is completed with a criterion not met is a screen failure
(``patients.status.apply_screening``); the status follows the form, so correcting it brings
the participant back. Where the protocol allows it (``screening.rescreening_allowed``), a
screen failure may be screened again: the eligibility form as it stood, with its date and
outcome, is kept in a ``ScreeningEpisode``, and the one eligibility record of the participant
(``one_crf_outside_visits``) is opened again, as a draft, for the new episode. Its history
keeps every earlier answer too.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit, limits
from patients import status as participant_status
from patients.locks import refuse_change
from patients.models import Participant, ScreeningEpisode, Status
from patients.windows import as_date
from trials import policy
from trials.policy import Perm

from .eligibility import ELIGIBILITY_CRF, eligibility_record, evaluate
from .models import CRFRecord, CRFStatus
from .services import save_crf


def failed_criteria(participant: Participant, record: CRFRecord | None) -> list[str]:
    """Codes of the criteria the participant's completed eligibility form does not meet;
    empty while the form is a draft (not yet a fact) or every criterion is met."""
    if record is None or record.status == CRFStatus.DRAFT:
        return []
    return [c["code"] for c in evaluate(participant, record).failed]


def apply_eligibility(record: CRFRecord, *, by, why: str = "") -> None:
    """After a save of the eligibility form: the participant's status follows it. Other forms:
    nothing (no query)."""
    if record.crf_code != ELIGIBILITY_CRF or record.visit_id is not None:
        return
    participant = Participant.objects.select_for_update().get(pk=record.participant_id)
    participant_status.apply_screening(
        participant, failed_criteria(participant, record), by=by,
        why=why or f"{ELIGIBILITY_CRF} saved")


def rescreening_allowed(participant: Participant) -> bool:
    return bool(participant.definition.get("screening", {}).get("rescreening_allowed"))


@dataclass(frozen=True)
class Episode:
    """One screening episode as the participant page shows it."""

    number: int
    assessed_on: object
    outcome: str
    failed: list[dict]
    current: bool


def episodes(participant: Participant) -> list[Episode]:
    """The participant's closed screening episodes, then the current one (two queries)."""
    criteria = {c["code"]: c for c in participant.definition["eligibility"]}
    labels = dict(Status.choices)
    out = [Episode(e.number, e.assessed_on, labels.get(e.outcome, e.outcome),
                   [criteria.get(code, {"code": code, "text": ""}) for code in e.failed_criteria],
                   False)
           for e in ScreeningEpisode.objects.filter(participant=participant).order_by("number")]
    if not out:
        return []
    record = eligibility_record(participant)
    failed = failed_criteria(participant, record)
    out.append(Episode(len(out) + 1,
                       as_date(record.data.get("screening_date")) if record else None,
                       labels.get(participant.status, participant.status),
                       [criteria[code] for code in failed if code in criteria], True))
    return out


@transaction.atomic
def rescreen(participant: Participant, *, by, reason: str) -> ScreeningEpisode:
    """Screen a screen failure again, where the protocol allows it: the closed episode keeps
    the eligibility form's answers, date and outcome; the form is opened again (a draft, its
    signatures void) and the participant is ``screened``."""
    limits.REASON.check(reason, field="reason")
    trial = participant.trial
    if not policy.has_perm(by, Perm.SCREEN, trial, participant.site):
        raise PermissionDenied
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    refuse_change(participant)
    if not rescreening_allowed(participant):
        raise ValidationError(_("The protocol does not allow screening a participant again."))
    if participant.status != Status.SCREEN_FAILED:
        raise ValidationError(_("Only a screen failure can be screened again (%(id)s is "
                                "%(status)s).") % {"id": participant.study_id,
                                                   "status": participant.get_status_display()})
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for screening again.")})
    record = eligibility_record(participant)
    if record is None:  # a screen failure always has one; a status set by hand might not
        raise ValidationError(_("%(id)s has no eligibility form to close.") % {
            "id": participant.study_id})
    if record.status == CRFStatus.LOCKED:
        raise ValidationError(_("The eligibility form is locked by the data manager; ask them "
                                "to unlock it first."))
    number = ScreeningEpisode.objects.filter(participant=participant).count() + 1
    failed = failed_criteria(participant, record)
    episode = ScreeningEpisode(
        participant=participant, number=number,
        assessed_on=(as_date(record.data.get("screening_date"))
                     or timezone.localtime(record.updated_at).date()),
        outcome=participant.status, failed_criteria=failed, eligibility_data=dict(record.data),
        eligibility_status=record.status, closed_by=by, reason=reason.strip())
    episode._change_reason = "screening episode closed"  # stored in the history: English
    episode.save()
    why = f"screened again (episode {number + 1}): {reason.strip()}"
    save_crf(participant, ELIGIBILITY_CRF, dict(record.data), by=by, complete=False,
             reason=why, record=record)
    participant_status.apply_screening(participant, [], by=by, why=why)
    audit.record("participant.rescreened",
                 f"{participant.study_id}: screening episode {number} closed "
                 f"(criteria not met: {', '.join(failed) or 'none'}); screened again. "
                 f"Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=participant, participant=participant)
    return episode
