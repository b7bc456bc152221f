"""Reads of participants and their visits, already restricted to what the asking user may see.

Every query a list page runs is here, with what it prefetches; tests assert the counts.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from trials import policy
from trials.models import ProtocolVersion, Site, Trial
from trials.selectors import get_trial_for

from .consent import consent_in_force, consent_versions, reconsent_from
from .models import (
    WITHDRAWAL_ORDER,
    ConsentRecord,
    Deviation,
    Participant,
    Status,
    Visit,
    VisitStatus,
    Withdrawal,
    WithdrawalLevel,
)

UPCOMING_DAYS = 14  # the worklist's "upcoming" horizon


def participants_for(user, trial: Trial) -> QuerySet[Participant]:
    return (
        Participant.objects.filter(trial=trial)
        .filter(policy.site_filter(user, trial))
        .select_related("site")
    )


def get_participant_for(user, trial: Trial, study_id: str) -> Participant:
    """The participant, or 404 when it does not exist *or* is at a site the user cannot see."""
    if "\x00" in study_id:  # no study ID has one, and PostgreSQL refuses it in a query
        raise Http404("No such participant in this trial.")
    try:
        participant = participants_for(user, trial).get(study_id=study_id)
    except Participant.DoesNotExist:
        raise Http404("No such participant in this trial.")
    participant.trial = trial  # already loaded by the caller: no second query for it
    return participant


def get_trial_and_participant_for(user, slug: str, study_id: str,
                                  perm: policy.Perm = policy.Perm.VIEW_TRIAL,
                                  ) -> tuple[Trial, Participant]:
    """``get_trial_for`` then ``get_participant_for``, with their answers (404, 403): what
    every participant page asks first."""
    trial = get_trial_for(user, slug, perm)
    return trial, get_participant_for(user, trial, study_id)


# --------------------------------------------------------------------------- visits


@dataclass(frozen=True)
class Section:
    """One section of the worklist: a page of its visits, and how many there are in all."""

    visits: list[Visit]
    total: int
    page: int
    per_page: int

    @property
    def first(self) -> int:
        return (self.page - 1) * self.per_page + 1 if self.visits else 0

    @property
    def last(self) -> int:
        return self.first + len(self.visits) - 1 if self.visits else 0

    @property
    def has_next(self) -> bool:
        return self.page * self.per_page < self.total

    @property
    def has_previous(self) -> bool:
        return self.page > 1


@dataclass(frozen=True)
class Worklist:
    """Planned visits of the sites a user may see, as of ``today``: each section a page of rows
    and its full count, so the page costs the same at 100 participants as at 10,000."""

    today: dt.date
    until: dt.date            # the "upcoming" horizon
    overdue_section: Section  # window closed, visit not done
    open_section: Section     # today within the window
    upcoming_section: Section  # window opens within the horizon
    deviations: int           # open protocol deviations at these sites

    @property
    def overdue(self) -> list[Visit]:
        return self.overdue_section.visits

    @property
    def open_now(self) -> list[Visit]:
        return self.open_section.visits

    @property
    def upcoming(self) -> list[Visit]:
        return self.upcoming_section.visits

    @property
    def counts(self) -> "VisitCounts":
        return VisitCounts(self.overdue_section.total, self.open_section.total,
                           self.upcoming_section.total)


@dataclass(frozen=True)
class VisitCounts:
    overdue: int = 0
    open_now: int = 0
    upcoming: int = 0

    @property
    def total(self) -> int:
        return self.overdue + self.open_now + self.upcoming


def _visits_for(user, trial: Trial) -> QuerySet[Visit]:
    return Visit.objects.filter(participant__trial=trial).filter(
        policy.site_filter(user, trial, field="participant__site"))


WORKLIST_PAGE = 10


def worklist(user, trial: Trial, *, today: dt.date | None = None, site: Site | None = None,
             days_ahead: int = UPCOMING_DAYS, pages: dict[str, int] | None = None,
             per_page: int = WORKLIST_PAGE) -> Worklist:
    """Overdue, open and upcoming visits of the sites ``user`` may see.

    Five queries whatever the number of visits: the three counts in one aggregate, one page of
    each section (``pages``: section → page number, from 1), and the deviation count.
    """
    today = today or timezone.localdate()
    until = today + dt.timedelta(days=days_ahead)
    pages = pages or {}
    planned = _visits_for(user, trial).filter(status=VisitStatus.PLANNED,
                                              window_opens__lte=until)
    deviations = Deviation.objects.filter(participant__trial=trial, voided_at__isnull=True).filter(
        policy.site_filter(user, trial, field="participant__site"))
    if site is not None:
        planned = planned.filter(participant__site=site)
        deviations = deviations.filter(participant__site=site)
    filters = {
        "overdue": Q(window_closes__lt=today),
        "open": Q(window_opens__lte=today, window_closes__gte=today),
        "upcoming": Q(window_opens__gt=today),
    }
    orders = {
        "overdue": ("window_closes", "participant__study_id", "occurrence"),
        "open": ("window_closes", "participant__study_id", "occurrence"),
        "upcoming": ("window_opens", "participant__study_id", "occurrence"),
    }
    # Count a non-null column (not the primary key) so the planned-visit indexes answer alone.
    totals = planned.aggregate(**{key: Count("window_closes", filter=q)
                                  for key, q in filters.items()})
    sections = {}
    for key, q in filters.items():
        page = max(1, min(pages.get(key, 1), 1 + max(totals[key] - 1, 0) // per_page))
        start = (page - 1) * per_page
        rows = list(planned.filter(q).select_related("participant__site")
                    .order_by(*orders[key])[start:start + per_page])
        sections[key] = Section(rows, totals[key], page, per_page)
    return Worklist(today, until, sections["overdue"], sections["open"], sections["upcoming"],
                    deviations.count())


def visit_counts(user, trials: list[Trial], *, today: dt.date | None = None
                 ) -> dict[int, VisitCounts]:
    """Worklist counts per trial for the home page, in one query for all the user's trials."""
    today = today or timezone.localdate()
    if not trials:
        return {}
    scope = Q(pk__in=[])
    for trial in trials:
        scope |= Q(participant__trial=trial) & policy.site_filter(user, trial,
                                                                  field="participant__site")
    rows = (Visit.objects.filter(scope, status=VisitStatus.PLANNED,
                                 window_opens__lte=today + dt.timedelta(days=UPCOMING_DAYS))
            .values("participant__trial")
            .annotate(overdue=Count("pk", filter=Q(window_closes__lt=today)),
                      open_now=Count("pk", filter=Q(window_opens__lte=today,
                                                    window_closes__gte=today)),
                      upcoming=Count("pk", filter=Q(window_opens__gt=today)))
            .order_by())
    return {row["participant__trial"]: VisitCounts(row["overdue"], row["open_now"],
                                                   row["upcoming"]) for row in rows}


