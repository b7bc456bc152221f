"""Participants: pseudonymous people in a trial, from screening to the end of follow-up.

No names, no dates of birth: a participant is a study ID at a site. Participants are never
deleted; a withdrawal or death is a status, and every change is kept by the history table.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from core.history import HistoricalRecords
from trials.models import Lockable, ProtocolVersion, Site, Trial, definition_of


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


def counted(path: str = "") -> models.Q:
    """The rows that count in reports, analyses and exports: those of participants not
    registered in test mode. ``path`` leads to the participant (``"participant__"`` from a
    CRF record, ``""`` from a participant). Every report's base queryset filters on it."""
    return models.Q(**{f"{path}test": False})


class Participant(Lockable):
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
    schedule_planned_through = models.DateField(
        null=True, blank=True, db_index=True,
        help_text=_("Visits are created up to this date; later ones by the daily job as it "
                    "comes nearer. Empty when the whole schedule exists."))
    # Registered while the trial ran in test mode (user acceptance): randomised from a test
    # list only, and left out of every report, analysis and export (``counted``).
    test = models.BooleanField(default=False, editable=False)
    history = HistoricalRecords(excluded_fields=["schedule_planned_through"])

    class Meta:
        ordering = ["trial", "study_id"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "study_id"], name="participant_study_id"),
        ]
        indexes = [models.Index(fields=["trial", "site", "status"])]

    def __str__(self) -> str:
        return self.study_id

    @property
    def definition(self) -> dict:
        """The definition of the protocol version the participant was screened under."""
        return definition_of(self.protocol_version_id)

    @property
    def is_randomised(self) -> bool:
        return self.status in RANDOMISED_STATUSES

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Participants are never deleted; withdraw them instead.", {self})


# --------------------------------------------------------------------------- visit schedule


class VisitStatus(models.TextChoices):
    """What a person (or the schedule) recorded about a visit.

    "Open" and "overdue" are not stored: they follow from today's date and the window
    (``Visit.state``). A stored "open" would be wrong the morning after its window closed
    whenever the daily job had not run (Redis down), and the issue wants Redis down to delay
    reminders, not to make pages wrong.
    """

    PLANNED = "planned", _("Planned")
    DONE = "done", _("Done")
    MISSED = "missed", _("Not done (missed)")
    NOT_APPLICABLE = "not_applicable", _("Not applicable")


class VisitState(models.TextChoices):
    """A visit's state on a given day: the stored status, with "planned" split by the window."""

    PLANNED = "planned", _("Planned")
    OPEN = "open", _("Open")
    OVERDUE = "overdue", _("Overdue")
    DONE = "done", _("Done")
    MISSED = "missed", _("Not done (missed)")
    NOT_APPLICABLE = "not_applicable", _("Not applicable")


