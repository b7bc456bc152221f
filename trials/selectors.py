"""Reads of trials, already restricted to what the asking user may see."""
from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404

from patients.models import RANDOMISED_STATUSES, Participant
from patients.selectors import VisitCounts, get_participant_for, visit_counts

from . import policy
from .models import Arm, Site, Trial


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


def get_trial_and_participant_for(user, slug: str, study_id: str,
                                  perm: policy.Perm = policy.Perm.VIEW_TRIAL,
                                  ) -> tuple[Trial, Participant]:
    """``get_trial_for`` then ``get_participant_for``, with their answers (404, 403): what
    every participant page asks first."""
    trial = get_trial_for(user, slug, perm)
    return trial, get_participant_for(user, trial, study_id)


@dataclass(frozen=True)
class TrialCard:
    trial: Trial
    roles: list[str]
    randomised: int
    visits: VisitCounts  # the user's worklist counts in this trial (their sites only)


def trial_cards(user) -> list[TrialCard]:
    """The home page: each trial of the user, with their roles there and the trial's enrolment."""
    trials = (
        policy.trials_for(user)
        .annotate(randomised=Count("participants",
                                   filter=Q(participants__status__in=RANDOMISED_STATUSES)))
        .order_by("short_title")
    )
    roles: dict[int, set[str]] = {}
    for trial_id, role in user.memberships.filter(active=True).values_list("trial_id", "role"):
        roles.setdefault(trial_id, set()).add(role)
    labels = dict(policy.Role.choices)
    trials = list(trials)
    counts = visit_counts(user, trials)
    return [
        TrialCard(t, sorted(str(labels[r]) for r in roles.get(t.pk, ())), t.randomised,
                  counts.get(t.pk, VisitCounts()))
        for t in trials
    ]


@dataclass(frozen=True)
class SiteRow:
    site: Site
    visible: bool          # the user may see this site's participants
    screened: int | None
    randomised: int | None


@dataclass(frozen=True)
class TrialOverview:
    trial: Trial
    sites: list[SiteRow]
    arms: list[Arm] | None  # None when the user is blinded to arms
    randomised: int
    target: int


def trial_overview(user, trial: Trial) -> TrialOverview:
    visible = set(policy.sites_for(user, trial).values_list("pk", flat=True))
    counts = {
        row["site"]: row
        for row in Participant.objects.filter(trial=trial, site__in=visible)
        .values("site")
        .annotate(screened=Count("pk"),
                  randomised=Count("pk", filter=Q(status__in=RANDOMISED_STATUSES)))
    }
    rows = []
    for site in trial.sites.filter(active=True):
        if site.pk in visible:
            c = counts.get(site.pk, {})
            rows.append(SiteRow(site, True, c.get("screened", 0), c.get("randomised", 0)))
        else:
            rows.append(SiteRow(site, False, None, None))
    arms = None if policy.is_blinded_for(user, trial) else list(trial.arms.all())
    total = Participant.objects.filter(trial=trial, status__in=RANDOMISED_STATUSES).count()
    return TrialOverview(trial, rows, arms, total, trial.target_enrolment)
