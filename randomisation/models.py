"""Allocation lists, their slots, and the allocations made from them.

Concealment rests on three rules kept here and in ``services``:
- a list is generated from a recorded seed (or imported), then sealed: its canonical text's
  SHA-256 is stored and written to the audit log, and from then on nothing in it changes;
- slots are taken in sequence, per stratum, under a row lock on the stratum's counter, so two
  randomisations never take the same slot and never skip one;
- an allocation is immutable; a stratum recorded wrongly is corrected beside it, never in it.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from core.models import Immutable
from patients.models import Participant
from trials.models import Arm, ProtocolVersion, Trial


class ListStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active (sealed)")
    RETIRED = "retired", _("Retired")


class Purpose(models.TextChoices):
    """A test list serves a trial in test mode only, a live list a live trial only."""
    TEST = "test", _("Test (user acceptance)")
    LIVE = "live", _("Live")


class Method(models.TextChoices):
    PERMUTED_BLOCKS = "permuted_blocks", _("Stratified permuted blocks")
    MINIMISATION = "minimisation", _("Minimisation (Pocock–Simon)")


class AllocationList(models.Model):
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="allocation_lists")
    protocol_version = models.ForeignKey(ProtocolVersion, on_delete=models.PROTECT,
                                         related_name="+")
    number = models.PositiveIntegerField()
    method = models.CharField(max_length=20, choices=Method.choices)
    source = models.CharField(max_length=10, choices=[("generated", _("Generated")),
                                                      ("imported", _("Imported"))])
    seed = models.CharField(max_length=128, blank=True)
    parameters = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=ListStatus.choices, default=ListStatus.DRAFT)
    purpose = models.CharField(max_length=4, choices=Purpose.choices, default=Purpose.LIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                   related_name="+")
    sealed_at = models.DateTimeField(null=True, blank=True)
    sealed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    digest = models.CharField(max_length=64, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["trial", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "number"], name="allocation_list_number"),
            models.UniqueConstraint(fields=["trial", "purpose"],
                                    condition=models.Q(status="active"),
                                    name="one_active_list_per_trial_and_purpose"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.short_title} allocation list #{self.number} ({self.status})"


class Stratum(models.Model):
    """One stratum of a list, and the counter that hands out its slots in order.

    Randomisation locks this row (``select_for_update``) before taking ``next_sequence``: that
    lock, not a lock on the slots, is what makes concurrent randomisations take consecutive
    slots with no duplicate and no gap.
    """

    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT,
                                        related_name="strata")
    key = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    next_sequence = models.PositiveIntegerField(default=1)
    low_alert_sent_at = models.DateTimeField(null=True, blank=True)
    exhausted_alert_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["allocation_list", "key"]
        constraints = [models.UniqueConstraint(fields=["allocation_list", "key"],
                                               name="stratum_key")]

    def __str__(self) -> str:
        return self.key

    @property
    def remaining(self) -> int:
        return self.size - self.next_sequence + 1


class AllocationSlot(Immutable):
    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT,
                                        related_name="slots")
    stratum = models.ForeignKey(Stratum, on_delete=models.PROTECT, related_name="slots")
    sequence = models.PositiveIntegerField()
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="+")
    # Kit codes are unique in the trial (across list versions): denormalised trial for the
    # constraint. Empty in open-label trials.
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="+")
    kit_code = models.CharField(max_length=16, null=True, blank=True)
    block_number = models.PositiveIntegerField(null=True, blank=True)
    block_size = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["stratum", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["stratum", "sequence"], name="slot_sequence"),
            models.UniqueConstraint(fields=["trial", "kit_code"], name="slot_kit_code_in_trial"),
        ]

    def __str__(self) -> str:
        # Never the arm: slots are listed in places a blinded admin screen could show.
        return f"{self.stratum.key} #{self.sequence}"


class Allocation(Immutable):
    """A participant's randomisation. Written once, in the transaction that takes the slot."""

    participant = models.OneToOneField(Participant, on_delete=models.PROTECT,
                                       related_name="allocation")
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="allocations")
    allocation_list = models.ForeignKey(AllocationList, on_delete=models.PROTECT,
                                        related_name="allocations")
    slot = models.OneToOneField(AllocationSlot, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="allocation")
    stratum_key = models.CharField(max_length=255)
    strata = models.JSONField(help_text=_("Factor → level, as confirmed at randomisation."))
    arm = models.ForeignKey(Arm, on_delete=models.PROTECT, related_name="+")
    kit_code = models.CharField(max_length=16, blank=True)
    randomised_at = models.DateTimeField()
    randomised_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                      related_name="+")
    # The key the randomisation request carried (the form's hidden field, the API's
    # ``Idempotency-Key``): a retry with it answers this allocation instead of a second one.
    idempotency_key = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["trial", "randomised_at"]
        indexes = [models.Index(fields=["trial", "randomised_at"])]
        constraints = [
            models.UniqueConstraint(fields=["trial", "kit_code"], condition=~models.Q(kit_code=""),
                                    name="allocation_kit_code_in_trial"),
            models.UniqueConstraint(fields=["trial", "idempotency_key"],
                                    condition=~models.Q(idempotency_key=""),
                                    name="allocation_idempotency_key_in_trial"),
        ]

    def __str__(self) -> str:
        return f"Allocation of {self.participant.study_id}"


