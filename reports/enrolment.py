"""The enrolment report's figures, computed set-wise: a handful of GROUP BY queries whatever
the trial's size (no loop over participants in Python), so 100,000 participants cost a few
aggregates and bounded memory (``bench/enrolment_report.py``).

What the reader may see is decided once, from ``trials.policy``: the sites where they hold
``VIEW_REPORTS`` and whether they may see arms. A blinded reader gets the same figures pooled
over arms. Counts only: no study ID, no date of birth, no date of a single participant
(first and last randomisation are per site).

Definitions (printed in the report):
- *assessed* (CONSORT 2010's "assessed for eligibility"): the screening log's entries (people
  assessed and not registered, ``patients.screening``) and every participant registered;
  *excluded*: the log's entries by the protocol's reason for non-inclusion, and the screen
  failures, also counted by criterion not met (one participant may fail several criteria);
- *screened*: every participant registered; *not eligible*: screen failures; *eligible*:
  randomised, or screened with a completed eligibility form and not failed; *awaiting*: the
  rest of the screened.
- *randomised in error*: randomised participants recorded so; they stay in their arm and in
  every count (intention to treat), flagged.
- *recent rate*: randomisations in the last ``RECENT_DAYS`` days (or since the first
  randomisation, when later), per month of 30.44 days; the projection assumes that rate goes on.
  A trial whose protocol does not state its planned enrolment has no target: accrual and rate
  only, no projection and no day the target was reached.
- *expected CRFs*: the forms the schedule lists at visits that should have happened (done, or
  overdue: window closed and not done); *entered*: records at those visits; *complete*: entered
  and no longer a draft.
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, F, Func, IntegerField, Max, Min, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _

from crfs.eligibility import ELIGIBILITY_CRF
from crfs.models import UNRESOLVED, CRFRecord, CRFStatus, DataQuery
from patients.models import (RANDOMISED_STATUSES, WITHDRAWAL_ORDER, Deviation, Participant,
                             ScreeningLogEntry, Status, Visit, VisitStatus, Withdrawal, counted)
from randomisation.models import Allocation, RandomisedInError
from safety.models import SAEReport, SAEVersion, VersionStatus
from trials import policy
from trials.models import Arm, Trial

RECENT_DAYS = 182          # about six months
DAYS_PER_MONTH = 30.44


@dataclass
class SiteFigures:
    code: str
    name: str
    logged: int = 0            # screening log entries: assessed, never registered
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
    # Randomised participants by the furthest withdrawal level they reached (issue 17): the
    # levels of ``patients.models.WithdrawalLevel``, each present (0 when none).
    withdrawals: dict[str, int] = field(default_factory=dict)
    in_error: int = 0          # randomised in error: counted above too (intention to treat)


@dataclass(frozen=True)
class Exclusion:
    """One line of the flow diagram's "excluded" box: a reason of the screening log, or a
    criterion screen failures did not meet."""

    code: str
    label: str
    n: int


@dataclass
class SafetyFigures:
    """Serious adverse events of one arm (or of all arms pooled, ``code`` empty): reports,
    those not yet signed, by ICH E2A seriousness criterion and by causality (the latest signed
    version: related if the investigator or the sponsor found any study product related),
    SUSARs (the sponsor's assessment)."""

    code: str
    label: str
    reports: int = 0
    unsigned: int = 0
    criteria: dict[str, int] = field(default_factory=dict)
    related: int = 0
    not_related: int = 0
    susars: int = 0


@dataclass
class EnrolmentFigures:
    trial: Trial
    as_of: dt.date
    with_arms: bool
    target: int | None                                # None: not stated in the protocol
    sites: list[SiteFigures]
    accrual: list[tuple[dt.date, int, int]]          # (month, randomised, cumulative)
    recent_days: int
    recent_randomised: int
    rate_per_month: float
    projected_completion: dt.date | None
    target_reached_on: dt.date | None
    arms: list[ArmFigures]                            # one pooled row when blinded
    log_reasons: list[Exclusion] = field(default_factory=list)       # the protocol's order
    failed_criteria: list[Exclusion] = field(default_factory=list)   # the protocol's order
    safety: list[SafetyFigures] = field(default_factory=list)  # one pooled row when blinded
    closed: bool = False   # pooled although the reader may see arms: comparisons are closed
    totals: SiteFigures = field(init=False)

    def __post_init__(self):
        total = SiteFigures(code="", name="")
        for row in self.sites:
            for name in ("logged", "screened", "not_eligible", "eligible", "randomised", "withdrawn",
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
    def assessed(self) -> int:
        """Assessed for eligibility: screening log entries and registered participants."""
        return self.totals.logged + self.totals.screened

    @property
    def excluded(self) -> int:
        """Excluded: screening log entries and screen failures."""
        return self.totals.logged + self.totals.not_eligible

    @property
    def in_error(self) -> int:
        return sum(a.in_error for a in self.arms)

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
    """Every figure of the enrolment report, as ``viewer`` may see them: eleven aggregate
    queries (and two of the policy), each one scan of its table."""
    step = progress or (lambda percent, text: None)
    today = today or timezone.localdate()
    # Counts per arm (what became of each arm's participants, their SAEs) compare the arms: a
    # closed report until the lock (``policy.can_see_comparisons``).
    with_arms = policy.can_see_comparisons(viewer, trial)
    closed = not with_arms and not policy.is_blinded_for(viewer, trial)
    sites = list(policy.sites_for(viewer, trial, policy.Perm.VIEW_REPORTS).order_by("code"))
    site_ids = [s.pk for s in sites]
    rows = {s.pk: SiteFigures(code=s.code, name=s.name) for s in sites}

    with _analytic_session():
        figures = _figures(trial, today=today, with_arms=with_arms, rows=rows,
                           site_ids=site_ids, inactive={s.pk for s in sites if not s.active},
                           step=step)
    figures.closed = closed
    return figures


def _figures(trial: Trial, *, today: dt.date, with_arms: bool, rows: dict[int, SiteFigures],
             site_ids: list[int], inactive: set[int], step) -> EnrolmentFigures:
    # Test participants (registered in test mode) are counted nowhere: ``counted``.
    participants = Participant.objects.filter(counted(), trial=trial, site_id__in=site_ids)
    step(5, _("Counting participants per site"))
    # One scan of participants (with their allocation) by site, status and, for a reader who
    # may see arms, arm: the per-site counts and the flow by arm both come from it.
    if with_arms:
        arms = {a.pk: ArmFigures(code=a.code, label=a.label)
                for a in Arm.objects.filter(trial=trial).order_by("position", "code")}
        keys = ("site_id", "status", "allocation__arm_id")
    else:
        arms = {None: ArmFigures(code="", label="")}
        keys = ("site_id", "status")
    for r in participants.values(*keys).annotate(n=Count("pk")).order_by():
        row, status, n = rows[r["site_id"]], r["status"], r["n"]
        row.screened += n
        if status == Status.SCREEN_FAILED:
            row.not_eligible += n
        elif status in RANDOMISED_STATUSES:
            row.randomised += n
            row.eligible += n
            row.withdrawn += n if status == Status.WITHDRAWN else 0
            arm = arms[r.get("allocation__arm_id")]
            arm.randomised += n
            name = STATUS_FIELD[status]
            setattr(arm, name, getattr(arm, name) + n)
    _withdrawal_levels(participants, arms, with_arms)
    # Eligible but not randomised: screened with a completed eligibility form (few rows).
    assessed = (CRFRecord.objects
                .filter(participant__in=participants.filter(status=Status.SCREENED),
                        crf_code=ELIGIBILITY_CRF,
                        status__in=[CRFStatus.COMPLETE, CRFStatus.SIGNED, CRFStatus.LOCKED])
                .values(site_id=F("participant__site_id"))
                .annotate(n=Count("participant_id", distinct=True)).order_by())
    for r in assessed:
        rows[r["site_id"]].eligible += r["n"]
    log_reasons, failed_criteria = _exclusions(trial, rows, participants, site_ids)
    # Randomised in error, by arm for a reader who may see arms (few rows).
    in_error = RandomisedInError.objects.filter(
        counted("allocation__participant__"), allocation__trial=trial, allocation__participant__site_id__in=site_ids)
    if with_arms:
        for r in in_error.values("allocation__arm_id").annotate(n=Count("pk")).order_by():
            arms[r["allocation__arm_id"]].in_error += r["n"]
    else:
        arms[None].in_error = in_error.count()

    step(20, _("Accrual by month"))
    allocations = Allocation.objects.filter(counted("participant__"), trial=trial,
                                            participant__site_id__in=site_ids)
    months: dict[dt.date, int] = {}
    for r in (allocations.annotate(month=TruncMonth("randomised_at"))
              .values("month", site_id=F("participant__site_id"))
              .annotate(n=Count("pk"), first=Min("randomised_at"), last=Max("randomised_at"))
              .order_by()):
        month = r["month"].date() if isinstance(r["month"], dt.datetime) else r["month"]
        months[month] = months.get(month, 0) + r["n"]
        row = rows[r["site_id"]]
        first, last = _local_date(r["first"]), _local_date(r["last"])
        row.first_randomised = min(filter(None, [row.first_randomised, first]))
        row.last_randomised = max(filter(None, [row.last_randomised, last]))
    accrual: list[tuple[dt.date, int, int]] = []
    cumulative = 0
    for month in sorted(months):
        cumulative += months[month]
        accrual.append((month, months[month], cumulative))
    target = trial.target_enrolment
    target_reached_on = None
    if target and cumulative >= target:
        # The day the target was reached: the target-th randomisation.
        instant = (allocations.order_by("randomised_at", "pk")
                   .values_list("randomised_at", flat=True)[target - 1])
        target_reached_on = _local_date(instant)

    first = min((r.first_randomised for r in rows.values() if r.first_randomised), default=None)
    recent_days = RECENT_DAYS
    if first is not None:
        recent_days = max(30, min(RECENT_DAYS, (today - first).days + 1))
    # The window is whole days of the trials' time zone, the first randomisation's day
    # included: counted from an instant instead, a participant randomised late in the evening
    # of a summer day (already the next day there) fell out of the window that day opened.
    since = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=recent_days - 1),
                                                    dt.time.min))
    recent = allocations.filter(randomised_at__gte=since).count()
    rate = recent / (recent_days / DAYS_PER_MONTH)
    projected = None
    remaining = target - cumulative if target else 0
    if remaining > 0 and rate > 0:
        projected = today + dt.timedelta(days=round(remaining / rate * DAYS_PER_MONTH))

    step(40, _("Data completeness"))
    _completeness(rows, trial, site_ids, today)

    return EnrolmentFigures(
        trial=trial, as_of=today, with_arms=with_arms, target=target,
        # A site an amendment dropped is shown only if it had participants.
        sites=[row for pk, row in rows.items() if pk not in inactive or row.screened],
        accrual=accrual, recent_days=recent_days,
        recent_randomised=recent, rate_per_month=rate, projected_completion=projected,
        target_reached_on=target_reached_on, arms=list(arms.values()),
        log_reasons=log_reasons, failed_criteria=failed_criteria,
        safety=_safety(trial, site_ids, with_arms))


