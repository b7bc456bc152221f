"""The enrolment report as a PDF (reportlab): accrual against target with its projection
(accrual and rate alone when the protocol states no target), the CONSORT-style flow, arms (for readers who may see them), sites and data completeness.

Charts are drawn with ``reportlab.graphics``. Figures come from ``reports.enrolment``, which
already applies the reader's rights (sites, blinding): this module only lays them out, and never
prints a participant (counts only, so no direct or indirect identifier).
"""
from __future__ import annotations

import datetime as dt
from typing import BinaryIO, Callable
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import pgettext
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.charts.legends import Legend
from reportlab.graphics.charts.lineplots import LinePlot
from reportlab.graphics.shapes import Drawing, Line, Polygon, Rect, String
from reportlab.graphics.widgets.markers import makeMarker
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (KeepTogether, PageBreak, Paragraph, SimpleDocTemplate, Spacer,
                                Table, TableStyle)

from core.dates import shown_date, shown_instant

from crfs.metrics import OLD_DAYS, YOUNG_DAYS, QueryFigures, QueryMetrics, query_metrics
from safety.models import Criterion
from trials import policy

from .enrolment import EnrolmentFigures, enrolment_figures


Progress = Callable[[int, str], None]

WIDTH = A4[0] - 30 * mm           # the frame's width
BLUE = colors.HexColor("#1f5f99")
GREY = colors.HexColor("#8a94a0")
RED = colors.HexColor("#b03a2e")
LIGHT = colors.HexColor("#e5e9ee")
MAX_YEARS_AHEAD = 5               # the accrual chart stops there, whatever the projection


def _d(day: dt.date | None) -> str:
    return shown_date(day, empty="-")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "-"


# --------------------------------------------------------------------------- charts