# --------------------------------------------------------------------------- consent, withdrawal


@dataclass(frozen=True)
class ConsentOverview:
    """A participant's consent history and withdrawals, for their page and the API."""

    records: list[ConsentRecord]        # every record, oldest first; ``corrected`` set on each
    in_effect: ConsentRecord | None     # the latest record no later one corrects
    item_labels: dict[str, str]         # optional item code → label, every declared version
    protocol_label: str                 # the protocol version the participant is on
    current_label: str                  # the trial's current protocol version
    reconsent_to: str | None            # the consent version they must re-consent to, if any
    withdrawals: list[Withdrawal]

    @property
    def reconsent_pending(self) -> bool:
        return self.reconsent_to is not None


def consent_overview(participant: Participant) -> ConsentOverview:
    """Three queries: the consent records, the withdrawals, the protocol version labels."""
    definition = participant.trial.definition
    records = list(participant.consents.annotate(protocol_label=F("protocol_version__label"))
                   .order_by("consent_date", "recorded_at", "pk"))
    corrected = {r.corrects_id for r in records}
    for record in records:
        record.corrected = record.pk in corrected
    in_effect = [r for r in records if not r.corrected]
    latest = max(in_effect, key=lambda r: (r.consent_date, r.recorded_at, r.pk), default=None)
    withdrawals = list(participant.withdrawals.order_by("withdrawn_on", "pk"))
    labels = dict(ProtocolVersion.objects.filter(
        pk__in={participant.protocol_version_id, participant.trial.current_version_id})
        .values_list("pk", "label"))
    pending = (latest is not None and latest.version in reconsent_from(definition)
               and participant.status not in ENDED_STATUSES
               and not any(w.level == WithdrawalLevel.CONSENT for w in withdrawals))
    return ConsentOverview(
        records=records, in_effect=latest,
        item_labels={i["code"]: i["label"] for v in consent_versions(definition)
                     for i in v.get("optional_items", [])},
        protocol_label=labels.get(participant.protocol_version_id, ""),
        current_label=labels.get(participant.trial.current_version_id, ""),
        reconsent_to=consent_in_force(definition) if pending else None,
        withdrawals=withdrawals)


ENDED_STATUSES = [Status.DEAD, Status.COMPLETED, Status.SCREEN_FAILED]


def reconsent_worklist(user, trial: Trial) -> QuerySet[Participant]:
    """The participants of the user's sites whose consent in effect is a version the current
    amendment asks to re-consent (``amendments[].reconsent``), alive and still in the study
    (not dead, completed, failed at screening, nor withdrawn of consent)."""
    versions = reconsent_from(trial.definition)
    return (participants_for(user, trial).filter(consent_version__in=versions)
            .exclude(status__in=ENDED_STATUSES)
            .exclude(withdrawals__level=WithdrawalLevel.CONSENT)
            .annotate(protocol_label=F("protocol_version__label"))
            .select_related("site").order_by("site__code", "study_id"))


def withdrawal_counts(participants: QuerySet[Participant]) -> dict[str, int]:
    """How many of ``participants`` withdrew, by the furthest level each reached (every level
    present, 0 when none): what the flow diagram shows."""
    furthest: dict[int, str] = {}
    for pk, level in (Withdrawal.objects.filter(participant__in=participants)
                      .values_list("participant_id", "level")):
        if pk not in furthest or WITHDRAWAL_ORDER.index(level) > WITHDRAWAL_ORDER.index(
                furthest[pk]):
            furthest[pk] = level
    counts = {str(level): 0 for level in WITHDRAWAL_ORDER}
    for level in furthest.values():
        counts[level] += 1
    return counts