def _safety(trial: Trial, site_ids: list[int], with_arms: bool) -> list[SafetyFigures]:
    """SAE counts per arm for a reader who may see arms, else pooled: two reads (the reports
    with their assessment and arm, their signed versions), as many rows as SAE reports."""
    reports = SAEReport.objects.filter(counted("participant__"), trial=trial,
                                       participant__site_id__in=site_ids)
    fields = ["pk", "assessment__susar", "assessment__causality"]
    if with_arms:
        fields.append("participant__allocation__arm_id")
        rows = {a.pk: SafetyFigures(code=a.code, label=a.label)
                for a in Arm.objects.filter(trial=trial).order_by("position", "code")}
        rows[None] = SafetyFigures(code="-", label=_("Not randomised"))
    else:
        rows = {None: SafetyFigures(code="", label="")}
    latest: dict[int, tuple[int, list, dict]] = {}
    for report_id, number, criteria, causality in (
            SAEVersion.objects.filter(report__in=reports, status=VersionStatus.SIGNED)
            .values_list("report_id", "number", "criteria", "causality").order_by()):
        if report_id not in latest or number > latest[report_id][0]:
            latest[report_id] = (number, criteria, causality)
    for values in reports.values_list(*fields).order_by():
        pk, susar, sponsor = values[:3]
        row = rows[values[3] if with_arms else None]
        row.reports += 1
        if pk not in latest:
            row.unsigned += 1
            continue
        criteria, causality = latest[pk][1:]
        for criterion in criteria:
            row.criteria[criterion] = row.criteria.get(criterion, 0) + 1
        related = "related" in (causality or {}).values() or "related" in (sponsor or {}).values()
        row.related += related
        row.not_related += not related
        row.susars += bool(susar)
    return [row for key, row in rows.items() if key is not None or row.reports or not with_arms]


