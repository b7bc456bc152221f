"""Reads of trials, already restricted to what the asking user may see."""
from __future__ import annotations


from django.core.exceptions import PermissionDenied
from django.http import Http404

from patients.models import Participant
from patients.selectors import (get_participant_for, participant_seen,
                                participant_with_site)

from . import policy, sql
from .models import Membership, Site, Trial


def get_trial_for(user, slug: str, perm: policy.Perm = policy.Perm.VIEW_TRIAL) -> Trial:
    """The trial, or 404 when it does not exist or the user has no part in it; 403 when they
    have a part in it but their role lacks ``perm`` (they may see the trial, not do this), as
    the API answers."""
    return _checked(user, policy.visible_trial(user, slug), perm)


def _checked(user, trial: Trial | None, perm: policy.Perm) -> Trial:
    if trial is None or not policy.has_perm(user, policy.Perm.VIEW_TRIAL, trial):
        raise Http404("No such trial.")
    if not policy.has_perm(user, perm, trial):
        raise PermissionDenied
    return trial


def get_trial_and_participant_for(user, slug: str, study_id: str,
                                  perm: policy.Perm = policy.Perm.VIEW_TRIAL,
                                  ) -> tuple[Trial, Participant]:
    """``get_trial_for`` then ``get_participant_for``, with the same answers (404, 403), in
    one query: every participant page asks for both."""
    if "\x00" in study_id or not getattr(user, "is_authenticated", False):
        trial = get_trial_for(user, slug, perm)
        return trial, get_participant_for(user, trial, study_id)
    columns, tables, params = policy.trial_with_memberships(user)
    rows = sql.fetch(
        f"SELECT {columns}, {participant_with_site()} FROM {tables}"
        f" LEFT JOIN {sql.table(Participant)} p ON p.trial_id = t.id AND p.study_id = %s"
        f" LEFT JOIN {sql.table(Site)} s ON s.id = p.site_id"
        f" WHERE t.slug = %s", [*params, study_id, slug])
    trial = _checked(user, policy.trial_from_rows(user, rows), perm)
    return trial, participant_seen(user, trial, rows[0][sql.width(Trial, Membership):])
