"""Reads for the home and trial overview pages, already restricted to what the user may see."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from patients.models import RANDOMISED_STATUSES, Participant, counted
from patients.selectors import VisitCounts, visit_counts
from safety.selectors import counts as sae_counts
from trials import locks, policy
from trials.models import Site, Trial


@dataclass(frozen=True)
class TrialCard:
    trial: Trial
    roles: list[str]
    randomised: int
    visits: VisitCounts  # the user's worklist counts in this trial (their sites only)
    sae: dict | None = None  # SAE reports waiting / overdue / to assess (safety.selectors.counts)


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
                  counts.get(t.pk, VisitCounts()), sae_counts(user, t))
        for t in trials
    ]


@dataclass(frozen=True)
class SiteRow:
    site: Site
    visible: bool          # the user may see this site's participants
    screened: int | None
    randomised: int | None

    @property
    def data_state(self) -> dict | None:
        """Frozen or locked (``trials.locks.describe``), None when open."""
        return locks.describe(self.site, self.site.code)


@dataclass(frozen=True)
class TrialOverview:
    trial: Trial
    sites: list[SiteRow]
    arms: list[dict] | None  # None when the user is blinded to arms
    randomised: int
    target: int | None  # None when the protocol does not state the planned enrolment


def trial_overview(user, trial: Trial) -> TrialOverview:
    visible = set(policy.sites_for(user, trial).values_list("pk", flat=True))
    counts = {
        row["site"]: row
        # Enrolment counts only participants who count (never test ones: ``counted``).
        for row in Participant.objects.filter(counted(), trial=trial, site__in=visible)
        .values("site")
        .annotate(screened=Count("pk"),
                  randomised=Count("pk", filter=Q(status__in=RANDOMISED_STATUSES)))
    }
    rows = []
    # With who froze or locked each site: its state is shown to every member.
    for site in trial.sites.filter(active=True).select_related("frozen_by", "locked_by"):
        if site.pk in visible:
            c = counts.get(site.pk, {})
            rows.append(SiteRow(site, True, c.get("screened", 0), c.get("randomised", 0)))
        else:
            rows.append(SiteRow(site, False, None, None))
    # The arms as the protocol states them, in the reader's language (the Arm rows keep the
    # protocol's first language).
    arms = None if policy.is_blinded_for(user, trial) else trial.definition.get("arms", [])
    total = Participant.objects.filter(counted(), trial=trial,
                                       status__in=RANDOMISED_STATUSES).count()
    return TrialOverview(trial, rows, arms, total, trial.target_enrolment)
