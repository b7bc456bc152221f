"""Monitoring visits and their report: for one site and a date range, what was verified against
the source (and which marks a later change removed), the queries raised, and the monitor's
findings. A PDF the monitor files and the sponsor reads (docs/monitoring.md). No arm: the
report reads CRF data and marks only."""
from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core import audit, limits
from core.dates import shown_date, shown_instant
from trials import policy
from trials.models import Site
from trials.policy import Perm

from . import trail
from .models import DataQuery, MonitoringVisit, SourceVerification


def record_visit(site: Site, *, by, visited_on: dt.date, findings: str) -> MonitoringVisit:
    """The monitor records a visit to ``site`` and its findings."""
    limits.FINDINGS.check(findings, field="findings")
    if not policy.has_perm(by, Perm.VERIFY_SOURCE, site.trial, site):
        raise PermissionDenied
    errors = {}
    if visited_on > timezone.localdate():
        errors["visited_on"] = _("The visit date cannot be in the future.")
    if not findings.strip():
        errors["findings"] = _("Write the findings (“none” if there are none).")
    if errors:
        raise ValidationError(errors)
    visit = MonitoringVisit(trial=site.trial, site=site, visited_on=visited_on, monitor=by,
                            findings=findings.strip())
    visit._history_user = by
    visit.save()
    audit.record("monitoring.visit_recorded",
                 f"Monitoring visit to {site.code} on {visited_on:%Y-%m-%d} recorded.",
                 actor=by, trial=site.trial, obj=visit)
    return visit


def may_read(user, site: Site) -> bool:
    return (policy.has_perm(user, Perm.VERIFY_SOURCE, site.trial, site)
            or policy.has_perm(user, Perm.VIEW_REPORTS, site.trial, site))


@dataclass
class Report:
    site: Site
    start: dt.date
    end: dt.date
    visits: list
    verified: list
    removed: list
    queries: list


def report(site: Site, start: dt.date, end: dt.date) -> Report:
    """What happened at ``site`` between ``start`` and ``end`` (inclusive): five queries."""
    if end < start:
        raise ValidationError({"end": _("The end of the period is before its start.")})
    marks = (SourceVerification.objects.filter(record__participant__site=site)
             .select_related("record__participant", "record__visit", "verified_by",
                             "voided_by")
             .order_by("record__participant__study_id", "record__crf_code", "field_path",
                       "verified_at"))
    return Report(
        site=site, start=start, end=end,
        visits=list(MonitoringVisit.objects.filter(site=site, visited_on__range=(start, end))
                    .select_related("monitor").order_by("visited_on", "pk")),
        verified=list(marks.filter(verified_at__date__range=(start, end))),
        removed=list(marks.filter(voided_at__date__range=(start, end))),
        queries=list(DataQuery.objects.filter(record__participant__site=site,
                                              raised_at__date__range=(start, end))
                     .select_related("record__participant", "record__visit", "raised_by")
                     .prefetch_related("messages")
                     .order_by("raised_at", "pk")))


def _who(user) -> str:
    return (user.get_full_name() or user.get_username()) if user else _("the system")


def _where(record) -> str:
    visit = f" — {record.visit.label}" if record.visit_id else ""
    return f"{record.participant.study_id}{visit}"


def pdf(data: Report) -> bytes:
    buffer = io.BytesIO()
    site = data.site
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=15 * mm,
                            rightMargin=15 * mm, topMargin=15 * mm, bottomMargin=15 * mm,
                            title=_("Monitoring visit report %(site)s") % {"site": site.code},
                            invariant=1, pageCompression=0)
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)

    def table(header, rows):
        if not rows:
            return Paragraph(_("None."), styles["BodyText"])
        body = [[Paragraph(str(c), small) for c in row] for row in [header] + rows]
        t = Table(body, repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return t

    story = [
        Paragraph(_("Monitoring visit report"), styles["Title"]),
        Paragraph(f"{site.trial.short_title} — {site.code} {site.name}", styles["Heading2"]),
        Paragraph(_("From %(start)s to %(end)s. Printed %(now)s.") % {
            "start": shown_date(data.start), "end": shown_date(data.end),
            "now": shown_instant(timezone.now())}, styles["BodyText"]),
        Spacer(1, 4 * mm),
        Paragraph(_("Visits and findings"), styles["Heading3"]),
        table([_("Date"), _("Monitor"), _("Findings")],
              [[shown_date(v.visited_on), _who(v.monitor), v.findings] for v in data.visits]),
        Paragraph(_("Verified against the source"), styles["Heading3"]),
        table([_("Participant — visit"), _("Form"), _("Answer"), _("By"), _("On"),
               _("Still in force")],
              [[_where(m.record), m.record.definition["label"],
                trail.path_label(m.record.definition, m.field_path) if m.field_path
                else _("whole form"), _who(m.verified_by),
                shown_date(timezone.localtime(m.verified_at).date()),
                _("yes") if m.voided_at is None else _("no")] for m in data.verified]),
        Paragraph(_("Verification removed (the verified data changed)"), styles["Heading3"]),
        table([_("Participant — visit"), _("Form"), _("Answer"), _("On"), _("Why")],
              [[_where(m.record), m.record.definition["label"],
                trail.path_label(m.record.definition, m.field_path) if m.field_path
                else _("whole form"), shown_date(timezone.localtime(m.voided_at).date()),
                m.void_reason] for m in data.removed]),
        Paragraph(_("Queries raised"), styles["Heading3"]),
        table([_("Participant — visit"), _("Form"), _("Answer"), _("Raised by"), _("On"),
               _("Status"), _("Question")],
              [[_where(q.record), q.record.definition["label"],
                trail.path_label(q.record.definition, q.field_path), _who(q.raised_by),
                shown_date(timezone.localtime(q.raised_at).date()), q.get_status_display(),
                next((m.text for m in q.messages.all()), "")] for q in data.queries]),
    ]
    doc.build(story)
    return buffer.getvalue()
