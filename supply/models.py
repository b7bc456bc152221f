"""Investigational product supply (docs/supply.md): the kit list, kits and their life, shipments
from a depot to the sites, the kit assigned to each participant at each dispensing visit, and
resupply requests.

The kit list is apart from the allocation list: it says which arm each kit number holds, and a
kit number reveals nothing of its arm. Blinded roles see kit numbers and counts; arms of kits
are for the unblinded (``trials.policy.can_see_kit_arms``). Kit events and assignments are
append-only: a kit's life is read back from them, never rewritten.
"""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import Immutable
from patients.models import Participant, Visit
from trials.models import Arm, Site, Trial


class KitListStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SEALED = "sealed", _("Sealed")


class KitList(models.Model):
    """One batch of kits made for the trial: generated from a recorded seed or imported, then
    sealed (the SHA-256 of its canonical text, written to the audit log). A trial may have
    several (new batches as the trial runs); only sealed lists' kits are shipped."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="kit_lists")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=10, choices=[("generated", _("Generated")),
                                                      ("imported", _("Imported"))])
    seed = models.CharField(max_length=128, blank=True)
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=KitListStatus.choices,
                              default=KitListStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    sealed_at = models.DateTimeField(null=True, blank=True)
    sealed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    digest = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["trial", "-number"]
        constraints = [models.UniqueConstraint(fields=["trial", "number"],
                                               name="kit_list_number")]

    def __str__(self) -> str:
        return f"{self.trial.short_title} kit list #{self.number} ({self.status})"

    @property
    def expires_on(self) -> dt.date | None:
        """The generated kits' expiry date (kept in ``parameters`` as ISO), as a date a page
        shows in its reader's format."""
        value = (self.parameters or {}).get("expires_on")
        return dt.date.fromisoformat(value) if value else None


class KitStatus(models.TextChoices):
    AT_DEPOT = "at_depot", _("At the depot")
    IN_TRANSIT = "in_transit", _("In transit")
    AVAILABLE = "available", _("Available at the site")
    QUARANTINED = "quarantined", _("Quarantined")
    ASSIGNED = "assigned", _("Assigned to a participant")
    DISPENSED = "dispensed", _("Dispensed")
    RETURNED = "returned", _("Returned by the site")
    DAMAGED = "damaged", _("Damaged")
    MISSING = "missing", _("Missing or lost")
    DESTROYED = "destroyed", _("Destroyed")


class Kit(models.Model):
    """One pack of study treatment. ``status``, ``site`` and ``shipment`` say where it is now
    (kept with each ``KitEvent`` in the same transaction); the events say how it got there."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    kit_list = models.ForeignKey(KitList, on_delete=models.PROTECT, related_name="kits")
    number = models.CharField(max_length=16)
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="+")
    lot = models.CharField(max_length=32)
    expires_on = models.DateField()
    status = models.CharField(max_length=12, choices=KitStatus.choices,
                              default=KitStatus.AT_DEPOT)
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="kits")
    shipment = models.ForeignKey("Shipment", null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")

    class Meta:
        ordering = ["trial", "number"]
        constraints = [models.UniqueConstraint(fields=["trial", "number"],
                                               name="kit_number_in_trial")]
        indexes = [
            # The dispensing query: a site's available kits of an arm, earliest expiry first.
            models.Index(fields=["site", "status", "arm", "expires_on", "number"],
                         name="kit_dispensing"),
        ]

    def __str__(self) -> str:
        # Never the arm: kits are listed where blinded roles look.
        return self.number


class ShipmentStatus(models.TextChoices):
    DISPATCHED = "dispatched", _("Dispatched")
    RECEIVED = "received", _("Received")


class Shipment(models.Model):
    """Kits sent from a depot to a site. Its kits are drawn from both arms and listed by kit
    number only, so its contents reveal no arm; the site confirms what arrived."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveIntegerField()
    depot = models.CharField(max_length=64, help_text=_("The depot's code (protocol supply)."))
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="shipments")
    status = models.CharField(max_length=12, choices=ShipmentStatus.choices,
                              default=ShipmentStatus.DISPATCHED)
    dispatched_at = models.DateTimeField()
    dispatched_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                      related_name="+")
    received_at = models.DateTimeField(null=True, blank=True)
    received_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="+")
    request = models.ForeignKey("ResupplyRequest", null=True, blank=True,
                                on_delete=models.PROTECT, related_name="shipments")
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["trial", "-number"]
        constraints = [models.UniqueConstraint(fields=["trial", "number"],
                                               name="shipment_number")]

    def __str__(self) -> str:
        return f"Shipment {self.number}"


class ReceiptOutcome(models.TextChoices):
    RECEIVED = "received", _("Received in good condition")
    DAMAGED = "damaged", _("Damaged")
    MISSING = "missing", _("Missing")


