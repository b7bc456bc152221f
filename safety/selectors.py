"""Reads of SAE reports, already restricted to what the user may see (``trials.policy``)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from trials import policy
from trials.models import Trial
from trials.policy import Perm

from .models import SITE_DEADLINE, SAEReport, SponsorAssessment, VersionStatus


def reports_for(user, trial: Trial) -> QuerySet[SAEReport]:
    """The SAE reports of the sites where ``user`` may see safety reports."""
    return (SAEReport.objects.filter(trial=trial)
            .filter(policy.site_filter(user, trial, Perm.VIEW_SAFETY, field="participant__site"))
            .select_related("participant__site", "trial", "assessment")
            .order_by("-aware_at"))


def report_for(user, trial: Trial, report_id: int) -> SAEReport:
    """One report, or 404 (also for a report of another site: its existence does not leak)."""
    report = reports_for(user, trial).filter(pk=report_id).first()
    if report is None:
        raise Http404("No such SAE report.")
    return report


def assessment_of(report: SAEReport) -> SponsorAssessment | None:
    try:
        return report.assessment
    except SponsorAssessment.DoesNotExist:
        return None


@dataclass(frozen=True)
class Clock:
    """Where one report stands on the site's 24-hour clock."""

    report: SAEReport
    due_at: dt.datetime
    left: dt.timedelta | None      # before the deadline, for a report not yet signed
    late_by: dt.timedelta | None   # after it (signed late, or still unsigned)

    @property
    def hours_left(self) -> float | None:
        return None if self.left is None else round(self.left.total_seconds() / 3600, 1)

    @property
    def hours_late(self) -> float | None:
        return None if self.late_by is None else round(self.late_by.total_seconds() / 3600, 1)


def clock(report: SAEReport, now: dt.datetime | None = None) -> Clock:
    now = now or timezone.now()
    due = report.aware_at + SITE_DEADLINE
    left = due - now if report.reported_at is None and now < due else None
    return Clock(report, due, left, report.late_by(now))


@dataclass(frozen=True)
class Worklist:
    pending: list[Clock]        # not yet reported, on time so far (soonest first)
    overdue: list[Clock]        # not yet reported, past the deadline
    late: list[Clock]           # reported after the deadline, with how late
    to_assess: list[SAEReport]  # reported, not yet assessed by the sponsor
    susars: list[SAEReport]     # SUSARs, with their 7/15-day deadline


def worklist(user, trial: Trial) -> Worklist:
    now = timezone.now()
    reports = list(reports_for(user, trial))
    clocks = [clock(r, now) for r in reports]
    unsigned = sorted((c for c in clocks if c.report.reported_at is None), key=lambda c: c.due_at)
    return Worklist(
        pending=[c for c in unsigned if c.late_by is None],
        overdue=[c for c in unsigned if c.late_by is not None],
        late=[c for c in clocks if c.report.reported_at is not None and c.late_by is not None],
        to_assess=[r for r in reports if r.reported_at and assessment_of(r) is None],
        susars=[r for r in reports if (a := assessment_of(r)) is not None and a.susar])


def counts(user, trial: Trial) -> dict[str, int] | None:
    """For the home page: reports waiting and overdue, or None when the user sees none."""
    if not policy.has_perm(user, Perm.VIEW_SAFETY, trial):
        return None
    now = timezone.now()
    waiting = reports_for(user, trial).filter(reported_at__isnull=True)
    return {"pending": waiting.filter(aware_at__gt=now - SITE_DEADLINE).count(),
            "overdue": waiting.filter(aware_at__lte=now - SITE_DEADLINE).count(),
            "to_assess": (reports_for(user, trial).filter(reported_at__isnull=False,
                                                          assessment__isnull=True).count()
                          if policy.has_perm(user, Perm.ASSESS_SAFETY, trial) else None)}


def signed_versions(report: SAEReport):
    return report.versions.filter(status=VersionStatus.SIGNED).order_by("number")


def unreported_of(record) -> list[SAEReport]:
    """The reports ``record`` opened whose initial version is not signed yet (the CRF page says
    so after a save)."""
    return list(SAEReport.objects.filter(source_record=record, reported_at__isnull=True)
                .order_by("pk"))
