"""The randomisation certificate, a one-page PDF for the participant's file.

Printed in the language active for the request (the reader's): labels go through ``gettext``.
Dates stay in ISO format (2027-03-03 14:05 CET), unambiguous in every language.
"""
from __future__ import annotations

import io

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen import canvas

from core.dates import shown_instant
from supply.services import settings_of

from .selectors import AllocationView


def certificate(view: AllocationView) -> bytes:
    """Built from what the reader may see: ``view.treatment`` is a kit code for blinded roles."""
    allocation = view.allocation
    participant = allocation.participant
    trial = allocation.trial
    buffer = io.BytesIO()
    # Uncompressed: the certificate is tiny, and its text stays greppable for the blinding tests.
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=0, invariant=1)
    pdf.setTitle(_("Randomisation certificate %(id)s") % {"id": participant.study_id})
    width, height = A4
    y = height - 30 * mm
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(25 * mm, y, _("Randomisation certificate"))
    y -= 10 * mm
    pdf.setFont("Helvetica", 11)
    pdf.drawString(25 * mm, y, trial.short_title + (f" — {trial.registry_id}" if trial.registry_id else ""))
    y -= 14 * mm
    by = allocation.randomised_by
    alist = allocation.allocation_list
    rows = [
        (_("Participant"), participant.study_id),
        (_("Site"), f"{participant.site.code} — {participant.site.name}"),
        (_("Randomised on"),
         shown_instant(allocation.randomised_at)),
        (_("Stratum"), allocation.stratum_key),
        (_("Allocation") if view.arm_visible
         # In a trial with product supply, the kit assigned at randomisation is the first of
         # several (one per dispensing visit).
         else _("First kit") if settings_of(trial) is not None else _("Kit code"),
         view.treatment),
        (_("Randomised by"), f"{by.get_full_name() or by.get_username()} ({by.get_username()})"),
        (_("Allocation list"), _("#%(n)s, sealed SHA-256 %(digest)s…") % {
            "n": alist.number, "digest": alist.digest[:16]}),
    ]
    # Labels are longer in some languages ("Liste de randomisation"): the values start after
    # the widest one.
    value_x = max([70 * mm] + [25 * mm + stringWidth(label, "Helvetica-Bold", 11) + 5 * mm
                               for label, _value in rows])
    for label, value in rows:
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(25 * mm, y, label)
        pdf.setFont("Helvetica", 11)
        pdf.drawString(value_x, y, value[:90])
        y -= 8 * mm
    if view.unblinded:
        y -= 4 * mm
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(25 * mm, y, _("This participant has been unblinded in an emergency."))
    pdf.setFont("Helvetica", 8)
    pdf.drawString(25 * mm, 15 * mm,
                   _("Printed %(when)s") % {"when": shown_instant(timezone.now())})
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