class ShipmentKit(models.Model):
    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="items")
    kit = models.ForeignKey(Kit, on_delete=models.PROTECT, related_name="shipment_items")
    outcome = models.CharField(max_length=10, choices=ReceiptOutcome.choices, blank=True)

    class Meta:
        ordering = ["shipment", "kit__number"]
        constraints = [models.UniqueConstraint(fields=["shipment", "kit"],
                                               name="shipment_kit")]


class KitEventKind(models.TextChoices):
    MADE = "made", _("Made (kit list sealed)")
    SHIPPED = "shipped", _("Shipped")
    RECEIVED = "received", _("Received")
    DAMAGED = "damaged", _("Damaged")
    MISSING = "missing", _("Missing")
    QUARANTINED = "quarantined", _("Quarantined")
    RELEASED = "released", _("Released from quarantine")
    ASSIGNED = "assigned", _("Assigned")
    REPLACED = "replaced", _("Replaced")
    UNASSIGNED = "unassigned", _("Back to stock (not given)")
    DISPENSED = "dispensed", _("Dispensed")
    RETURNED = "returned", _("Returned")
    DESTROYED = "destroyed", _("Destroyed")


class KitEvent(Immutable):
    """One step of a kit's life, with who and when: the accountability log is made of these."""

    kit = models.ForeignKey(Kit, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=12, choices=KitEventKind.choices)
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                           on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT,
                             related_name="+")
    shipment = models.ForeignKey(Shipment, null=True, blank=True, on_delete=models.PROTECT,
                                 related_name="+")
    participant = models.ForeignKey(Participant, null=True, blank=True,
                                    on_delete=models.PROTECT, related_name="kit_events")
    visit = models.ForeignKey(Visit, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="+")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["kit", "at", "pk"]
        indexes = [models.Index(fields=["site", "at"], name="kit_event_site_at")]


class KitAssignment(Immutable):
    """The kit a participant is to be given at a visit, chosen by the system from the site's
    stock of the participant's arm. Written once; it ends (``KitRelease``) when the kit is
    replaced (damaged, lost) or the injection is not given, and the kit then leaves or goes
    back to the site's stock. A visit has one current assignment at most."""

    kit = models.ForeignKey(Kit, on_delete=models.PROTECT, related_name="assignments")
    participant = models.ForeignKey(Participant, on_delete=models.PROTECT,
                                    related_name="kit_assignments")
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="kit_assignments")
    assigned_at = models.DateTimeField()
    assigned_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    reason = models.TextField(blank=True, help_text=_("Why a replacement was assigned."))

    class Meta:
        ordering = ["participant", "assigned_at", "pk"]
        indexes = [models.Index(fields=["visit", "assigned_at"], name="kit_assignment_visit")]

    def __str__(self) -> str:
        return f"Kit {self.kit.number} for {self.participant.study_id}"


class ReleaseKind(models.TextChoices):
    DAMAGED = "damaged", _("Kit damaged: replaced")
    LOST = "lost", _("Kit lost: replaced")
    NOT_GIVEN = "not_given", _("Injection not given: kit back to stock")


class KitRelease(Immutable):
    """The end of an assignment, with why. Written once."""

    assignment = models.OneToOneField(KitAssignment, on_delete=models.PROTECT,
                                      related_name="release")
    kind = models.CharField(max_length=10, choices=ReleaseKind.choices)
    reason = models.TextField()
    at = models.DateTimeField()
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")


class ResupplyRequest(models.Model):
    """A site's stock of an arm no longer covers its coming visits (or it ran out): kits of
    each arm to send. Raised once while open (a unique constraint); the supply manager and the
    depot are told by e-mail exactly once (claimed by one task, as the reminders are)."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="resupply_requests")
    raised_at = models.DateTimeField()
    # Arm code -> kits to send; stock and need when raised. Unblinded: never shown to a
    # blinded role (``trials.policy.can_see_kit_arms``).
    quantities = models.JSONField(default=dict)
    detail = models.JSONField(default=dict)
    stock_out = models.BooleanField(default=False, help_text=_(
        "Raised because a participant's kit could not be assigned."))
    claimed_by = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [models.UniqueConstraint(fields=["site"], condition=models.Q(
            closed_at__isnull=True), name="one_open_resupply_request_per_site")]

    def __str__(self) -> str:
        return f"Resupply request for {self.site.code}"


class Excursion(models.Model):
    """A temperature excursion reported by a site: its kits on site are quarantined (never
    assigned) until the supply manager releases them or has them destroyed."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="excursions")
    reported_at = models.DateTimeField()
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")
    description = models.TextField()
    kits = models.ManyToManyField(Kit, related_name="excursions")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=10, blank=True,
                                choices=[("release", _("Released: usable")),
                                         ("destroy", _("Not usable: to destroy"))])
    decision_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-reported_at"]