def accrual_chart(f: EnrolmentFigures) -> Drawing:
    """Cumulative randomisations by month (solid), the target (dashed red) and the projection
    at the recent rate (dashed grey), on a time axis; without a target, the accrual alone."""
    width, height = WIDTH, 75 * mm
    drawing = Drawing(width, height)
    if not f.accrual:
        drawing.add(String(width / 2, height / 2, _("No participant randomised yet."),
                           textAnchor="middle", fontSize=10, fillColor=GREY))
        return drawing
    start = f.accrual[0][0]
    points = [(start.toordinal(), 0)]
    for month, _n, cumulative in f.accrual:
        next_month = (month.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
        points.append((min(next_month, f.as_of).toordinal(), cumulative))
    end = f.as_of
    horizon = f.as_of.replace(year=f.as_of.year + MAX_YEARS_AHEAD)
    projection = None
    if f.projected_completion:
        stop = min(f.projected_completion, horizon)
        share = (stop - f.as_of).days / max(1, (f.projected_completion - f.as_of).days)
        projection = [(f.as_of.toordinal(), f.randomised),
                      (stop.toordinal(), f.randomised + share * (f.target - f.randomised))]
        end = stop
    x0, x1 = start.toordinal(), max(end.toordinal(), start.toordinal() + 31)
    series = [points]
    if f.target:
        series.append([(x0, f.target), (x1, f.target)])
    if projection:
        series.append(projection)

    plot = LinePlot()
    plot.x, plot.y, plot.width, plot.height = 14 * mm, 12 * mm, width - 20 * mm, height - 18 * mm
    plot.data = series
    plot.lines[0].strokeColor, plot.lines[0].strokeWidth = BLUE, 1.8
    if f.target:
        plot.lines[1].strokeColor, plot.lines[1].strokeDashArray = RED, [4, 3]
    if projection:
        plot.lines[2].strokeColor, plot.lines[2].strokeDashArray = GREY, [2, 2]
        plot.lines[2].strokeWidth = 1.4
    if len(points) <= 40:
        plot.lines[0].symbol = makeMarker("FilledCircle", size=2.5)
    plot.xValueAxis.valueMin, plot.xValueAxis.valueMax = x0, x1
    step = max(31, (x1 - x0) // 8)
    plot.xValueAxis.valueSteps = list(range(x0, x1 + 1, step))
    plot.xValueAxis.labelTextFormat = lambda v: dt.date.fromordinal(int(v)).strftime("%Y-%m")
    plot.xValueAxis.labels.fontSize = 7
    plot.xValueAxis.labels.fontName = plot.yValueAxis.labels.fontName = "Helvetica"
    plot.yValueAxis.valueMin = 0
    plot.yValueAxis.valueMax = max(f.target or 0, f.randomised) * 1.08 or 1
    plot.yValueAxis.labels.fontSize = 7
    plot.yValueAxis.visibleGrid, plot.yValueAxis.gridStrokeColor = True, LIGHT
    drawing.add(plot)

    legend = Legend()
    legend.x, legend.y = 16 * mm, height - 2 * mm
    legend.fontSize, legend.columnMaximum, legend.dx, legend.dy = 7, 1, 10, 4
    legend.alignment, legend.fontName = "right", "Helvetica"
    legend.colorNamePairs = [(BLUE, _("randomised (cumulative)"))]
    if f.target:
        legend.colorNamePairs.append((RED, _("target: %(n)d") % {"n": f.target}))
    if projection:
        legend.colorNamePairs.append((GREY, _("projection at the recent rate")))
    drawing.add(legend)
    return drawing


def site_chart(f: EnrolmentFigures) -> Drawing:
    """Screened and randomised participants per site, side by side."""
    width, height = WIDTH, 70 * mm
    drawing = Drawing(width, height)
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 14 * mm, 16 * mm, width - 20 * mm, height - 24 * mm
    chart.data = [[s.screened for s in f.sites], [s.randomised for s in f.sites]]
    chart.categoryAxis.categoryNames = [s.code for s in f.sites]
    many = len(f.sites) > 12
    chart.categoryAxis.labels.angle = 90 if many else 0
    chart.categoryAxis.labels.boxAnchor = "e" if many else "n"
    chart.categoryAxis.labels.fontSize = 5 if len(f.sites) > 30 else 7
    chart.categoryAxis.labels.dy = -2
    chart.categoryAxis.labels.fontName = chart.valueAxis.labels.fontName = "Helvetica"
    chart.valueAxis.valueMin = 0
    chart.valueAxis.labels.fontSize = 7
    chart.valueAxis.visibleGrid, chart.valueAxis.gridStrokeColor = True, LIGHT
    chart.bars[0].fillColor, chart.bars[1].fillColor = colors.HexColor("#9cc3e6"), BLUE
    chart.bars.strokeColor = None
    chart.barSpacing, chart.groupSpacing = 0.5, 2 if many else 8
    drawing.add(chart)
    legend = Legend()
    legend.x, legend.y = 16 * mm, height - 2 * mm
    legend.fontSize, legend.columnMaximum, legend.dx, legend.dy = 7, 1, 8, 6
    legend.alignment, legend.fontName = "right", "Helvetica"
    legend.colorNamePairs = [(colors.HexColor("#9cc3e6"), _("screened")),
                             (BLUE, _("randomised"))]
    drawing.add(legend)
    return drawing


def _box(drawing: Drawing, x: float, y: float, w: float, h: float, lines: list[str],
         *, bold_first: bool = True, fill=colors.white) -> None:
    drawing.add(Rect(x, y, w, h, strokeColor=colors.black, strokeWidth=0.7, fillColor=fill))
    size = 7.5
    top = y + h / 2 + (len(lines) - 1) * (size + 1.5) / 2 - size / 3
    for i, text in enumerate(lines):
        drawing.add(String(x + w / 2, top - i * (size + 1.5), text, textAnchor="middle",
                           fontSize=size,
                           fontName="Helvetica-Bold" if bold_first and i == 0 else "Helvetica"))


def _arrow(drawing: Drawing, x1: float, y1: float, x2: float, y2: float) -> None:
    drawing.add(Line(x1, y1, x2, y2, strokeColor=colors.black, strokeWidth=0.8))
    if x1 == x2:        # vertical, pointing down
        drawing.add(Polygon([x2 - 2.5, y2 + 4.5, x2 + 2.5, y2 + 4.5, x2, y2],
                            fillColor=colors.black, strokeColor=None))
    else:               # horizontal, pointing right
        drawing.add(Polygon([x2 - 4.5, y2 + 2.5, x2 - 4.5, y2 - 2.5, x2, y2],
                            fillColor=colors.black, strokeColor=None))


def exclusion_lines(f: EnrolmentFigures) -> list[str]:
    """The "excluded" box's lines: the screening log by reason, then the screen failures and
    the criteria they did not meet (a participant may fail several)."""
    lines = [_("Excluded: n = %(n)d") % {"n": f.excluded}]
    if f.totals.logged:
        lines.append(_("screening log, not registered: %(n)d") % {"n": f.totals.logged})
        lines += [f"   {_cut(e.label, 48)}: {e.n}" for e in f.log_reasons]
    lines.append(_("screen failures: %(n)d") % {"n": f.totals.not_eligible})
    lines += [f"   {e.code} {_cut(e.label, 42)}: {e.n}" for e in f.failed_criteria]
    return lines


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n - 1] + "..."


def consort_chart(f: EnrolmentFigures) -> Drawing:
    """The CONSORT 2010 flow: assessed for eligibility (screening log and registered
    participants), excluded with reasons, eligible, randomised, then per arm (pooled for a
    blinded reader) the randomised in error and what became of the randomised participants."""
    t = f.totals
    excluded = exclusion_lines(f)
    line_h = 3.4 * mm
    main_w, box_h, side_w = 62 * mm, 12 * mm, 78 * mm
    excluded_h = max(box_h * 1.5, (len(excluded) + 1) * line_h)
    width, height = WIDTH, 108 * mm + excluded_h
    d = Drawing(width, height)
    cx = 40 * mm
    side_x = cx + main_w / 2 + 10 * mm
    top = height - box_h - 2 * mm
    levels = [top, top - excluded_h - 10 * mm, top - excluded_h - box_h - 20 * mm]
    _box(d, cx - main_w / 2, levels[0], main_w, box_h,
         [_("Assessed for eligibility"), _("n = %(n)d (screening log %(logged)d, registered "
                                           "%(screened)d)") % {
             "n": f.assessed, "logged": t.logged, "screened": t.screened}])
    _box(d, cx - main_w / 2, levels[1], main_w, box_h,
         [_("Eligible"), _("n = %(n)d") % {"n": t.eligible}])
    _box(d, cx - main_w / 2, levels[2], main_w, box_h,
         [pgettext("count column", "Randomised"), _("n = %(n)d") % {"n": t.randomised}],
         fill=colors.HexColor("#eef4fa"))
    for upper, lower in zip(levels, levels[1:]):
        _arrow(d, cx, upper, cx, lower + box_h)
    # Exclusions, to the right of the gaps between the main boxes.
    gap0 = (levels[0] + levels[1] + box_h) / 2
    _box(d, side_x, gap0 - excluded_h / 2, side_w, excluded_h, excluded, fill=LIGHT)
    _arrow(d, cx, gap0, side_x, gap0)
    gap1 = (levels[1] + levels[2] + box_h) / 2
    _box(d, side_x, gap1 - box_h / 2, side_w, box_h,
         [_("Not randomised (yet)"),
          _("eligible, awaiting randomisation: %(n)d") % {"n": f.eligible_not_randomised},
          _("eligibility not yet assessed: %(n)d") % {"n": f.awaiting}], fill=LIGHT)
    _arrow(d, cx, gap1, side_x, gap1)

    # One column per arm (one pooled column for a blinded reader).
    n = len(f.arms)
    col_w = min(70 * mm, (width - 4 * mm) / n - 4 * mm)
    total_w = n * col_w + (n - 1) * 4 * mm
    left = (width - total_w) / 2
    arm_y = levels[2] - box_h - 14 * mm
    outcome_h = 30 * mm  # nine lines of 9 points
    bar_y = levels[2] - 7 * mm
    centres = [left + i * (col_w + 4 * mm) + col_w / 2 for i in range(n)]
    d.add(Line(cx, levels[2], cx, bar_y, strokeColor=colors.black, strokeWidth=0.8))
    d.add(Line(min(centres + [cx]), bar_y, max(centres + [cx]), bar_y,
               strokeColor=colors.black, strokeWidth=0.8))
    for arm, centre in zip(f.arms, centres):
        x = centre - col_w / 2
        _arrow(d, centre, bar_y, centre, arm_y + box_h)
        title = (f"{arm.code}: {arm.label}" if arm.code else
                 _("All arms (pooled: closed)") if f.closed else _("All arms (pooled: blinded)"))
        if len(title) > 44:
            title = title[:43] + "..."
        _box(d, x, arm_y, col_w, box_h, [
            title, _("allocated: %(n)d") % {"n": arm.randomised},
            # Kept in the arm and in every count (intention to treat), flagged.
            _("of whom randomised in error: %(n)d") % {"n": arm.in_error}],
             fill=colors.HexColor("#eef4fa"))
        _arrow(d, centre, arm_y, centre, arm_y - 6 * mm)
        _box(d, x, arm_y - 6 * mm - outcome_h, col_w, outcome_h, [
            _("Status today"),
            _("on treatment: %(n)d") % {"n": arm.on_treatment},
            _("in follow-up: %(n)d") % {"n": arm.follow_up},
            _("completed: %(n)d") % {"n": arm.completed},
            _("withdrawn: %(n)d") % {"n": arm.withdrawn},
            _("died: %(n)d") % {"n": arm.dead},
            _("stopped study treatment only: %(n)d") % {"n": arm.withdrawals.get("treatment", 0)},
            _("stopped visits, vital status followed: %(n)d") % {
                "n": arm.withdrawals.get("visits", 0)},
            _("withdrew consent to data collection: %(n)d") % {
                "n": arm.withdrawals.get("consent", 0)},
        ])
    return d


# --------------------------------------------------------------------------- tables


HEAD = getSampleStyleSheet()["BodyText"].clone("head", fontName="Helvetica-Bold", fontSize=6.5,
                                               leading=8, alignment=2)


def _table(rows: list[list], widths: list[float], *, total: bool = False,
           numeric_from: int = 1) -> Table:
    head = [Paragraph(escape(str(text)), HEAD if i >= numeric_from else
                      HEAD.clone("head-left", alignment=0)) for i, text in enumerate(rows[0])]
    table = Table([head] + rows[1:], colWidths=widths, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 7.5),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("BACKGROUND", (0, 0), (-1, 0), LIGHT),
        ("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, 0), 0.6, colors.black),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f8fa")]),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if total:
        style += [("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 7.5),
                  ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black)]
    table.setStyle(TableStyle(style))
    return table