def _exclusions(trial: Trial, rows: dict[int, SiteFigures], participants,
                site_ids: list[int]) -> tuple[list[Exclusion], list[Exclusion]]:
    """The screening log by site and reason (one GROUP BY), and the screen failures' criteria
    not met (one aggregate over their eligibility forms: a criterion fails when answered
    "no" for an inclusion, "yes" for an exclusion). Reasons and criteria with no one are
    left out; in the protocol's order."""
    screening = trial.definition.get("screening", {})
    labels = {r["code"]: r["label"] for r in screening.get("non_inclusion_reasons", [])}
    by_reason: dict[str, int] = {}
    for r in (ScreeningLogEntry.objects.filter(trial=trial, site_id__in=site_ids)
              .values("site_id", "reason").annotate(n=Count("pk")).order_by()):
        rows[r["site_id"]].logged += r["n"]
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + r["n"]
    order = list(labels) + sorted(set(by_reason) - set(labels))
    log_reasons = [Exclusion(code, labels.get(code, code), by_reason[code])
                   for code in order if code in by_reason]
    criteria = trial.definition["eligibility"]
    counts = (CRFRecord.objects
              .filter(participant__in=participants.filter(status=Status.SCREEN_FAILED),
                      crf_code=ELIGIBILITY_CRF, visit__isnull=True)
              .aggregate(**{f"c{i}": Count("pk", filter=Q(**{
                  f"data__{c['code']}": c["kind"] != "inclusion"}))
                  for i, c in enumerate(criteria)})) if criteria else {}
    failed = [Exclusion(c["code"], c["text"], counts[f"c{i}"])
              for i, c in enumerate(criteria) if counts.get(f"c{i}")]
    return log_reasons, failed


