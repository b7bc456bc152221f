"""The governance audit log: the events an inspector asks about by name."""
from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models


class Immutable(models.Model):
    """Rows written once (allocations, kit events…). Updates and deletes through the ORM are
    refused; on PostgreSQL, triggers refuse them to any other route where a migration says so."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError(f"{self._meta.verbose_name} records are never changed.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError(f"{self._meta.verbose_name} records are never deleted.")


class AuditEvent(models.Model):
    """An append-only log of governance events: protocol loads, list seals, unblindings, logins.

    Field-level history of clinical data is kept by django-simple-history on the data models;
    this log records the events an inspector asks about by name.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=64, db_index=True)
    trial = models.ForeignKey("trials.Trial", null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    # Where the event happened, for the audit log page's site scoping and filters: the site of
    # the participant or of the site-level object concerned (empty for trial-wide events and
    # for every entry written before these columns existed), and the participant's study ID.
    site = models.ForeignKey("trials.Site", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+")
    study_id = models.CharField(max_length=32, blank=True, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    message = models.TextField()
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        # The table keeps the name it had when the log lived in ``trials`` (migration
        # core.0001): its rows and PostgreSQL's append-only trigger stay where they are.
        db_table = "trials_auditevent"
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["trial", "-at", "-id"], name="audit_trial_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action}: {self.message}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("Audit events are never deleted.")