def _site_label(code: str, name: str) -> str:
    label = f"{code} - {name}" if name and name != code else code
    return label if len(label) <= 36 else label[:35] + "..."


def site_table(f: EnrolmentFigures) -> Table:
    head = [_("Site"), pgettext("count column", "Screened"), _("Not eligible"), _("Eligible"),
            pgettext("count column", "Randomised"), pgettext("count column", "Withdrawn"),
            _("First randomised"), _("Last randomised")]
    rows = [head]
    for s in f.sites + [f.totals]:
        rows.append([_site_label(s.code, s.name) if s.code else _("All sites"), s.screened,
                     s.not_eligible, s.eligible, s.randomised, s.withdrawn,
                     _d(s.first_randomised), _d(s.last_randomised)])
    w = WIDTH - 54 * mm
    return _table(rows, [54 * mm] + [w * x for x in (.13, .12, .12, .15, .14, .17, .17)],
                  total=True)


def completeness_table(f: EnrolmentFigures) -> Table:
    head = [_("Site"), _("CRFs expected"), _("entered"),
            # xgettext:no-python-format
            _("% entered"),
            _("complete"), _("Overdue visits"), _("Open queries"), _("Deviations")]
    rows = [head]
    for s in f.sites + [f.totals]:
        rows.append([_site_label(s.code, s.name) if s.code else _("All sites"), s.expected_crfs,
                     s.entered_crfs, _pct(s.entered_crfs, s.expected_crfs), s.complete_crfs,
                     s.overdue_visits, s.open_queries, s.deviations])
    w = WIDTH - 54 * mm
    return _table(rows, [54 * mm] + [w / 7] * 7, total=True)


