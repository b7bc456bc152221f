"""Report requests: what someone asked for, built by a Celery task, kept with its PDF."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class ReportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Building")
    DONE = "done", pgettext_lazy("report status", "Done")
    FAILED = "failed", _("Failed")


class ReportRequest(models.Model):
    """One report someone asked for: built by a Celery task (``reports.tasks.build_report``),
    kept for good with who asked and when, whether it worked or not.

    The PDF is stored in the database (``content``), not under MEDIA_ROOT: web and worker
    machines share only PostgreSQL and Redis, so a file a worker wrote on its own disk would not
    be there for the web machine that serves the download. One UPDATE publishes the bytes and
    the "done" status together, so no half-written report is ever visible. Reports are small
    (a few hundred kB); pages read the list with ``content`` deferred.

    A casebook is a report of one participant (``participant``); the others cover the trial.

    ``with_arms`` and ``site_ids`` record the rights the report was built with (those of the
    requester at build time): who else may download it is decided from them
    (``reports.services.may_download``).
    """

    trial = models.ForeignKey("trials.Trial", on_delete=models.PROTECT,
                              related_name="report_requests")
    kind = models.CharField(max_length=32)
    participant = models.ForeignKey(
        "patients.Participant", null=True, blank=True, on_delete=models.PROTECT,
        related_name="+", help_text=_("For a report of one participant (a casebook)."))
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     related_name="+")
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=ReportStatus.choices,
                              default=ReportStatus.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0, help_text=_("Percent done."))
    step = models.CharField(max_length=255, blank=True, help_text=_("What the builder is doing."))
    attempts = models.PositiveIntegerField(default=0)
    claimed_by = models.CharField(max_length=64, blank=True,
                                  help_text=_("The Celery task id building it now."))
    heartbeat_at = models.DateTimeField(
        null=True, blank=True,
        help_text=_("Last sign of life of the build; a running build silent for longer than "
                    "the lease is taken over (its worker died)."))
    dispatched_at = models.DateTimeField(
        null=True, blank=True, help_text=_("Last handed to the broker; empty while Redis was "
                                           "unreachable (the periodic job hands it over)."))
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    with_arms = models.BooleanField(null=True, help_text=_(
        "Built showing arms (the requester was unblinded at build time)."))
    site_ids = models.JSONField(default=list, blank=True,
                                help_text=_("The sites the report covers."))
    filename = models.CharField(max_length=255, blank=True)
    content = models.BinaryField(null=True, blank=True, editable=False)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        db_table = "outcomes_reportrequest"  # its name before reports moved out of outcomes
        ordering = ["-requested_at", "-pk"]
        indexes = [
            models.Index(fields=["trial", "requested_at"], name="report_by_trial"),
            # The periodic re-dispatch reads the unfinished ones.
            models.Index(fields=["status"], condition=models.Q(status__in=["queued", "running"]),
                         name="report_unfinished"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} report #{self.pk} ({self.status})"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Report requests are never deleted.", {self})

    @property
    def finished(self) -> bool:
        return self.status in (ReportStatus.DONE, ReportStatus.FAILED)
