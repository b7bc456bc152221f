"""The enrolment report's figures, computed set-wise: a handful of GROUP BY queries whatever
the trial's size (no loop over participants in Python), so 100,000 participants cost a few
aggregates and bounded memory (``bench/enrolment_report.py``).

What the reader may see is decided once, from ``trials.policy``: the sites where they hold
``VIEW_REPORTS`` and whether they may see arms. A blinded reader gets the same figures pooled
over arms. Counts only: no study ID, no date of birth, no date of a single participant
(first and last randomisation are per site).

Definitions (printed in the report):
- *screened*: every participant registered; *not eligible*: screen failures; *eligible*:
  randomised, or screened with a completed eligibility form and not failed; *awaiting*: the
  rest of the screened.
- *recent rate*: randomisations in the last ``RECENT_DAYS`` days (or since the first
  randomisation, when later), per month of 30.44 days; the projection assumes that rate goes on.
- *expected CRFs*: the forms the schedule lists at visits that should have happened (done, or
  overdue: window closed and not done); *entered*: records at those visits; *complete*: entered
  and no longer a draft.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Exists, F, Func, IntegerField, Max, Min, OuterRef, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from patients.models import RANDOMISED_STATUSES, Deviation, Participant, Status, Visit, VisitStatus
from randomization.models import Allocation
from trials import policy
from trials.models import Arm, Trial

from .models import UNRESOLVED, CRFRecord, CRFStatus, DataQuery

RECENT_DAYS = 182          # about six months
DAYS_PER_MONTH = 30.44


class JSONArrayLength(Func):
    """Length of a JSON list column, on SQLite and PostgreSQL."""

    function = "json_array_length"
    output_field = IntegerField()

    def as_postgresql(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, function="jsonb_array_length", **extra)


@dataclass
class SiteFigures:
    code: str
    name: str
    screened: int = 0
    not_eligible: int = 0
    eligible: int = 0
    randomised: int = 0
    withdrawn: int = 0
    first_randomised: dt.date | None = None
    last_randomised: dt.date | None = None
    expected_crfs: int = 0
    entered_crfs: int = 0
    complete_crfs: int = 0
    overdue_visits: int = 0
    open_queries: int = 0
    deviations: int = 0


@dataclass
class ArmFigures:
    """Randomised participants of one arm (or of all arms pooled, ``code`` empty) by status."""

    code: str
    label: str
    randomised: int = 0
    on_treatment: int = 0      # randomised, on treatment
    follow_up: int = 0
    withdrawn: int = 0
    dead: int = 0
    completed: int = 0


@dataclass
class EnrolmentFigures:
    trial: Trial
    as_of: dt.date
    with_arms: bool
    target: int
    sites: list[SiteFigures]
    accrual: list[tuple[dt.date, int, int]]          # (month, randomised, cumulative)
    recent_days: int
    recent_randomised: int
    rate_per_month: float
    projected_completion: dt.date | None
    target_reached_on: dt.date | None
    arms: list[ArmFigures]                            # one pooled row when blinded
    totals: SiteFigures = field(init=False)

    def __post_init__(self):
        total = SiteFigures(code="", name="")
        for row in self.sites:
            for name in ("screened", "not_eligible", "eligible", "randomised", "withdrawn",
                         "expected_crfs", "entered_crfs", "complete_crfs", "overdue_visits",
                         "open_queries", "deviations"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        firsts = [r.first_randomised for r in self.sites if r.first_randomised]
        lasts = [r.last_randomised for r in self.sites if r.last_randomised]
        total.first_randomised = min(firsts) if firsts else None
        total.last_randomised = max(lasts) if lasts else None
        self.totals = total

    @property
    def randomised(self) -> int:
        return self.totals.randomised

    @property
    def awaiting(self) -> int:
        t = self.totals
        return t.screened - t.not_eligible - t.eligible

    @property
    def eligible_not_randomised(self) -> int:
        return self.totals.eligible - self.totals.randomised


def _local_date(instant) -> dt.date | None:
    return timezone.localtime(instant).date() if instant else None


def enrolment_figures(trial: Trial, *, viewer, today: dt.date | None = None,
                      progress=None) -> EnrolmentFigures:
    """Every figure of the enrolment report, as ``viewer`` may see them."""
    step = progress or (lambda percent, text: None)
    today = today or timezone.localdate()
    with_arms = not policy.is_blinded_for(viewer, trial)
    sites = list(policy.sites_for(viewer, trial, policy.Perm.VIEW_REPORTS).order_by("code"))
    site_ids = [s.pk for s in sites]
    rows = {s.pk: SiteFigures(code=s.code, name=s.name) for s in sites}
    participants = Participant.objects.filter(trial=trial, site_id__in=site_ids)
    randomised = Q(status__in=RANDOMISED_STATUSES)

    step(5, "Counting participants per site")
    eligibility_done = CRFRecord.objects.filter(
        participant=OuterRef("pk"), crf_code="eligibility",
        status__in=[CRFStatus.COMPLETE, CRFStatus.SIGNED, CRFStatus.LOCKED])
    per_site = (participants.annotate(assessed=Exists(eligibility_done)).values("site_id")
                .annotate(screened=Count("pk"),
                          not_eligible=Count("pk", filter=Q(status=Status.SCREEN_FAILED)),
                          eligible=Count("pk", filter=randomised | Q(status=Status.SCREENED,
                                                                     assessed=True)),
                          randomised=Count("pk", filter=randomised),
                          withdrawn=Count("pk", filter=Q(status=Status.WITHDRAWN)))
                .order_by())
    for r in per_site:
        row = rows[r["site_id"]]
        for name in ("screened", "not_eligible", "eligible", "randomised", "withdrawn"):
            setattr(row, name, r[name])

    allocations = Allocation.objects.filter(trial=trial, participant__site_id__in=site_ids)
    for r in (allocations.values(site_id=F("participant__site_id"))
              .annotate(first=Min("randomised_at"), last=Max("randomised_at")).order_by()):
        rows[r["site_id"]].first_randomised = _local_date(r["first"])
        rows[r["site_id"]].last_randomised = _local_date(r["last"])

    step(20, "Accrual by month")
    by_month = (allocations.annotate(month=TruncMonth("randomised_at")).values("month")
                .annotate(n=Count("pk")).order_by("month"))
    accrual: list[tuple[dt.date, int, int]] = []
    cumulative = 0
    target_reached_on = None
    for r in by_month:
        cumulative += r["n"]
        month = r["month"].date() if isinstance(r["month"], dt.datetime) else r["month"]
        accrual.append((month, r["n"], cumulative))
    if cumulative >= trial.target_enrolment and accrual:
        # The day the target was reached: the target-th randomisation.
        instant = (allocations.order_by("randomised_at", "pk")
                   .values_list("randomised_at", flat=True)[trial.target_enrolment - 1])
        target_reached_on = _local_date(instant)

    first = min((r.first_randomised for r in rows.values() if r.first_randomised), default=None)
    recent_days = RECENT_DAYS
    if first is not None:
        recent_days = max(30, min(RECENT_DAYS, (today - first).days + 1))
    since = timezone.now() - dt.timedelta(days=recent_days)
    recent = allocations.filter(randomised_at__gte=since).count()
    rate = recent / (recent_days / DAYS_PER_MONTH)
    remaining = trial.target_enrolment - cumulative
    projected = None
    if remaining > 0 and rate > 0:
        projected = today + dt.timedelta(days=round(remaining / rate * DAYS_PER_MONTH))

    step(40, "Flow and arms")
    arms = _arm_figures(trial, allocations, with_arms=with_arms)

    step(55, "Data completeness")
    _completeness(rows, participants, site_ids, today)

    return EnrolmentFigures(
        trial=trial, as_of=today, with_arms=with_arms, target=trial.target_enrolment,
        sites=list(rows.values()), accrual=accrual, recent_days=recent_days,
        recent_randomised=recent, rate_per_month=rate, projected_completion=projected,
        target_reached_on=target_reached_on, arms=arms)


STATUS_FIELD = {Status.RANDOMISED: "on_treatment", Status.ON_TREATMENT: "on_treatment",
                Status.FOLLOW_UP: "follow_up", Status.WITHDRAWN: "withdrawn",
                Status.DEAD: "dead", Status.COMPLETED: "completed"}


def _arm_figures(trial: Trial, allocations, *, with_arms: bool) -> list[ArmFigures]:
    """Randomised participants by arm and status; one pooled row for a blinded reader (the
    arm is then not even selected from the database)."""
    if with_arms:
        figures = {a.pk: ArmFigures(code=a.code, label=a.label)
                   for a in Arm.objects.filter(trial=trial).order_by("position", "code")}
        grouped = allocations.values("arm_id", status=F("participant__status"))
    else:
        figures = {None: ArmFigures(code="", label="")}
        grouped = allocations.values(status=F("participant__status"))
    for r in grouped.annotate(n=Count("pk")).order_by():
        row = figures[r.get("arm_id")]
        row.randomised += r["n"]
        name = STATUS_FIELD.get(r["status"])
        if name:
            setattr(row, name, getattr(row, name) + r["n"])
    return list(figures.values())


def _completeness(rows: dict[int, SiteFigures], participants, site_ids: list[int],
                  today: dt.date) -> None:
    due = Q(status=VisitStatus.DONE) | Q(status=VisitStatus.PLANNED, window_closes__lt=today)
    visits = Visit.objects.filter(participant__in=participants)
    for r in (visits.filter(due).values(site_id=F("participant__site_id"))
              .annotate(expected=Sum(JSONArrayLength("crfs")),
                        overdue=Count("pk", filter=Q(status=VisitStatus.PLANNED)))
              .order_by()):
        rows[r["site_id"]].expected_crfs = r["expected"] or 0
        rows[r["site_id"]].overdue_visits = r["overdue"]
    records = (CRFRecord.objects
               .filter(participant__site_id__in=site_ids, visit__isnull=False)
               .filter(Q(visit__status=VisitStatus.DONE)
                       | Q(visit__status=VisitStatus.PLANNED, visit__window_closes__lt=today)))
    for r in (records.values(site_id=F("participant__site_id"))
              .annotate(entered=Count("pk"),
                        complete=Count("pk", filter=~Q(status=CRFStatus.DRAFT)))
              .order_by()):
        rows[r["site_id"]].entered_crfs = r["entered"]
        rows[r["site_id"]].complete_crfs = r["complete"]
    for r in (DataQuery.objects.filter(record__participant__site_id__in=site_ids,
                                       status__in=UNRESOLVED)
              .values(site_id=F("record__participant__site_id")).annotate(n=Count("pk"))
              .order_by()):
        rows[r["site_id"]].open_queries = r["n"]
    for r in (Deviation.objects.filter(participant__site_id__in=site_ids, voided_at__isnull=True)
              .values(site_id=F("participant__site_id")).annotate(n=Count("pk")).order_by()):
        rows[r["site_id"]].deviations = r["n"]