def _withdrawal_levels(participants, arms: dict, with_arms: bool) -> None:
    """Each arm's (or the pooled row's) participants by the furthest withdrawal level they
    reached, as ``patients.selectors.withdrawal_counts`` counts them: one query."""
    furthest: dict[int, tuple[int, object]] = {}
    for pk, level, arm_id in (Withdrawal.objects.filter(participant__in=participants)
                              .values_list("participant_id", "level",
                                           "participant__allocation__arm_id")):
        rank = WITHDRAWAL_ORDER.index(level)
        if pk not in furthest or rank > furthest[pk][0]:
            furthest[pk] = (rank, arm_id if with_arms else None)
    for arm in arms.values():
        arm.withdrawals = {str(level): 0 for level in WITHDRAWAL_ORDER}
    for rank, arm_id in furthest.values():
        arms[arm_id].withdrawals[str(WITHDRAWAL_ORDER[rank])] += 1


STATUS_FIELD = {Status.RANDOMISED: "on_treatment", Status.ON_TREATMENT: "on_treatment",
                Status.FOLLOW_UP: "follow_up", Status.WITHDRAWN: "withdrawn",
                Status.DEAD: "dead", Status.COMPLETED: "completed"}


class JSONArrayLength(Func):
    """The length of a JSON array column: ``json_array_length`` on SQLite,
    ``jsonb_array_length`` on PostgreSQL."""

    output_field = IntegerField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="json_array_length", **extra_context)

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, function="jsonb_array_length",
                           **extra_context)


