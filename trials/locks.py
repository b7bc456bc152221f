"""Freeze and lock: the data of a participant's casebook, of a site or of a whole trial made
final, step by step, as a database lock is prepared at the end of a trial.

The data manager (``Perm.LOCK_DATA``) *freezes* (no data may change: CRF entry and corrections,
status changes, randomisation, dispensing, visits; queries may still be raised and answered
without a correction, CRFs signed and locked form by form), then *locks* (nothing changes). Each
step, forwards or back, takes a reason and the password typed again (an e-signature, as for
signing a CRF) and is written to the audit log. Stepping back (*unlock*: locked → frozen,
*unfreeze*: frozen → open) is how locked data may change again.

This module holds the steps, shared by the three levels (``Lockable`` rows), and the trial and
site levels; the casebook level is ``patients.locks``. What the steps guard is checked where
data change, in one place: ``patients.locks.refuse_change``, called by every writing service.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core import audit, limits
from core.dates import shown_instant
from core.reauth import password_confirmed

from . import policy
from .models import DataState, Lockable, Site, Trial

FREEZE, LOCK, UNLOCK, UNFREEZE = "freeze", "lock", "unlock", "unfreeze"
STEP_LABELS = {FREEZE: gettext_lazy("Freeze"), LOCK: gettext_lazy("Lock"),
               UNLOCK: gettext_lazy("Unlock (back to frozen)"),
               UNFREEZE: gettext_lazy("Unfreeze (open again)")}
# state before -> the steps allowed from it
STEPS_FROM = {DataState.OPEN: [FREEZE], DataState.FROZEN: [LOCK, UNFREEZE],
              DataState.LOCKED: [UNLOCK]}


def steps_for(row: Lockable) -> list[str]:
    """The steps the data manager may take from ``row``'s state."""
    return STEPS_FROM[row.data_state]


def take_step(row: Lockable, step: str, *, by, reason: str, password: str, request=None,
              trial: Trial, described: str, **audit_scope) -> Lockable:
    """Move ``row`` (already locked for update, permission already checked) one step, with the
    reason and e-signature; audited as ``data.<step>`` naming ``described``."""
    limits.REASON.check(reason, field="reason")
    errors = {}
    if step not in STEPS_FROM[row.data_state]:
        raise ValidationError({"step": _("%(what)s is %(state)s: it cannot be %(step)s.") % {
            "what": described, "state": DataState(row.data_state).label.lower(),
            "step": _past(step)}})
    if not (reason or "").strip():
        errors["reason"] = _("Give the reason.")
    if errors:
        raise ValidationError(errors)
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    now = timezone.now()
    fields = {FREEZE: {"frozen_at": now, "frozen_by": by},
              LOCK: {"locked_at": now, "locked_by": by},
              UNLOCK: {"locked_at": None, "locked_by": None},
              UNFREEZE: {"frozen_at": None, "frozen_by": None}}[step]
    for name, value in fields.items():
        setattr(row, name, value)
    row._change_reason = f"{step.capitalize()}: {reason.strip()}"
    row.save(update_fields=list(fields))
    # Audit-log text in English, as every governance entry.
    audit.record(f"data.{step}", f"{described} {_PAST_EN[step]} by {by.get_username()}. "
                 f"Reason: {reason.strip()}", actor=by, trial=trial, obj=row,
                 detail={"step": step, "state": row.data_state}, **audit_scope)
    return row


_PAST_EN = {FREEZE: "frozen", LOCK: "locked", UNLOCK: "unlocked (frozen again)",
            UNFREEZE: "unfrozen (open again)"}


def _past(step: str) -> str:
    return {FREEZE: _("frozen"), LOCK: _("locked"), UNLOCK: _("unlocked"),
            UNFREEZE: _("unfrozen")}[step]


def require_permission(by, trial: Trial, site: Site | None = None) -> None:
    # The whole trial only for a data manager of all its sites.
    allowed = (policy.has_perm(by, policy.Perm.LOCK_DATA, trial, site) if site is not None
               else policy.holds_for_every_site(by, trial, policy.Perm.LOCK_DATA))
    if not allowed:
        raise PermissionDenied(_("Only the trial's data manager may freeze or lock its data."))


@transaction.atomic
def step_trial(trial: Trial, step: str, *, by, reason: str, password: str,
               request=None) -> Trial:
    """Freeze, lock, unlock or unfreeze the whole trial (every site, every casebook)."""
    require_permission(by, trial)
    trial = Trial.objects.select_for_update().get(pk=trial.pk)
    return take_step(trial, step, by=by, reason=reason, password=password, request=request,
                     trial=trial, described=f"Trial {trial.short_title}")


@transaction.atomic
def step_site(site: Site, step: str, *, by, reason: str, password: str,
              request=None) -> Site:
    """Freeze, lock, unlock or unfreeze one site's data (its casebooks, and no new
    participant there)."""
    require_permission(by, site.trial, site)
    site = Site.objects.select_for_update().select_related("trial").get(pk=site.pk)
    return take_step(site, step, by=by, reason=reason, password=password, request=request,
                     trial=site.trial, described=f"Site {site.code}", site=site)


def closing(*rows: Lockable) -> Lockable | None:
    """The most closed of ``rows`` (a lock over a freeze; the first listed among equals), or
    None when all are open: what stops a change, to name it in the refusal."""
    order = {DataState.LOCKED: 2, DataState.FROZEN: 1, DataState.OPEN: 0}
    closed = [row for row in rows if row is not None and row.data_state != DataState.OPEN]
    return max(closed, key=lambda row: order[row.data_state]) if closed else None


def describe(row: Lockable, label: str) -> dict | None:
    """What the pages show of ``row``'s state: ``{"state", "label", "at", "by"}``, or None when
    open (``by`` is the user who took the last step; its name is shown to every member)."""
    state = row.data_state
    if state == DataState.OPEN:
        return None
    locked = state == DataState.LOCKED
    return {"state": state, "state_label": DataState(state).label, "label": label,
            "at": row.locked_at if locked else row.frozen_at,
            "by": row.locked_by if locked else row.frozen_by}


def refusal(row: Lockable, what: str) -> ValidationError:
    """The error for a change ``row``'s freeze or lock stops, naming level, state, when, who."""
    state = row.data_state
    at = row.locked_at if state == DataState.LOCKED else row.frozen_at
    return ValidationError(_(
        "%(what)s is %(state)s (since %(when)s): no data may change. Ask the data manager to "
        "%(undo)s it first.") % {
        "what": what, "state": DataState(state).label.lower(),
        "when": shown_instant(at, zone=False),
        "undo": _("unlock") if state == DataState.LOCKED else _("unfreeze")})


def refuse_new_participant(site: Site) -> None:
    """Registering a participant adds data to the site and the trial: refused when either is
    frozen or locked."""
    trial = Trial.objects.only("frozen_at", "locked_at", "short_title").get(pk=site.trial_id)
    site = Site.objects.only("frozen_at", "locked_at", "code").get(pk=site.pk)
    row = closing(trial, site)
    if row is not None:
        raise refusal(row, _("The trial") if row is trial else
                      _("Site %(code)s") % {"code": site.code})
