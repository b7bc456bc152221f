"""Case report forms as captured: one record per CRF per participant (and visit), with the
signatures and data queries that bear on them.

The answers live in ``data`` (JSON, in the format of ``crfs.forms.form_to_data``) and are
read against the protocol version the record was created under. Every save is kept by the
history table (who, when, the whole previous version, and the reason once the CRF had been
completed); nothing is ever deleted. On PostgreSQL, triggers (migration
``outcomes.0004_audit_trail_append_only``) refuse any UPDATE or DELETE of the history rows, whatever
the route.

Status flow (``crfs.services``): draft → complete → signed (investigator, password typed
again) → locked (data manager). A signature is bound to the content it signed by a SHA-256
digest (``crfs.trail.content_digest``): it counts only while that digest equals the
current content's, so it can never stand on changed data.

The tables keep the names they had when these models lived in ``outcomes`` (migration
crfs.0001): their rows, history rows and PostgreSQL triggers stay where they are.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.history import HistoricalRecords
from patients.models import Participant
from trials.models import ProtocolVersion, crf_of


class CRFStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    COMPLETE = "complete", _("Complete")
    SIGNED = "signed", _("Signed")
    LOCKED = "locked", _("Locked")


class CRFRecord(models.Model):
    """One CRF of one participant (at one visit, or outside visits)."""

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
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    # The reason for a change is part of the audit trail: kept whole (the library's default
    # is 100 characters, which PostgreSQL would refuse with an error, not truncate).
    history = HistoricalRecords(history_change_reason_field=models.TextField(null=True),
                                table_name="outcomes_historicalcrfrecord")

    class Meta:
        db_table = "outcomes_crfrecord"
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


class SignatureMeaning(models.TextChoices):
    """What a signature means (21 CFR 11.50(a)(3)), shown with it on screen and on paper."""

    ACCURATE = "accurate", _("I confirm these data are accurate and complete")
    REVIEWED = "reviewed", _("Reviewed and approved")
    # The investigator's confirmation of eligibility before randomisation (crfs.eligibility):
    # offered on the eligibility CRF only, by ``confirm_eligibility``, never by ``sign_crf``.
    ELIGIBILITY = "eligibility", _("I confirm this participant is eligible")


class CRFSignature(models.Model):
    """An investigator's electronic signature of one version of a CRF (21 CFR 11.50, 11.70).

    ``digest`` is the SHA-256 of the canonical content signed (``crfs.trail``) and
    ``signed_version`` the history row holding that content. ``printed_name`` is the signer's
    name at the time of signing, so a later change of the account's name does not rewrite it.
    A signature is never deleted; a change of the data voids it (``voided_at``, with the
    reason). Voiding is the only change a signature row accepts (a trigger enforces it on
    PostgreSQL).
    """

    record = models.ForeignKey(CRFRecord, on_delete=models.PROTECT, related_name="signatures")
    signer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                               related_name="+")
    signed_at = models.DateTimeField()
    meaning = models.CharField(max_length=16, choices=SignatureMeaning.choices)
    printed_name = models.CharField(max_length=255)
    digest = models.CharField(max_length=64, help_text=_("SHA-256 of the content signed."))
    signed_version = models.ForeignKey("crfs.HistoricalCRFRecord", on_delete=models.PROTECT,
                                       related_name="+",
                                       help_text=_("The history row of the content signed."))
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    void_reason = models.TextField(blank=True)

    class Meta:
        db_table = "outcomes_crfsignature"
        ordering = ["record", "signed_at", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(voided_at__isnull=True) | ~models.Q(void_reason=""),
                name="signature_void_has_reason"),
        ]

    def __str__(self) -> str:
        return f"{self.printed_name}, {self.signed_at:%Y-%m-%d %H:%M} UTC: {self.meaning}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Signatures are never deleted; they are voided.", {self})


class QueryStatus(models.TextChoices):
    OPEN = "open", _("Open: awaiting an answer")
    ANSWERED = "answered", _("Answered: awaiting review")
    CLOSED = "closed", _("Closed")


UNRESOLVED = [QueryStatus.OPEN, QueryStatus.ANSWERED]  # what "open queries" counts


class DataQuery(models.Model):
    """A question about one answer of one CRF, raised by the data manager or by a soft edit check
    (``raised_by`` empty, ``check_code`` set). The site answers, or corrects the value through
    ``save_crf`` with a reason; the data manager closes it, or re-opens it with a comment. Its
    conversation is ``messages``, never edited nor deleted."""

    record = models.ForeignKey(CRFRecord, on_delete=models.PROTECT, related_name="queries")
    field_path = models.CharField(
        max_length=255, help_text=_("The answer questioned: 'weight_kg', 'events[1].grade'."))
    status = models.CharField(max_length=10, choices=QueryStatus.choices,
                              default=QueryStatus.OPEN)
    check_code = models.CharField(max_length=64, blank=True,
                                  help_text=_("For automatic queries: the failed edit check."))
    raised_at = models.DateTimeField()
    raised_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+",
                                  help_text=_("Empty for automatic queries."))
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    history = HistoricalRecords(table_name="outcomes_historicaldataquery")

    class Meta:
        db_table = "outcomes_dataquery"
        ordering = ["record", "raised_at", "pk"]
        verbose_name_plural = "data queries"
        indexes = [models.Index(fields=["status"], condition=~models.Q(status="closed"),
                                name="query_unresolved")]

    def __str__(self) -> str:
        return f"query #{self.pk} on {self.field_path}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Queries are never deleted; they are closed.", {self})

    @property
    def automatic(self) -> bool:
        return self.raised_by_id is None

    @property
    def is_closed(self) -> bool:
        return self.status == QueryStatus.CLOSED


class MessageKind(models.TextChoices):
    RAISED = "raised", _("raised")
    ANSWERED = "answered", _("answered")
    CORRECTED = "corrected", _("corrected the value")
    CLOSED = "closed", _("closed")
    REOPENED = "reopened", _("re-opened")


class QueryMessage(models.Model):
    """One turn of a query's conversation. Append-only; ``author`` empty for the system (an
    automatic query, a check that passes after a change). A correction points at the history
    row it wrote."""

    query = models.ForeignKey(DataQuery, on_delete=models.PROTECT, related_name="messages")
    kind = models.CharField(max_length=10, choices=MessageKind.choices)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                               on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    text = models.TextField()
    correction = models.ForeignKey("crfs.HistoricalCRFRecord", null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")

    class Meta:
        db_table = "outcomes_querymessage"
        ordering = ["query", "at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:40]}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Query messages are never deleted.", {self})


class SourceVerification(models.Model):
    """A monitor's mark that an answer (``field_path``, as in ``crfs.trail``), or a whole form
    (``field_path`` empty), agrees with the site's source documents: source data verification.
    It stands for the value it verified; a later change of that value voids it (who, when, what
    changed), never deletes it. One mark in force per record and path."""

    record = models.ForeignKey(CRFRecord, on_delete=models.PROTECT, related_name="verifications")
    field_path = models.CharField(max_length=128, blank=True)
    verified_at = models.DateTimeField()
    verified_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    # The value verified (a field), or the SHA-256 of the whole content (a form).
    value = models.JSONField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    void_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["record", "field_path", "verified_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["record", "field_path"],
                                    condition=models.Q(voided_at__isnull=True),
                                    name="one_verification_in_force"),
            models.CheckConstraint(
                condition=models.Q(voided_at__isnull=True) | ~models.Q(void_reason=""),
                name="verification_void_has_reason"),
        ]

    def __str__(self) -> str:
        return f"SDV of {self.field_path or 'the form'} ({self.verified_at:%Y-%m-%d})"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Verifications are never deleted; they are voided.", {self})


class MonitoringVisit(models.Model):
    """A monitor's visit to a site, with the findings they report (the monitoring visit report
    lists them with what was verified and the queries raised: ``crfs.monitoring``)."""

    trial = models.ForeignKey("trials.Trial", on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey("trials.Site", on_delete=models.PROTECT,
                             related_name="monitoring_visits")
    visited_on = models.DateField()
    monitor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                related_name="+")
    findings = models.TextField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["site", "-visited_on", "pk"]

    def __str__(self) -> str:
        return f"Monitoring visit to {self.site.code} on {self.visited_on:%Y-%m-%d}"