class Visit(models.Model):
    """One visit of a participant's schedule, made from the protocol template for their arm.

    ``code`` and ``occurrence`` name the template and its repetition (follow-up 1, 2, 3…);
    unscheduled visits have their own numbering. ``anchor_date`` is the date the target was
    computed from, kept so that a corrected anchor shows what moved. Dates are computed by
    ``scheduling.services.visit_window`` only. Visits are never deleted: a visit that no longer
    applies becomes "not applicable", with the reason.
    """

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT, related_name="visits")
    code = models.CharField(max_length=64, help_text=_("The protocol's visit code."))
    label = models.CharField(max_length=255)
    occurrence = models.PositiveIntegerField(default=1,
                                             help_text=_("1, 2, 3… for repeated visits."))
    anchor_code = models.CharField(max_length=64)
    anchor_date = models.DateField()
    target_date = models.DateField()
    window_opens = models.DateField()
    window_closes = models.DateField()
    status = models.CharField(max_length=16, choices=VisitStatus.choices,
                              default=VisitStatus.PLANNED)
    done_on = models.DateField(null=True, blank=True)
    status_reason = models.TextField(blank=True, help_text=_("Why not done, not applicable, or "
                                                              "why the done date was corrected."))
    closed_by = models.CharField(
        max_length=64, blank=True,
        help_text=_("Set when the schedule itself made the visit not applicable: the event "
                    "(e.g. end_of_treatment) or 'schedule' (anchor moved, horizon shortened). "
                    "Such a visit comes back if the cause is corrected; one closed by a person "
                    "does not."))
    crfs = models.JSONField(default=list, blank=True,
                            help_text=_("CRF codes expected at this visit."))
    unscheduled = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "target_date", "code", "occurrence"]
        constraints = [
            models.UniqueConstraint(fields=["participant", "code", "occurrence"],
                                    name="visit_occurrence"),
            models.CheckConstraint(condition=models.Q(window_opens__lte=models.F("window_closes")),
                                   name="visit_window_order"),
            models.CheckConstraint(
                condition=models.Q(status="done", done_on__isnull=False)
                | (~models.Q(status="done") & models.Q(done_on__isnull=True)),
                name="visit_done_on_iff_done"),
        ]
        indexes = [
            # The worklists and the daily reminder job read planned visits by window date.
            models.Index(fields=["window_opens"], condition=models.Q(status="planned"),
                         name="visit_planned_opens"),
            models.Index(fields=["window_closes"], condition=models.Q(status="planned"),
                         name="visit_planned_closes"),
            # A site's worklist counts its participants' planned visits (bench/pages.py).
            models.Index(fields=["participant", "window_opens", "window_closes"],
                         condition=models.Q(status="planned"),
                         name="visit_planned_by_participant"),
        ]

    def __str__(self) -> str:
        return f"{self.title} of {self.participant.study_id}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Visits are never deleted; mark them not applicable.", {self})

    def state(self, today) -> str:
        """The visit's ``VisitState`` on ``today``: open when today is within the window."""
        if self.status != VisitStatus.PLANNED:
            return self.status
        if today > self.window_closes:
            return VisitState.OVERDUE
        if today >= self.window_opens:
            return VisitState.OPEN
        return VisitState.PLANNED

    @property
    def title(self) -> str:
        """The label, numbered from the second occurrence on (and always when unscheduled).

        The row keeps the protocol's first language; when the participant is already loaded
        (a participant's own pages), the label comes from the protocol definition in the
        reader's language, without a query more."""
        label = self.label
        if not self.unscheduled and Visit.participant.is_cached(self):
            label = next((v["label"] for v in self.participant.definition.get("visits", [])
                          if v["code"] == self.code), label)
        if self.unscheduled or self.occurrence > 1:
            return f"{label} #{self.occurrence}"
        return label


class DeviationRule(models.TextChoices):
    VISIT_WINDOW = "visit_window", _("Visit done outside its window")
    EDIT_CHECK = "edit_check", _("A protocol limit passed (soft edit check of a CRF)")


class Deviation(models.Model):
    """A protocol deviation detected by the system, e.g. a visit done outside its window.

    ``days_outside`` is signed: negative when early (days before the window opened), positive
    when late (days after it closed). A deviation is never deleted; when the done date that
    caused it is corrected it is voided, with the reason.
    """

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="deviations")
    visit = models.ForeignKey(Visit, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="deviations")
    rule = models.CharField(max_length=32, choices=DeviationRule.choices)
    days_outside = models.IntegerField(help_text=_("Negative: days early; positive: days late."))
    description = models.TextField()
    detected_at = models.DateTimeField(auto_now_add=True)
    detected_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+",
                                    help_text=_("Whose entry revealed it."))
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "detected_at"]
        constraints = [
            # One open window deviation per visit; edit-check deviations are kept one per
            # check by ``crfs.services`` (a visit's CRF may fail several checks).
            models.UniqueConstraint(fields=["visit", "rule"],
                                    condition=models.Q(voided_at__isnull=True,
                                                       rule="visit_window"),
                                    name="one_open_deviation_per_visit_rule"),
        ]

    def __str__(self) -> str:
        return self.description

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Deviations are never deleted; void them.", {self})

    @property
    def days_early(self) -> int:
        return max(0, -self.days_outside)

    @property
    def days_late(self) -> int:
        return max(0, self.days_outside)


