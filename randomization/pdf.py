"""The randomisation certificate, a one-page PDF for the participant's file."""
from __future__ import annotations

import io

from django.utils import timezone
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen import canvas

from .selectors import AllocationView


def certificate(view: AllocationView) -> bytes:
    """Built from what the reader may see: ``view.treatment`` is a kit code for blinded roles."""
    allocation = view.allocation
    participant = allocation.participant
    trial = allocation.trial
    buffer = io.BytesIO()
    # Uncompressed: the certificate is tiny, and its text stays greppable for the blinding tests.
    pdf = canvas.Canvas(buffer, pagesize=A4, pageCompression=0, invariant=1)
    pdf.setTitle(f"Randomisation certificate {participant.study_id}")
    width, height = A4
    y = height - 30 * mm
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(25 * mm, y, "Randomisation certificate")
    y -= 10 * mm
    pdf.setFont("Helvetica", 11)
    pdf.drawString(25 * mm, y, trial.short_title + (f" — {trial.registry_id}" if trial.registry_id else ""))
    y -= 14 * mm
    by = allocation.randomised_by
    rows = [
        ("Participant", participant.study_id),
        ("Site", f"{participant.site.code} — {participant.site.name}"),
        ("Randomised on", timezone.localtime(allocation.randomised_at).strftime("%Y-%m-%d %H:%M %Z")),
        ("Stratum", allocation.stratum_key),
        ("Allocation" if view.arm_visible else "Kit code", view.treatment),
        ("Randomised by", f"{by.get_full_name() or by.get_username()} ({by.get_username()})"),
        ("Allocation list", f"#{allocation.allocation_list.number}, sealed SHA-256 "
                            f"{allocation.allocation_list.digest[:16]}…"),
    ]
    for label, value in rows:
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(25 * mm, y, label)
        pdf.setFont("Helvetica", 11)
        pdf.drawString(70 * mm, y, value[:90])
        y -= 8 * mm
    if view.unblinded:
        y -= 4 * mm
        pdf.setFont("Helvetica-Bold", 11)
        pdf.drawString(25 * mm, y, "This participant has been unblinded in an emergency.")
    pdf.setFont("Helvetica", 8)
    pdf.drawString(25 * mm, 15 * mm, f"Printed {timezone.localtime():%Y-%m-%d %H:%M %Z}")
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
