"""Case report forms as captured: one record per CRF per participant (and visit).

The answers live in ``data`` (JSON, in the format of ``outcomes.forms.form_to_data``) and are
read against the protocol version the record was created under. Every save is kept by the
history table (who, when, the whole previous version, and the reason once the CRF had been
completed); nothing is ever deleted.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from patients.models import Participant
from trials.models import ProtocolVersion, crf_of


class CRFStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    COMPLETE = "complete", _("Complete")
    SIGNED = "signed", _("Signed")
    LOCKED = "locked", _("Locked")


class CRFRecord(models.Model):
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="crf_records")
    crf_code = models.CharField(max_length=64)
    visit = models.ForeignKey("patients.Visit", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="crf_records",
                              help_text=_("Empty for forms not tied to a visit (eligibility, "
                                          "events such as progression or death)."))
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT,
                                         related_name="+")
    data = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=CRFStatus.choices, default=CRFStatus.DRAFT)
    ever_completed = models.BooleanField(
        default=False, help_text=_("Once true, every change needs a reason."))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "crf_code", "created_at"]
        indexes = [models.Index(fields=["participant", "crf_code"])]
        constraints = [
            models.UniqueConstraint(fields=["participant", "crf_code", "visit"],
                                    name="one_crf_per_visit"),
            models.UniqueConstraint(fields=["participant", "crf_code"],
                                    condition=models.Q(visit__isnull=True),
                                    name="one_crf_outside_visits"),
        ]

    def __str__(self) -> str:
        return f"{self.crf_code} of {self.participant.study_id}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Clinical data is never deleted.", {self})

    @property
    def definition(self) -> dict:
        return crf_of(self.protocol_version_id, self.crf_code) or {}
