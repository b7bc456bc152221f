"""A participant's casebook frozen or locked, and the one check every writing service makes.

The steps themselves are ``trials.locks``'; this module adds the casebook level and
``refuse_change``, which every service that changes a participant's data calls first (CRF save
— pages, API and query corrections alike —, signatures, queries, consent, withdrawal,
randomisation, visits, dispensing). A casebook is closed when it, its site or its trial is.
"""
from __future__ import annotations

from django.db import connection, transaction
from django.utils.translation import gettext as _

from trials import locks
from trials.models import DataState, Site, Trial

from .models import Participant


@transaction.atomic
def step_casebook(participant: Participant, step: str, *, by, reason: str, password: str,
                  request=None) -> Participant:
    """Freeze, lock, unlock or unfreeze one participant's casebook."""
    locks.require_permission(by, participant.trial, participant.site)
    participant = (Participant.objects.select_for_update(of=("self",))
                   .select_related("trial", "site").get(pk=participant.pk))
    return locks.take_step(participant, step, by=by, reason=reason, password=password,
                           request=request, trial=participant.trial,
                           described=f"Casebook of {participant.study_id}",
                           participant=participant)


def _hold_site_and_trial(participant: Participant) -> None:
    """On PostgreSQL, share-lock the participant's site and trial rows until the transaction
    ends: a freeze or lock of either (an UPDATE of that row) then waits for the changes already
    checked to commit, and a change checked after it waits for the step and sees it. Shared
    locks do not wait for one another, so concurrent changes at one site do not queue here.
    Raw SQL: the ORM has ``FOR UPDATE`` only, which would make every change of a site wait
    for the others. (The casebook's own row is not locked: the services that change a
    participant lock it ``FOR UPDATE`` themselves, and a shared lock taken before that would
    deadlock two of them.)"""
    if connection.vendor != "postgresql":
        return  # SQLite: one writer at a time (``transaction_mode: IMMEDIATE``)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {Site._meta.db_table} s JOIN {Trial._meta.db_table} t "
            "ON t.id = s.trial_id WHERE s.id = %s FOR SHARE OF s, t", [participant.site_id])


def closing_state(participant: Participant):
    """(the row that closes the casebook — the trial, the site or the casebook itself — and
    its label) read fresh from the database, or (None, "") when all three are open. Within a
    transaction, the site and trial rows stay share-locked until it ends."""
    if connection.in_atomic_block:  # every writing service is; a lock outside one is moot
        _hold_site_and_trial(participant)
    # A statement of its own, after the lock: it reads what a step committed while we waited.
    row = (Participant.objects.filter(pk=participant.pk)
           .values("study_id", "frozen_at", "locked_at", "site__code", "site__frozen_at",
                   "site__locked_at", "trial__frozen_at", "trial__locked_at").get())
    trial = Trial(frozen_at=row["trial__frozen_at"], locked_at=row["trial__locked_at"])
    site = Site(frozen_at=row["site__frozen_at"], locked_at=row["site__locked_at"])
    casebook = Participant(frozen_at=row["frozen_at"], locked_at=row["locked_at"])
    closed = locks.closing(trial, site, casebook)
    if closed is None:
        return None, ""
    label = (_("The trial") if closed is trial else
             _("Site %(code)s") % {"code": row["site__code"]} if closed is site else
             _("The casebook of %(id)s") % {"id": row["study_id"]})
    return closed, label


def shown_state(participant: Participant) -> dict | None:
    """For the pages, from rows already loaded (the participant with its trial and site): what
    closes the casebook — ``{"state", "label", "at", "by"}`` — or None when it is open."""
    closed = locks.closing(participant.trial, participant.site, participant)
    if closed is None:
        return None
    return locks.describe(closed, _("The trial") if closed is participant.trial else
                          _("Site %(code)s") % {"code": participant.site.code}
                          if closed is participant.site else _("This casebook"))


def refuse_change(participant: Participant, *, only_if_locked: bool = False) -> None:
    """Raise ``ValidationError`` (nothing written) when the participant's data may not change:
    its casebook, site or trial frozen or locked. ``only_if_locked`` for what a freeze still
    allows (queries without a correction, signatures, form locks, source verification)."""
    closed, label = closing_state(participant)
    if closed is None or (only_if_locked and closed.data_state != DataState.LOCKED):
        return
    raise locks.refusal(closed, label)