# --------------------------------------------------------------------------- reminders


class ReminderKind(models.TextChoices):
    OPENS_SOON = "opens_soon", _("Window opens within 7 days")
    CLOSES_SOON = "closes_soon", _("Window closes within 2 days")
    OVERDUE = "overdue", _("Window closed, visit not done")


class VisitReminder(models.Model):
    """That a visit needs a reminder of one kind. At most one row per (visit, kind), ever: this
    constraint, not the code that inserts, is what keeps a reminder from being sent twice.
    Its deliveries (one per person told) are written in the same transaction, found by
    ``created_at`` (see ``patients.reminders``)."""

    # No index of its own: the unique (visit, kind) index serves lookups by visit.
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="reminders",
                              db_index=False)
    kind = models.CharField(max_length=16, choices=ReminderKind.choices)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["visit", "kind"], name="reminder_once")]
        indexes = [models.Index(fields=["created_at"], name="reminder_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.visit_id}"


class ReminderDelivery(models.Model):
    """One reminder for one person. Sent in that person's daily digest; ``sent_at`` is set only
    after the mail server accepted the digest. ``claimed_by``/``claimed_at``: the task sending
    it now (a claim older than the lease may be taken over: its worker died).
    ``withdrawn_at``: not sent because the visit no longer needed it (done, not applicable)."""

    # Indexes: the unique (reminder, recipient) one serves lookups by reminder, the partial
    # ``delivery_pending`` one the job's lookups by recipient. Fewer indexes, cheaper inserts
    # (the job writes these rows by the hundred thousand on a first run).
    reminder = models.ForeignKey(VisitReminder, on_delete=models.PROTECT,
                                 related_name="deliveries", db_index=False)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+", db_index=False)
    created_at = models.DateTimeField()
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reminder", "recipient"],
                                               name="delivery_once")]
        indexes = [models.Index(fields=["recipient"],
                                condition=models.Q(sent_at__isnull=True,
                                                   withdrawn_at__isnull=True),
                                name="delivery_pending")]

    def __str__(self) -> str:
        return f"reminder {self.reminder_id} to user {self.recipient_id}"


# --------------------------------------------------------------------------- consent


class ConsentKind(models.TextChoices):
    FIRST = "first", _("First consent")
    RECONSENT = "reconsent", _("Re-consent to an amendment")
    CORRECTION = "correction", _("Correction of an earlier record")


class ConsentRecord(models.Model):
    """One signed consent form: which version, when, who took it, each optional item's answer.

    A participant's consent history is their records in order; the latest that is not
    corrected by a later one says which version they are on. Records are never edited in place
    nor deleted: a mistake is corrected by a new record (``corrects``, with the reason), so the
    history shows both. ``protocol_version``: the version the participant was on once this
    consent was recorded (a re-consent to an amendment's form moves them to it).
    """

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="consents")
    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    version = models.CharField(max_length=32, help_text=_("The consent form version signed."))
    consent_date = models.DateField()
    taken_by = models.CharField(max_length=120, blank=True,
                                help_text=_("Who took the consent, as on the form."))
    answers = models.JSONField(default=dict, blank=True,
                               help_text=_("Each optional item's answer: code → true/false."))
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT,
                                         related_name="+")
    corrects = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="corrected_by")
    reason = models.TextField(blank=True, help_text=_("Why a correction was recorded."))
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "consent_date", "recorded_at", "pk"]
        indexes = [models.Index(fields=["participant", "consent_date"])]

    def __str__(self) -> str:
        return f"{self.participant_id}: consent v{self.version} on {self.consent_date}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise models.ProtectedError("Consent records are never changed; record a correction.",
                                        {self})
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Consent records are never deleted; record a correction.",
                                    {self})


# --------------------------------------------------------------------------- withdrawal


