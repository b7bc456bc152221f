"""A CIOMS-I style PDF of one signed SAE report version.

The CIOMS I form's sections (I reaction information, II suspect drug(s), III concomitant drugs
and history, IV manufacturer/sponsor information) with the form's item numbers, filled from the
version as signed: the signer's printed name, the instant and the SHA-256 of what was signed.
The suspect product is named as the protocol names it: in a blinded trial, the blinded study
product, never the arm (the PDF is read by the study team too; the safety officer's unblinded
expedited report is made from the report page, see docs/safety.md).
"""
from __future__ import annotations

import io
from xml.sax.saxutils import escape

from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from core.dates import shown_date, shown_instant

from .models import Causality, Criterion, Outcome, SAEVersion
from .services import products


def _rows(table_rows, styles) -> Table:
    body = styles["BodyText"]
    table = Table([[Paragraph(escape(str(k)), body), Paragraph(escape(str(v or "—")), body)]
                   for k, v in table_rows], colWidths=[65 * mm, 115 * mm])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return table


def cioms_pdf(version: SAEVersion) -> bytes:
    report = version.report
    participant, trial = report.participant, report.trial
    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    title = f"CIOMS I - {report.number} - {version.label}"
    doc = SimpleDocTemplate(buffer, pagesize=A4, title=title, invariant=1, pageCompression=0,
                            leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                            bottomMargin=15 * mm)
    criteria = dict(Criterion.choices)
    ticked = [str(criteria[c]) for c in version.criteria if c in criteria]
    causality = dict(Causality.choices)
    story = [
        Paragraph(escape(_("Suspect adverse reaction report (CIOMS I)")), styles["Title"]),
        Paragraph(escape(f"{trial.short_title} - {report.number} - {version.label}"),
                  styles["Heading2"]),
        Paragraph(escape(_("I. Reaction information")), styles["Heading3"]),
        _rows([
            (_("1. Patient (study ID)"), participant.study_id),
            (_("1a. Site"), f"{participant.site.code} - {participant.site.name}"),
            (_("4-6. Reaction onset"), shown_date(version.onset_date)),
            (_("7 + 13. Describe reaction(s)"), report.term),
            (_("8-12. Seriousness criteria"), "; ".join(ticked)),
            (_("Date of death"), shown_date(version.death_date)),
            (_("Outcome"), dict(Outcome.choices).get(version.outcome, "")),
            (_("Site aware of the event on"),
             shown_instant(version.aware_at)),
        ], styles),
        Paragraph(escape(_("II. Suspect drug(s) information")), styles["Heading3"]),
        _rows([(f"14. {p['label']}", _("Investigator's causality: %(c)s") % {
            "c": causality.get(version.causality.get(p["code"]), "—")}) for p in products(trial)],
            styles),
        Paragraph(escape(_("III. Narrative")), styles["Heading3"]),
        Paragraph(escape(version.narrative or "—").replace("\n", "<br/>"), styles["BodyText"]),
        Paragraph(escape(_("IV. Sponsor information")), styles["Heading3"]),
        _rows([
            (_("24a. Sponsor"), trial.definition.get("trial", {}).get("sponsor", "")),
            (_("24b. Report number"), report.number),
            (_("24c. Date received by the sponsor"),
             shown_instant(report.reported_at)),
            (_("24d. Report source"), _("Study") + (f" ({trial.registry_id})"
                                                    if trial.registry_id else "")),
            (_("25a. Report type"), _("Initial") if version.number == 0 else
             _("Follow-up %(n)d") % {"n": version.number}),
        ], styles),
        Spacer(1, 5 * mm),
        Paragraph(escape(_("Signed by %(name)s on %(when)s. SHA-256 of the content signed: "
                           "%(digest)s") % {
            "name": version.printed_name,
            "when": shown_instant(version.signed_at),
            "digest": version.digest}), styles["BodyText"]),
    ]
    doc.build(story)
    return buffer.getvalue()