def arm_table(f: EnrolmentFigures) -> Table:
    head = [_("Arm"), pgettext("count column", "Randomised"), _("On treatment"),
            _("In follow-up"), pgettext("count column", "Completed"),
            pgettext("count column", "Withdrawn"), _("Died")]
    rows = [head] + [[f"{a.code}: {a.label}"[:48], a.randomised, a.on_treatment, a.follow_up,
                      a.completed, a.withdrawn, a.dead] for a in f.arms]
    w = WIDTH - 70 * mm
    return _table(rows, [70 * mm] + [w / 6] * 6)


def safety_table(f: EnrolmentFigures) -> Table:
    """SAE counts by seriousness and causality: per arm only for a reader who may see arms."""
    criteria = [c for c in Criterion.values if any(r.criteria.get(c) for r in f.safety)]
    labels = dict(Criterion.choices)
    head = ([_("Arm")] if f.with_arms else [""]) + [
        _("SAE reports"), _("not yet signed")] + [str(labels[c]) for c in criteria] + [
        _("Related"), _("Not related"), "SUSAR"]
    rows = [head] + [[(f"{r.code}: {r.label}"[:40] if f.with_arms else _("All arms")),
                      r.reports, r.unsigned, *[r.criteria.get(c, 0) for c in criteria],
                      r.related, r.not_related, r.susars] for r in f.safety]
    w = WIDTH - 50 * mm
    return _table(rows, [50 * mm] + [w / (len(head) - 1)] * (len(head) - 1))