def _due(today: dt.date, *, path: str = "") -> Q:
    """The visits that should have happened by ``today``: done, or overdue (window closed and
    not done). ``path``: the way to the visit from the model queried (``"visit__"``)."""
    done = Q(**{f"{path}status": VisitStatus.DONE})
    overdue = Q(**{f"{path}status": VisitStatus.PLANNED, f"{path}window_closes__lt": today})
    return done | overdue


@contextmanager
def _analytic_session():
    """On PostgreSQL, no JIT for these few large aggregates: compiling them costs more than it
    saves (bench/README.md, "Enrolment report PDF"); and enough memory to aggregate without
    spilling to disk. Session settings, reset after, so that each progress update the caller
    writes between queries is committed and seen by the page at once."""
    if connection.vendor != "postgresql":
        yield
        return
    # Raw SQL: SET and RESET change the session, they query nothing; the ORM cannot say them.
    with connection.cursor() as cursor:
        cursor.execute("SET jit = off")
        cursor.execute("SET work_mem = '32MB'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET jit")
            cursor.execute("RESET work_mem")


def _completeness(rows: dict[int, SiteFigures], trial: Trial, site_ids: list[int],
                  today: dt.date) -> None:
    if not site_ids:
        return
    # The visits that should have happened, by site: the forms they list and how many are
    # overdue; then the CRF records at those visits, by site.
    for r in (Visit.objects.filter(_due(today), counted("participant__"), participant__trial=trial,
                                   participant__site_id__in=site_ids)
              .values(site_id=F("participant__site_id"))
              .annotate(expected=Sum(JSONArrayLength("crfs")),
                        overdue=Count("pk", filter=Q(status=VisitStatus.PLANNED)))
              .order_by()):
        rows[r["site_id"]].expected_crfs = r["expected"] or 0
        rows[r["site_id"]].overdue_visits = r["overdue"]
    for r in (CRFRecord.objects.filter(_due(today, path="visit__"), counted("participant__"),
                                       participant__trial=trial,
                                       participant__site_id__in=site_ids)
              .values(site_id=F("participant__site_id"))
              .annotate(entered=Count("pk"),
                        complete=Count("pk", filter=~Q(status=CRFStatus.DRAFT)))
              .order_by()):
        rows[r["site_id"]].entered_crfs = r["entered"]
        rows[r["site_id"]].complete_crfs = r["complete"]
    for r in (DataQuery.objects.filter(counted("record__participant__"),
                                       record__participant__site_id__in=site_ids,
                                       record__participant__trial=trial, status__in=UNRESOLVED)
              .values(site_id=F("record__participant__site_id")).annotate(n=Count("pk"))
              .order_by()):
        rows[r["site_id"]].open_queries = r["n"]
    for r in (Deviation.objects.filter(counted("participant__"),
                                       participant__site_id__in=site_ids,
                                       participant__trial=trial, voided_at__isnull=True)
              .values(site_id=F("participant__site_id")).annotate(n=Count("pk")).order_by()):
        rows[r["site_id"]].deviations = r["n"]
