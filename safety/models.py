"""Serious adverse event (SAE) reports, their signed versions, the sponsor's assessment and the
reminders of the reporting clock. See docs/safety.md for the rule each part follows."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.history import HistoricalRecords
from crfs.models import CRFRecord
from patients.models import Participant
from trials.models import Trial

# EU Regulation 536/2014 art. 41(4): the investigator reports an SAE to the sponsor "without
# undue delay but not later than within 24 hours of obtaining knowledge of the event".
SITE_DEADLINE = dt.timedelta(hours=24)
# Reminded this long before the site's deadline (choice: half the 24 hours).
SITE_REMINDER_BEFORE = dt.timedelta(hours=12)
# Art. 42(2): a SUSAR is reported within 7 days when fatal or life-threatening, else 15 days,
# from the sponsor's knowledge of it (its day 0: the initial report received, i.e. signed).
SUSAR_DAYS_FATAL = 7
SUSAR_DAYS_OTHER = 15


class Criterion(models.TextChoices):
    """ICH E2A II.B: what makes an adverse event serious."""
    DEATH = "death", _("Results in death")
    LIFE_THREATENING = "life_threatening", _("Is life-threatening")
    HOSPITALISATION = "hospitalisation", _("Requires or prolongs hospitalisation")
    DISABILITY = "disability", _("Results in persistent or significant disability or incapacity")
    CONGENITAL_ANOMALY = "congenital_anomaly", _("Is a congenital anomaly or birth defect")
    MEDICALLY_IMPORTANT = "medically_important", _("Other medically important condition")


class Outcome(models.TextChoices):
    RECOVERED = "recovered", _("Recovered / resolved")
    RECOVERING = "recovering", _("Recovering / resolving")
    NOT_RECOVERED = "not_recovered", _("Not recovered / not resolved")
    SEQUELAE = "sequelae", _("Recovered with sequelae")
    FATAL = "fatal", _("Fatal")
    UNKNOWN = "unknown", _("Unknown")


class Causality(models.TextChoices):
    """ICH E2A III.A.1: a reasonable possibility of a causal relationship, or not."""
    RELATED = "related", _("Related (reasonable possibility)")
    NOT_RELATED = "not_related", _("Not related")


class Expectedness(models.TextChoices):
    EXPECTED = "expected", _("Expected (listed in the reference safety information)")
    UNEXPECTED = "unexpected", _("Unexpected")


class SAEReport(models.Model):
    """One serious adverse event of one participant, opened from the record that showed it.

    ``aware_at`` is when the site learned of the event: the clock's start (24 hours). It is the
    moment the triggering record was saved until the initial version says earlier.
    """

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="sae_reports")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="sae_reports")
    source_record = models.ForeignKey(CRFRecord, null=True, blank=True,
                                      on_delete=models.PROTECT, related_name="sae_reports")
    source_path = models.CharField(max_length=100, blank=True,
                                   help_text=_("The row of the record, e.g. events[0]."))
    trigger = models.CharField(max_length=40)
    term = models.CharField(max_length=255)
    opened_at = models.DateTimeField()
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")
    aware_at = models.DateTimeField()
    reported_at = models.DateTimeField(null=True, blank=True,
                                       help_text=_("When the initial version was signed."))
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial", "-opened_at"]
        constraints = [models.UniqueConstraint(fields=["source_record", "source_path"],
                                               name="one_sae_per_event")]
        indexes = [models.Index(fields=["reported_at"], name="sae_unreported")]

    def __str__(self) -> str:
        return f"SAE {self.number} {self.participant.study_id}: {self.term}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Safety reports are never deleted.", {self})

    @property
    def number(self) -> str:
        return f"SAE-{self.pk:05d}"

    @property
    def due_at(self) -> dt.datetime:
        return self.aware_at + SITE_DEADLINE

    def late_by(self, now: dt.datetime | None = None) -> dt.timedelta | None:
        """How late the initial report is (or was), None when on time."""
        end = self.reported_at or now or timezone.now()
        late = end - self.due_at
        return late if late > dt.timedelta(0) else None


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SIGNED = "signed", _("Signed")


class SAEVersion(models.Model):
    """The initial report (number 0) or a follow-up (1, 2, …). Editable while a draft; once
    signed it is never changed (the service refuses, ``save`` refuses too)."""

    report = models.ForeignKey(SAEReport, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=VersionStatus.choices,
                              default=VersionStatus.DRAFT)
    criteria = models.JSONField(default=list)
    onset_date = models.DateField(null=True, blank=True)
    aware_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20, choices=Outcome.choices, blank=True)
    death_date = models.DateField(null=True, blank=True)
    causality = models.JSONField(default=dict, help_text=_("Investigator: product → causality."))
    narrative = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    printed_name = models.CharField(max_length=255, blank=True)
    digest = models.CharField(max_length=64, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["report", "number"]
        constraints = [models.UniqueConstraint(fields=["report", "number"],
                                               name="sae_version_number")]

    def __str__(self) -> str:
        return f"{self.report.number} {self.label}"

    @property
    def label(self) -> str:
        if self.number == 0:
            return str(_("Initial report"))
        return str(_("Follow-up %(n)d")) % {"n": self.number}

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Safety reports are never deleted.", {self})

    def save(self, *args, **kwargs):
        signing = self.__dict__.pop("_signing", False)  # once: the signature's own save
        if self.pk is not None and not signing:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored == VersionStatus.SIGNED:
                raise ValueError("A signed SAE report version is never changed.")
        super().save(*args, **kwargs)


class SponsorAssessment(models.Model):
    """The safety officer's assessment: causality and expectedness per product, against the
    reference safety information the protocol names. Re-assessed after a follow-up; every
    change kept (history)."""

    report = models.OneToOneField(SAEReport, on_delete=models.PROTECT, related_name="assessment")
    causality = models.JSONField(default=dict)
    expectedness = models.JSONField(default=dict)
    reference = models.JSONField(default=dict, help_text=_("Product → RSI document and version."))
    comment = models.TextField(blank=True)
    susar = models.BooleanField(default=False)
    susar_due = models.DateField(null=True, blank=True)
    # The expedited report of a SUSAR to the authorities (EudraVigilance, art. 42): when it was
    # sent and its reference, recorded once by the safety officer.
    susar_submitted_on = models.DateField(null=True, blank=True)
    susar_reference = models.CharField(max_length=120, blank=True)
    assessed_at = models.DateTimeField()
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Assessment of {self.report.number}"

    def susar_days_late(self, today: dt.date) -> int | None:
        """Days past the SUSAR's deadline: submitted late, or not submitted and overdue today;
        None when on time (or not a SUSAR)."""
        if not self.susar or self.susar_due is None:
            return None
        day = self.susar_submitted_on or today
        late = (day - self.susar_due).days
        return late if late > 0 else None

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Safety reports are never deleted.", {self})


class SAEReminderKind(models.TextChoices):
    DUE_SOON = "due_soon", _("SAE report due within 12 hours")
    OVERDUE = "overdue", _("SAE report overdue (escalated to the safety desk)")


class SAEReminder(models.Model):
    """That one report needed one kind of reminder: at most one row per (report, kind), ever,
    held by the unique constraint (as ``patients.VisitReminder``). The mail is claimed by the
    sending task (``claimed_by``), and ``sent_at`` is set once the mail server accepted it."""

    report = models.ForeignKey(SAEReport, on_delete=models.PROTECT, related_name="reminders",
                               db_index=False)
    kind = models.CharField(max_length=16, choices=SAEReminderKind.choices)
    created_at = models.DateTimeField()
    claimed_by = models.CharField(max_length=255, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True,
                                        help_text=_("Not sent: the report was signed first."))
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["report", "kind"],
                                               name="sae_reminder_once")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.report_id}"