class EmergencyAllocation(Immutable):
    """An allocation made at a site from the sealed envelopes while the system was down,
    recorded afterwards. The envelopes are the active list printed one slot per envelope, so
    the envelope opened is the stratum's next slot: recording it consumes that slot, and the
    allocation beside this row carries the real time it was made (``made_at``)."""

    allocation = models.OneToOneField(Allocation, on_delete=models.PROTECT,
                                      related_name="emergency")
    slot_number = models.PositiveIntegerField()
    made_at = models.DateTimeField()
    made_by = models.CharField(max_length=200,
                               help_text=_("Who opened the envelope at the site."))
    reason = models.TextField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")

    def __str__(self) -> str:
        return f"Emergency allocation of {self.allocation.participant.study_id}"


class StratumCorrection(Immutable):
    """A stratification value recorded wrongly at randomisation, with its correct value.

    The allocation stands (intention to treat); reports flag the participant.
    """

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT,
                                   related_name="corrections")
    factor = models.CharField(max_length=64)
    recorded_level = models.CharField(max_length=64)
    correct_level = models.CharField(max_length=64)
    reason = models.TextField()
    corrected_at = models.DateTimeField(auto_now_add=True)
    corrected_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                     related_name="+")


class EmergencyUnblinding(Immutable):
    """One participant's arm revealed to one investigator, for a stated reason."""

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT,
                                   related_name="unblindings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="+")
    reason = models.TextField()
    at = models.DateTimeField(auto_now_add=True)


class SafetyUnblinding(Immutable):
    """One participant's arm revealed to one safety officer, for one SUSAR (pharmacovigilance:
    EU Reg. 536/2014 art. 42, ICH E2A III.C). Kept apart from ``EmergencyUnblinding``: the
    study team is not told, and the participant is not marked unblinded in their reports."""

    allocation = models.ForeignKey(Allocation, on_delete=models.PROTECT,
                                   related_name="safety_unblindings")
    report = models.ForeignKey("safety.SAEReport", on_delete=models.PROTECT,
                               related_name="unblindings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="+")
    reason = models.TextField()
    at = models.DateTimeField(auto_now_add=True)


class RandomisedInError(Immutable):
    """A participant randomised who should not have been (not eligible, no valid consent, a
    duplicate…), found after the fact. The allocation stands and the participant stays in the
    intention-to-treat population (ICH E9 §5.2.1: a randomised participant is analysed in the
    arm allocated); exports and the flow diagram flag them. Written once."""

    allocation = models.OneToOneField(Allocation, on_delete=models.PROTECT,
                                      related_name="in_error")
    reason = models.TextField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                                    related_name="+")

    def __str__(self) -> str:
        return f"{self.allocation.participant.study_id} randomised in error"
