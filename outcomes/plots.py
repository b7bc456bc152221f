"""Kaplan-Meier curves drawn from an ``EndpointAnalysis``: inline SVG for the page, a reportlab
``Drawing`` for the report. Both draw the same thing - step curves per group, a tick at each
censored observation, months on the x axis at the number-at-risk times, survival 0-100 % - so
the page and the paper agree. No JavaScript, no image files, nothing from outside.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from .survival import EndpointAnalysis, GroupResult


# Two arms in colours that stay distinct in grey print and for red-green colour blindness;
# pooled curves in near-black.
COLOURS = ["#0b5cad", "#d35400", "#1f7a3a", "#7d3c98"]
POOLED = "#1b1f24"


def colour(analysis: EndpointAnalysis, index: int) -> str:
    return POOLED if analysis.pooled else COLOURS[index % len(COLOURS)]


def _path(group: GroupResult, horizon: float) -> list[tuple[float, float]]:
    """The step curve as points: horizontal to each step time, then down, to the last time."""
    points = [(0.0, 1.0)]
    for t, s in group.steps[1:]:
        points += [(t, points[-1][1]), (t, s)]
    last = max([t for t, _ in group.steps] + [t for t, _ in group.censored])
    points.append((min(last, horizon), points[-1][1]))
    return points


def km_svg(analysis: EndpointAnalysis, *, width: int = 680, height: int = 300) -> SafeString:
    legend = 16 * len(analysis.groups)
    height += legend
    left, right, top, bottom = 48, 16, 12, 36 + legend
    plot_w, plot_h = width - left - right, height - top - bottom
    horizon = float(analysis.horizon)

    def x(t: float) -> float:
        return left + plot_w * min(t, horizon) / horizon

    def y(s: float) -> float:
        return top + plot_h * (1 - s)

    title = escape(_("%(endpoint)s: Kaplan–Meier") % {"endpoint": analysis.label})
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{title}" class="km-plot">', f"<title>{title}</title>"]
    for s in (0, 0.25, 0.5, 0.75, 1):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(s):.1f}" y2="{y(s):.1f}" '
                     f'stroke="#d8dde3" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{y(s) + 4:.1f}" text-anchor="end" '
                     f'font-size="11" fill="#5b6470">{int(s * 100)} %</text>')
    for t in analysis.at_risk_times:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + plot_h}" '
                     f'y2="{top + plot_h + 4}" stroke="#5b6470"/>')
        parts.append(f'<text x="{x(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                     f'font-size="11" fill="#5b6470">{t:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h + 30}" '
                 f'text-anchor="middle" font-size="11" fill="#5b6470">'
                 f'{escape(str(_months_label()))}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
                 f'stroke="#5b6470" stroke-width="1"/>')
    for index, group in enumerate(analysis.groups):
        if group.n == 0:
            continue
        stroke = colour(analysis, index)
        points = " ".join(f"{x(t):.1f},{y(s):.1f}" for t, s in _path(group, horizon))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{stroke}" '
                     f'stroke-width="2"><title>{escape(group.label)}</title></polyline>')
        for t, s in group.censored:
            if t <= horizon:
                parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{y(s) - 4:.1f}" '
                             f'y2="{y(s) + 4:.1f}" stroke="{stroke}" stroke-width="1.5"/>')
    for index, group in enumerate(analysis.groups):  # legend, under the axis
        ly = top + plot_h + 48 + 16 * index
        parts.append(f'<line x1="{left}" x2="{left + 24}" y1="{ly - 4}" y2="{ly - 4}" '
                     f'stroke="{colour(analysis, index)}" stroke-width="2"/>')
        parts.append(f'<text x="{left + 30}" y="{ly}" font-size="11" fill="#1b1f24">'
                     f'{escape(group.label)} (n={group.n})</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _months_label():
    from django.utils.translation import gettext as _

    return _("Months since randomisation")


def km_drawing(analysis: EndpointAnalysis, *, width: float, height: float):
    """The same plot for reportlab (points), with its legend under the axis."""
    from reportlab.graphics.shapes import Drawing, Line, PolyLine, Rect, String
    from reportlab.lib import colors

    legend = 10 * len(analysis.groups)
    left, right, top, bottom = 36, 8, 8, 28 + legend
    plot_w, plot_h = width - left - right, height - top - bottom
    horizon = float(analysis.horizon)
    grey = colors.HexColor("#5b6470")

    def x(t: float) -> float:
        return left + plot_w * min(t, horizon) / horizon

    def y(s: float) -> float:  # reportlab's origin is at the bottom
        return bottom + plot_h * s

    d = Drawing(width, height)
    for s in (0, 0.25, 0.5, 0.75, 1):
        d.add(Line(left, y(s), left + plot_w, y(s), strokeColor=colors.HexColor("#d8dde3"),
                   strokeWidth=0.5))
        d.add(String(left - 4, y(s) - 3, f"{int(s * 100)} %", fontSize=7, fillColor=grey,
                     textAnchor="end", fontName="Helvetica"))
    for t in analysis.at_risk_times:
        d.add(Line(x(t), bottom, x(t), bottom - 3, strokeColor=grey, strokeWidth=0.5))
        d.add(String(x(t), bottom - 11, f"{t:g}", fontSize=7, fillColor=grey,
                     textAnchor="middle", fontName="Helvetica"))
    d.add(String(left + plot_w / 2, bottom - 21, str(_months_label()), fontSize=7,
                 fillColor=grey, textAnchor="middle", fontName="Helvetica"))
    d.add(Rect(left, bottom, plot_w, plot_h, fillColor=None, strokeColor=grey,
               strokeWidth=0.5))
    for index, group in enumerate(analysis.groups):
        if group.n == 0:
            continue
        stroke = colors.HexColor(colour(analysis, index))
        points = []
        for t, s in _path(group, horizon):
            points += [x(t), y(s)]
        d.add(PolyLine(points, strokeColor=stroke, strokeWidth=1.4))
        for t, s in group.censored:
            if t <= horizon:
                d.add(Line(x(t), y(s) - 3, x(t), y(s) + 3, strokeColor=stroke, strokeWidth=1))
    for index, group in enumerate(analysis.groups):  # legend, under the axis
        ly = legend - 8 - 10 * index
        d.add(Line(left, ly + 2, left + 14, ly + 2,
                   strokeColor=colors.HexColor(colour(analysis, index)), strokeWidth=1.4))
        d.add(String(left + 18, ly, f"{group.label} (n={group.n})", fontSize=7,
                     fontName="Helvetica"))
    return d
