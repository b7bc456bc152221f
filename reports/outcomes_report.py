"""The outcomes report for the statistician: Kaplan-Meier plots with numbers at risk, the endpoint
table (medians, landmark rates with their exact interval), the stratified log-rank test and the
Cox hazard ratio with each endpoint's method sentences, adverse events by worst CTCAE grade, the
Clavien-Dindo distribution, and the methods.

A plain function writing a PDF to a stream, so that a page (synchronously) or a report queue
(Celery, with ``progress``) can call it. It shows exactly what ``outcomes.analysis`` gives the
reader: arm-level results only when the reader may see arms, pooled figures otherwise. No
direct identifiers: the report has counts and estimates, no study IDs. Printed in the reader's
active language.
"""
from __future__ import annotations

from typing import BinaryIO, Callable
from xml.sax.saxutils import escape

from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table,
                                TableStyle)

from core.dates import shown_instant

from outcomes import analysis, plots
from trials import policy
from trials.models import Trial

Progress = Callable[[int, str], None]

GRID = TableStyle([
    ("FONTSIZE", (0, 0), (-1, -1), 7.5),
    ("LEADING", (0, 0), (-1, -1), 9),
    ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#b8c0c8")),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eef2f6")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
])


def build_outcomes_report(trial: Trial, *, viewer, stream: BinaryIO,
                          progress: Progress | None = None) -> None:
    """Write the outcomes report of ``trial``, as ``viewer`` may see it, to ``stream``."""
    if not policy.has_perm(viewer, policy.Perm.VIEW_REPORTS, trial):
        raise PermissionDenied(_("You may not read this trial's reports."))
    tell = progress or (lambda percent, step: None)
    tell(5, _("Deriving the endpoints"))
    view = analysis.outcomes_for(viewer, trial)
    tell(50, _("Drawing the survival curves"))

    styles = getSampleStyleSheet()
    body = styles["BodyText"].clone("body", fontSize=9, leading=12)
    cell = styles["BodyText"].clone("cell", fontSize=7.5, leading=9)
    h1, h2 = styles["Heading1"], styles["Heading2"].clone("h2", fontSize=12, spaceBefore=8)
    width = A4[0] - 36 * mm

    def p(text: str, style=cell) -> Paragraph:
        return Paragraph(escape(str(text)), style)

    when = timezone.localtime(view.generated_at)
    reader = viewer.get_full_name() or viewer.get_username()
    story = [
        Paragraph(escape(_("Outcomes report — %(trial)s") % {"trial": trial.short_title}), h1),
        p(trial.title, body),
        p(_("Protocol version %(label)s (#%(number)s). %(registry)s") % {
            "label": trial.current_version.label, "number": trial.current_version.number,
            "registry": trial.registry_id or ""}, body),
        p(_("Produced %(when)s for %(reader)s. %(n)s randomised participants analysed "
            "(intention to treat). No direct identifiers.") % {
            "when": shown_instant(when), "reader": reader, "n": view.randomised}, body),
        p(_("Results per arm.") if view.arm_level else
          _("Pooled figures only: comparisons between the arms are closed reports, for the data "
            "monitoring committee and the unblinded statistician, until the trial is locked and "
            "unblinded.") if view.closed else
          _("Pooled figures only: the arms are concealed from the reader in this blinded "
            "trial."), body),
    ]
    for index, section in enumerate(view.sections):
        a = section.analysis
        title = a.label + (" — " + _("primary endpoint") if a.primary else "")
        at_risk = [[p(_("Number at risk"))] + [p(f"{t:g}") for t in a.at_risk_times]]
        at_risk += [[p(g.label)] + [p(n) for n in g.at_risk] for g in a.groups]
        first = 38 * mm
        at_risk_table = Table(at_risk, colWidths=[first] + [(width - first) / len(a.at_risk_times)]
                              * len(a.at_risk_times))
        at_risk_table.setStyle(GRID)
        header = [p(_("Group")), p("n"), p(_("Events")), p(_("Median, months (95 % CI)"))]
        for t in section.landmark_titles:
            header += [p(t), p(_("Kaplan-Meier estimate"))]
        rows = [header]
        for row in section.rows:
            rows.append([p(row.label), p(row.n), p(row.events), p(row.median)]
                        + [p(v) for pair in row.landmarks for v in pair])
        fixed = [38 * mm, 10 * mm, 13 * mm, 32 * mm]
        rest = len(header) - len(fixed)
        widths = fixed + ([(width - sum(fixed)) / rest] * rest if rest else [])
        table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
        table.setStyle(GRID)
        block = [Paragraph(escape(title), h2),
                 plots.km_drawing(a, width=width, height=70 * mm), Spacer(1, 2 * mm),
                 at_risk_table, Spacer(1, 3 * mm), table]
        if section.logrank:
            block += [Spacer(1, 1 * mm), p(section.logrank, body)]
        block += [p(ratio, body) for ratio in section.hazard_ratios]
        block += [p(sentence, cell) for sentence in section.methods]
        story.append(KeepTogether(block))
        tell(50 + 30 * (index + 1) // max(1, len(view.sections)), _("Endpoint tables"))

    if view.interims:
        rows = [[p(_("Interim analysis")), p(_("Information")), p(_("Test statistic (log-rank)")),
                 p(_("Efficacy boundary")), p(_("Result"))]]
        rows += [[p(f"{r.look.label} ({r.look.endpoint})"), p(r.information), p(r.statistic),
                  p(r.boundary), p(r.verdict)] for r in view.interims]
        table = Table(rows, colWidths=[width * f for f in (0.18, 0.26, 0.16, 0.26, 0.14)])
        table.setStyle(GRID)
        story.append(KeepTogether(
            [Paragraph(escape(_("Interim analyses (closed report)")), h2), table]
            + [p(f"{r.look.code}: {r.look.note}", body) for r in view.interims if r.look.note]))

    for table_view in view.safety:
        rows = [[p("")] + [p(c) for c in table_view.columns]]
        rows += [[p(label)] + [p(c) for c in cells] for label, cells in table_view.rows]
        first = 55 * mm
        table = Table(rows, colWidths=[first] + [(width - first) / len(table_view.columns)]
                      * len(table_view.columns))
        table.setStyle(GRID)
        story.append(KeepTogether([Paragraph(escape(table_view.title), h2), table,
                                   Spacer(1, 1 * mm), p(table_view.note, body)]))
    tell(90, _("Methods"))
    story += [Paragraph(escape(_("Methods")), h2), p(view.methods, body)]

    footer = _("%(trial)s — outcomes report — %(when)s — %(scope)s") % {
        "trial": trial.short_title, "when": shown_instant(when, zone=False),
        "scope": (_("per arm") if view.arm_level else _("pooled (closed)") if view.closed
                  else _("pooled (blinded)"))}

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#5b6470"))
        canvas.drawString(18 * mm, 10 * mm, footer)
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm,
                               _("page %(n)s") % {"n": canvas.getPageNumber()})
        canvas.restoreState()

    doc = SimpleDocTemplate(stream, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=18 * mm,
                            title=_("Outcomes report — %(trial)s") % {"trial": trial.short_title},
                            author=reader)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    tell(100, _("Done"))
