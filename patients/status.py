"""Where a participant's status is decided. Every status a participant takes is set here:

- ``screened``: at registration (the model's default, ``patients.services.register_participant``);
- ``randomised``: at randomisation (``randomisation.services.randomise`` calls
  ``mark_randomised``, in the transaction that writes the allocation);
- ``on_treatment``, ``follow_up``, ``completed``, ``withdrawn``, ``dead``: derived from the
  CRFs, never typed. Each anchor or event of the protocol may give a status
  (``participant_status`` in the protocol file); of those the participant's recorded dates
  give, the one furthest along the protocol's order wins (``derived_status``, which
  ``crfs.facts.read_facts`` applies). After every CRF save the planner
  (``scheduling.services.apply_crf``) calls ``apply_derived``, so a corrected CRF corrects the
  status; with no such date the status is back to ``randomised``;
- ``screen_failed``: a completed eligibility form with a criterion not met (``apply_screening``,
  which ``scheduling.services.save_crf_and_replan`` calls after every save of that form, with
  the criteria ``crfs.eligibility`` finds failed); correcting the form so that every criterion
  is met, or re-opening it for a new screening episode, brings the participant back to
  ``screened``. It refuses randomisation.

Each change is in the participant's history (who, why) and, after randomisation, in the audit
log.
"""
from __future__ import annotations

from typing import Iterable

from core import audit
from core.history import change_reason
from trials.protocol import PARTICIPANT_STATUSES

from .models import RANDOMISED_STATUSES, Participant, Status


def mark_randomised(participant: Participant, *, by) -> None:
    """Set the status of a participant being randomised; the caller saves it with the rest of
    the randomisation's write (``status`` among the fields)."""
    participant.status = Status.RANDOMISED
    participant._history_user, participant._change_reason = by, "randomised"


def derived_status(given: Iterable[str]) -> str | None:
    """Of the statuses a participant's recorded anchors and events give, the furthest along
    (``trials.protocol.PARTICIPANT_STATUSES``); None when none gives one."""
    return max(given, key=PARTICIPANT_STATUSES.index, default=None)


def apply_derived(participant: Participant, derived: str | None, *, by, why: str) -> None:
    """Set a randomised participant's status to what their CRFs give (``derived``; None: back
    to ``randomised``). Callers hold the participant's lock."""
    new = derived or Status.RANDOMISED
    if participant.status == new or participant.status not in RANDOMISED_STATUSES:
        return
    old = participant.status
    participant.status = new
    participant._change_reason = change_reason(f"status from the CRFs: {why}")
    participant._history_user = by if getattr(by, "is_authenticated", False) else None
    participant.save(update_fields=["status"])
    # Audit-log text: English, like every stored text.
    audit.record("participant.status_changed",
                 f"{participant.study_id}: status {old} → {new} ({why}).",
                 actor=by, trial=participant.trial, obj=participant, participant=participant,
                 detail={"from": old, "to": new})


def apply_screening(participant: Participant, failed: list[str] | None, *, by, why: str) -> None:
    """Set a participant not yet randomised to ``screen_failed`` when their completed
    eligibility form has criteria not met (``failed``: their codes), back to ``screened``
    otherwise (``failed`` empty or None: the form not completed, or every criterion met).
    Randomised participants are left as they are: a randomisation is never undone (see
    ``randomisation.services.record_randomised_in_error``)."""
    if participant.status not in (Status.SCREENED, Status.SCREEN_FAILED):
        return
    new = Status.SCREEN_FAILED if failed else Status.SCREENED
    if participant.status == new:
        return
    old = participant.status
    participant.status = new
    participant._change_reason = change_reason(f"screening: {why}")
    participant._history_user = by if getattr(by, "is_authenticated", False) else None
    participant.save(update_fields=["status"])
    detail = {"from": old, "to": new, "failed_criteria": list(failed or [])}
    audit.record("participant.status_changed",
                 f"{participant.study_id}: status {old} → {new} ({why}"
                 + (f"; criteria not met: {', '.join(failed)}" if failed else "") + ").",
                 actor=by, trial=participant.trial, obj=participant, detail=detail,
                 participant=participant)