def _median_days(figure) -> str:
    return "-" if figure is None else f"{figure:.1f}"


def query_table(m: QueryMetrics, rows: list[QueryFigures], first: str) -> Table:
    """Data queries per site or per form: open by age, medians of the days to answer and to
    close (``crfs.metrics``), with the total of all."""
    head = [first, pgettext("count column", "Raised"), pgettext("count column", "Open"),
            _("Open under %(young)s days") % {"young": YOUNG_DAYS},
            _("Open %(young)s to %(old)s days") % {"young": YOUNG_DAYS, "old": OLD_DAYS},
            _("Open over %(old)s days") % {"old": OLD_DAYS},
            _("Median days to answer"), pgettext("count column", "Closed"),
            _("Median days to close")]
    table = [head]
    for r in rows + [m.total]:
        label = (_site_label(r.code, r.label) if r.code else _("All"))
        table.append([label, r.raised, r.open, r.young, r.middle, r.old,
                      _median_days(r.days_to_answer), r.closed, _median_days(r.days_to_close)])
    w = WIDTH - 54 * mm
    return _table(table, [54 * mm] + [w / 8] * 8, total=True)


# --------------------------------------------------------------------------- the document


def build_enrolment_report(trial, *, viewer, stream: BinaryIO,
                           progress: Progress | None = None,
                           today: dt.date | None = None) -> None:
    """Write the enrolment report of ``trial``, as ``viewer`` may see it, to ``stream``."""
    step = progress or (lambda percent, text: None)
    f = enrolment_figures(trial, viewer=viewer, today=today, progress=step)
    step(65, _("Drawing the charts"))
    styles = getSampleStyleSheet()
    h1, h2, body = styles["Title"], styles["Heading2"], styles["BodyText"]
    small = body.clone("small", fontSize=8, leading=10, textColor=colors.HexColor("#444444"))
    title = _("Enrolment report - %(trial)s") % {"trial": trial.short_title}
    built = timezone.localtime()
    footer = (_("%(trial)s - enrolment report as of %(day)s - built %(when)s for %(who)s - "
                "counts only, no participant identifiers") % {
        "trial": trial.short_title, "day": shown_date(f.as_of),
        "when": shown_instant(built),
        "who": viewer.get_full_name() or viewer.get_username()})

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(15 * mm, 8 * mm, footer[:160])
        canvas.drawRightString(A4[0] - 15 * mm, 8 * mm, _("page %(n)d") % {"n": doc.page})
        canvas.restoreState()

    story = [Paragraph(escape(title), h1),
             Paragraph(escape(trial.title), small)]
    if trial.registry_id:
        story.append(Paragraph(escape(_("Registry: %(id)s") % {"id": trial.registry_id}), small))
    story.append(Paragraph(escape(
        (_("Arms shown: the reader may see them.") if f.with_arms else
         _("Arms pooled: comparisons between the arms are closed to the reader of this report "
           "until the trial is locked and unblinded.") if f.closed else
         _("Arms pooled: the trial is blinded to the reader of this report."))
        + " " + _("Sites: %(n)d.") % {"n": len(f.sites)}), small))
    story.append(Spacer(1, 4 * mm))

    # Key figures and accrual.
    if not f.target:
        projection = _("none: no target enrolment to project to")
    elif f.target_reached_on:
        projection = _("target reached on %(day)s") % {"day": shown_date(f.target_reached_on)}
    elif f.projected_completion:
        projection = shown_date(f.projected_completion)
    else:
        projection = _("cannot be projected: no randomisation in the recent period")
    key = [[_("Target enrolment"),
            str(f.target) if f.target else _("not stated in the protocol")],
           [pgettext("count column", "Randomised"),
            f"{f.randomised} ({_pct(f.randomised, f.target)})" if f.target
            else str(f.randomised)],
           [_("Recent rate"), _("%(rate).1f per month (%(n)d randomised in the last %(days)d "
                                "days)") % {"rate": f.rate_per_month, "n": f.recent_randomised,
                                            "days": f.recent_days}],
           [_("Projected completion"), projection]]
    key_table = Table(key, colWidths=[45 * mm, WIDTH - 45 * mm])
    key_table.setStyle(TableStyle([("FONT", (0, 0), (-1, -1), "Helvetica", 9),
                                   ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 9),
                                   ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]))
    story += [Paragraph(escape(_("Accrual")), h2), key_table, Spacer(1, 3 * mm),
              accrual_chart(f)]
    if f.target:
        story.append(Paragraph(escape(_(
            "The projection assumes the accrual rate of the last %(days)d days goes on "
            "(randomisations in that period divided by its length in months of 30.44 "
            "days).") % {"days": f.recent_days}), small))
    else:
        story.append(Paragraph(escape(_(
            "The protocol does not state the planned enrolment: accrual and rate are shown "
            "without a target or a projection.")), small))
    story += [KeepTogether([
        Paragraph(escape(_("Participant flow")), h2), consort_chart(f),
        Paragraph(escape(_("Assessed: the screening log's entries (people assessed and not "
                           "registered) and the registered participants. Excluded: the log's "
                           "reasons for non-inclusion and the screen failures, by criterion not "
                           "met (a participant may fail several). Eligible: randomised, or "
                           "screened with a completed eligibility form. Randomised in error: "
                           "kept in their arm (intention to treat). Status as recorded "
                           "today.")), small)])]
    step(75, _("Laying out the tables"))
    if f.with_arms:
        story += [KeepTogether([Paragraph(escape(_("By arm")), h2), arm_table(f)])]
    story += [KeepTogether([
        Paragraph(escape(_("Serious adverse events")), h2), safety_table(f),
        Paragraph(escape(_("By the latest signed version of each report (ICH E2A criteria); "
                           "related: the investigator or the sponsor found a study product "
                           "related; SUSAR: related and unexpected (the sponsor's "
                           "assessment).")), small)])]
    story += [PageBreak(), Paragraph(escape(_("By site")), h2), site_chart(f), Spacer(1, 2 * mm),
              site_table(f),
              Paragraph(escape(_("Data completeness")), h2),
              Paragraph(escape(_(
                  "Expected: the forms the schedule lists at visits that should have happened "
                  "(done, or overdue: window closed and not done). Entered: records at those "
                  "visits; complete: no longer a draft. Open queries: open or answered, awaiting "
                  "review. Deviations: not voided.")), small),
              Spacer(1, 2 * mm), completeness_table(f)]
    q = query_metrics(viewer, trial, perm=policy.Perm.VIEW_REPORTS)
    story += [KeepTogether([
        Paragraph(escape(_("Data queries")), h2),
        Paragraph(escape(_(
            "Open: open or answered, awaiting review, by age since raised. Time to answer: "
            "from raised to the site's first answer or correction; time to close: from raised "
            "to closed. Medians, in days.")), small),
        Spacer(1, 2 * mm), query_table(q, q.by_site, _("Site")), Spacer(1, 2 * mm),
        query_table(q, q.by_form, _("Form"))])]
    step(85, _("Writing the PDF"))
    doc = SimpleDocTemplate(stream, pagesize=A4, title=title, author="CTMS",
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=14 * mm,
                            bottomMargin=16 * mm)
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    step(98, _("Publishing"))
