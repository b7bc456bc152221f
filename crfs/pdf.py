"""A CRF on paper: its answers, status, signatures and open queries.

21 CFR 11.50 asks that a signed record's printout show the signer's printed name, the date and
time of signing and its meaning. Each page carries them in its footer, with the page number, so
no page of a signed CRF can be read apart from its signature; a signature voided by a change, or
no longer matching the data, is printed as such. Built from the page's selector, so it shows
what the reader may see (CRF data hold no arm). Printed in the reader's language.
"""
from __future__ import annotations

import datetime as dt
import io
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _, gettext_lazy
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.dates import shown_instant

from . import selectors, trail


STATES = {"valid": gettext_lazy("valid"), "voided": gettext_lazy("VOIDED"),
          "invalid": gettext_lazy("NOT VALID: the data changed after signing")}


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


def _when(instant) -> str:
    return f"{shown_instant(instant)} ({instant.astimezone(dt.timezone.utc):%H:%M} UTC)"


def signature_line(view: selectors.SignatureView) -> str:
    """The manifestation of one signature: printed name, date and time, meaning, and state."""
    s = view.signature
    line = (f"{s.printed_name}, {_when(s.signed_at)}: {s.get_meaning_display()} "
            f"[{STATES[view.state]}]")
    if s.voided_at:
        line += " " + _("voided %(when)s: %(reason)s") % {"when": _when(s.voided_at),
                                                           "reason": s.void_reason}
    return line


def crf_pdf(page: selectors.CRFPage, *, trial, printed_by) -> bytes:
    record, participant, definition = page.record, page.participant, page.definition
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["BodyText"].clone("small", fontSize=8, leading=10)
    buffer = io.BytesIO()
    title = f"{definition['label']} - {participant.study_id}"
    if page.visit is not None:
        title += f" - {page.visit.title}"
    footer = [f"{participant.study_id} - {definition['label']} - "
              + _("status: %(status)s") % {"status": record.get_status_display()}]
    footer += [_("Signed by %(signature)s") % {"signature": signature_line(s)}
               for s in page.signatures]
    if not page.signatures:
        footer.append(_("Not signed."))
    printed = _("Printed %(when)s by %(who)s") % {
        "when": shown_instant(timezone.now()), "who": _name(printed_by)}

    def on_page(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        y = 8 * mm + 3.2 * mm * len(footer)
        for line in footer:
            canvas.drawString(15 * mm, y, line[:170])
            y -= 3.2 * mm
        canvas.drawString(15 * mm, y, f"{printed} - " + _("page %(n)d") % {"n": doc.page})
        canvas.restoreState()

    # Uncompressed, as the randomisation certificate: small, and its text stays searchable.
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=title, invariant=1, pageCompression=0,
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=(14 + 3.2 * len(footer)) * mm)
    version = record.protocol_version.label
    facts = [f"{trial.short_title}" + (f" ({trial.registry_id})" if trial.registry_id else "")
             + " - " + _("site %(site)s - protocol version %(version)s") % {
                 "site": participant.site.code, "version": version},
             _("Status: %(status)s. Last saved %(when)s by %(who)s.") % {
                 "status": record.get_status_display(), "when": _when(record.updated_at),
                 "who": _name(record.updated_by)}]
    if record.locked_at:
        facts.append(_("Locked %(when)s by %(who)s.") % {"when": _when(record.locked_at),
                                                         "who": _name(record.locked_by)})
    story = [Paragraph(escape(title), styles["Title"])]
    story += [Paragraph(escape(text), body) for text in facts]
    story += [Spacer(1, 4 * mm), Paragraph(escape(_("Signatures")), styles["Heading2"])]
    for view in page.signatures:
        story.append(Paragraph(escape(signature_line(view)), body))
        story.append(Paragraph(escape(_("SHA-256 of the content signed: %(digest)s") % {
            "digest": view.signature.digest}), small))
    if not page.signatures:
        story.append(Paragraph(escape(_("Not signed.")), body))
    story.append(Paragraph(escape(_("SHA-256 of the content printed: %(digest)s") % {
        "digest": trail.content_digest(record)}), small))
    story.append(Paragraph(escape(_("Answers")), styles["Heading2"]))
    rows = [[Paragraph(escape(a.label), small if a.level else body),
             Paragraph(escape(a.value), small if a.level else body)]
            for a in selectors.answers(definition, record.data)]
    table = Table(rows, colWidths=[80 * mm, 100 * mm])
    table.setStyle(TableStyle([("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.lightgrey),
                               ("VALIGN", (0, 0), (-1, -1), "TOP"),
                               ("LEFTPADDING", (0, 0), (0, -1), 6)]))
    story.append(table)
    if page.unresolved:
        story.append(Paragraph(escape(_("Open queries")), styles["Heading2"]))
        for q in page.unresolved:
            question = q.thread[0].text if q.thread else ""
            story.append(Paragraph(escape(f"#{q.pk} {q.field_label} ({q.get_status_display()}): "
                                          f"{question}"), body))
    doc.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return buffer.getvalue()
