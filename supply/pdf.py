"""The site's kit accountability log as a PDF: what a monitor reconciles against the pharmacy's
own log, kit by kit, event by event (``selectors.ACCOUNTABILITY_COLUMNS``). Kit numbers only,
never an arm: the log is read by blinded monitors and site staff.
"""
from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterable
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.dates import shown_date, shown_instant

from trials.models import Site

from .models import KitEvent
from .selectors import accountability_row

# The columns' headings, in ``ACCOUNTABILITY_COLUMNS`` order, and their widths (mm, landscape).
_WIDTHS = [20, 18, 20, 28, 27, 28, 16, 22, 26, 47, 25]


def _headings() -> list[str]:
    return [_("Kit number"), _("Lot"), _("Expiry"), _("Event"), _("When"), _("By"),
            _("Shipment"), _("Participant"), _("Visit"), _("Reason"), _("Status now")]


def accountability_pdf(site: Site, events: Iterable[KitEvent], *, start: dt.date | None = None,
                       end: dt.date | None = None) -> bytes:
    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=7, leading=8.5)
    head = styles["BodyText"].clone("head", fontSize=7, leading=8.5, fontName="Helvetica-Bold")
    buffer = io.BytesIO()
    trial = site.trial
    title = _("Kit accountability log") + f" - {trial.short_title} - {site.code}"
    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=title, invariant=1,
                            pageCompression=0, leftMargin=10 * mm, rightMargin=10 * mm,
                            topMargin=12 * mm, bottomMargin=12 * mm)
    period = _("Period: %(start)s to %(end)s") % {
        "start": shown_date(start) if start else _("the first event"),
        "end": shown_date(end) if end else _("today")}
    printed = _("Printed on %(when)s") % {
        "when": shown_instant(timezone.now(), zone=False)}
    rows = [[Paragraph(escape(h), head) for h in _headings()]]
    rows += [[Paragraph(escape(cell), small) for cell in accountability_row(event)]
             for event in events]
    table = Table(rows, colWidths=[w * mm for w in _WIDTHS], repeatRows=1)
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef6")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story = [Paragraph(escape(title), styles["Title"]),
             Paragraph(escape(f"{site.name} · {period} · {printed}"), styles["BodyText"]),
             Spacer(1, 4 * mm)]
    if len(rows) == 1:
        story.append(Paragraph(escape(_("No kit event in this period.")), styles["BodyText"]))
    else:
        story.append(table)
    doc.build(story)
    return buffer.getvalue()
