"""Reads of trials, already restricted to what the asking user may see."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from . import policy
from .models import Trial


def get_trial_for(user, slug: str, perm: policy.Perm = policy.Perm.VIEW_TRIAL) -> Trial:
    """The trial, or 404 when it does not exist or the user has no part in it; 403 when they
    have a part in it but their role lacks ``perm`` (they may see the trial, not do this), as
    the API answers."""
    trial = policy.visible_trial(user, slug)
    if trial is None or not policy.has_perm(user, policy.Perm.VIEW_TRIAL, trial):
        raise Http404("No such trial.")
    if not policy.has_perm(user, perm, trial):
        raise PermissionDenied
    return trial
