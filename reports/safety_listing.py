"""The SAE line listing (CSV), one row per SAE report as it stands: its latest signed version,
the site's clock and the sponsor's assessment. Pseudonymised (study ID and site code) and
never an arm: it is read by blinded roles (the arm of a SUSAR is seen only on its page, by the
safety officer who unblinded it). Rows of the sites where the reader may see safety reports
(``safety.selectors.reports_for``). Cells are neutralised against CSV injection as in
``reports.exports``."""
from __future__ import annotations

import csv
import io

from django.utils import timezone

from patients.models import counted
from safety import selectors, services
from safety.models import SAEReport, VersionStatus
from trials.models import Trial

from .exports import neutralise


def header(trial: Trial) -> list[str]:
    codes = [p["code"] for p in services.products(trial)]
    return (["report", "study_id", "site", "term", "opened_from", "aware_at", "due_at",
             "reported_at", "hours_late", "versions_signed", "criteria", "onset_date",
             "outcome", "death_date"]
            + [f"investigator_causality_{c}" for c in codes]
            + [f"sponsor_causality_{c}" for c in codes]
            + [f"expectedness_{c}" for c in codes]
            + ["susar", "susar_due"])


def _iso(instant) -> str:
    return timezone.localtime(instant).isoformat(timespec="minutes") if instant else ""


def row(report: SAEReport, codes: list[str]) -> list[str]:
    signed = [v for v in report.versions.all() if v.status == VersionStatus.SIGNED]
    latest = signed[-1] if signed else None
    assessment = selectors.assessment_of(report)
    late = report.late_by()
    cells = [report.number, report.participant.study_id, report.participant.site.code,
             report.term, report.source_record.crf_code if report.source_record_id else "",
             _iso(report.aware_at), _iso(report.due_at), _iso(report.reported_at),
             f"{late.total_seconds() / 3600:.1f}" if late else "", str(len(signed))]
    if latest is None:
        cells += [""] * 4 + [""] * len(codes)
    else:
        cells += ["|".join(latest.criteria), latest.onset_date.isoformat()
                  if latest.onset_date else "", latest.outcome,
                  latest.death_date.isoformat() if latest.death_date else ""]
        cells += [latest.causality.get(c, "") for c in codes]
    if assessment is None:
        cells += [""] * (2 * len(codes) + 2)
    else:
        cells += [assessment.causality.get(c, "") for c in codes]
        cells += [assessment.expectedness.get(c, "") for c in codes]
        cells += ["1" if assessment.susar else "0",
                  assessment.susar_due.isoformat() if assessment.susar_due else ""]
    return [neutralise(str(c)) for c in cells]


def rows(user, trial: Trial) -> list[list[str]]:
    codes = [p["code"] for p in services.products(trial)]
    reports = (selectors.reports_for(user, trial).filter(counted("participant__"))
               .select_related("source_record")
               .prefetch_related("versions").order_by("pk"))
    return [row(r, codes) for r in reports]


def listing_csv(user, trial: Trial) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header(trial))
    writer.writerows(rows(user, trial))
    return buffer.getvalue()