class WithdrawalLevel(models.TextChoices):
    """How far a participant withdraws, least first; each level includes the ones before it."""

    TREATMENT = "treatment", _("Stops study treatment only")
    VISITS = "visits", _("Stops visits, vital-status follow-up allowed")
    CONSENT = "consent", _("Withdraws consent to further data collection")


WITHDRAWAL_ORDER = [WithdrawalLevel.TREATMENT, WithdrawalLevel.VISITS, WithdrawalLevel.CONSENT]


class Withdrawal(models.Model):
    """A participant's withdrawal at one level, from a date, with the reason.

    Read by the visit planner (``crfs.facts.read_facts`` → ``scheduling``): from study
    treatment, the protocol's treatment visits end (``withdrawal.treatment_visits``); from
    visits, every visit but the vital-status follow-up ends; consent withdrawn, every visit
    ends. A participant may go further later (a new record at a higher level); never deleted.
    """

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="withdrawals")
    level = models.CharField(max_length=16, choices=WithdrawalLevel.choices)
    withdrawn_on = models.DateField()
    reason = models.TextField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "withdrawn_on", "pk"]
        constraints = [models.UniqueConstraint(fields=["participant", "level"],
                                               name="withdrawal_once_per_level")]

    def __str__(self) -> str:
        return f"{self.participant_id}: {self.level} from {self.withdrawn_on}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Withdrawals are never deleted.", {self})


# --------------------------------------------------------------------------- screening


class ScreeningLogEntry(models.Model):
    """One person assessed at a site and not registered: no identifier of any kind, only the
    day, the site and the protocol's reason for non-inclusion (``screening.
    non_inclusion_reasons``). With the registered participants, the first box of the flow
    diagram (CONSORT 2010, "assessed for eligibility"). Never deleted."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="screening_log")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="screening_log")
    screened_on = models.DateField()
    reason = models.CharField(max_length=64,
                              help_text=_("A code of the protocol's reasons for non-inclusion."))
    note = models.TextField(blank=True, help_text=_("Free text without any identifier."))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial", "-screened_on", "-pk"]
        indexes = [models.Index(fields=["trial", "site", "reason"])]
        verbose_name_plural = "screening log entries"

    def __str__(self) -> str:
        return f"{self.site.code} {self.screened_on:%Y-%m-%d} {self.reason}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Screening log entries are never deleted.", {self})


class ScreeningEpisode(models.Model):
    """A closed screening episode of a participant screened again: the eligibility form as it
    stood when the episode closed (answers, status, date) and its outcome, kept as it was.

    The participant's current episode is the eligibility CRF record itself (one per
    participant, ``one_crf_outside_visits``); re-screening copies it here, then opens the
    record again for the new episode (``crfs.screening.rescreen``). Episode ``number`` n is
    the n-th; the current one is ``closed episodes + 1``."""

    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="screening_episodes")
    number = models.PositiveIntegerField()
    assessed_on = models.DateField(help_text=_("The screening date the eligibility form gave."))
    outcome = models.CharField(max_length=20, choices=Status.choices,
                               help_text=_("The participant's status when the episode closed."))
    failed_criteria = models.JSONField(default=list, blank=True,
                                       help_text=_("Codes of the criteria not met."))
    eligibility_data = models.JSONField(default=dict,
                                        help_text=_("The eligibility form's answers."))
    eligibility_status = models.CharField(max_length=10)
    closed_at = models.DateTimeField(auto_now_add=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                  related_name="+")
    reason = models.TextField(help_text=_("Why the participant is screened again."))
    history = HistoricalRecords()

    class Meta:
        ordering = ["participant", "number"]
        constraints = [models.UniqueConstraint(fields=["participant", "number"],
                                               name="screening_episode_number")]

    def __str__(self) -> str:
        return f"{self.participant.study_id} screening #{self.number}"

    def delete(self, *args, **kwargs):
        raise models.ProtectedError("Screening episodes are never deleted.", {self})
