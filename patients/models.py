"""Participants: pseudonymous people in a trial, from screening to the end of follow-up.

No names, no dates of birth: a participant is a study ID at a site. Participants are never
deleted; a withdrawal or death is a status, and every change is kept by the history table.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from trials.models import ProtocolVersion, Site, Trial


class Status(models.TextChoices):
    SCREENED = "screened", _("Screened")
    SCREEN_FAILED = "screen_failed", _("Screen failure")
    RANDOMISED = "randomised", _("Randomised")
    ON_TREATMENT = "on_treatment", _("On treatment")
    FOLLOW_UP = "follow_up", _("In follow-up")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    DEAD = "dead", _("Dead")
    COMPLETED = "completed", _("Completed")


RANDOMISED_STATUSES = [Status.RANDOMISED, Status.ON_TREATMENT, Status.FOLLOW_UP,
                       Status.WITHDRAWN, Status.DEAD, Status.COMPLETED]


class Participant(models.Model):
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="participants")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="participants")
    study_id = models.CharField(max_length=32, help_text=_("Pseudonymous study identifier."))
    protocol_version = models.ForeignKey(
        ProtocolVersion, on_delete=models.PROTECT, related_name="+",
        help_text=_("The protocol version the participant was screened under."),
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SCREENED)
    screened_on = models.DateField()
    consent_date = models.DateField(null=True, blank=True)
    consent_version = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial", "study_id"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "study_id"], name="participant_study_id"),
        ]
        indexes = [models.Index(fields=["trial", "site", "status"])]

    def __str__(self) -> str:
        return self.study_id

    @property
    def is_randomised(self) -> bool:
        return self.status in RANDOMISED_STATUSES

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Participants are never deleted; withdraw them instead.", {self})
