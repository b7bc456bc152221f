"""Trials as data: the trial, its protocol versions, sites, arms and who works on it.

The protocol file is the source of truth. ``ProtocolVersion`` keeps every version ever loaded,
verbatim, and is never rewritten; ``Trial``, ``Site`` and ``Arm`` are the rows other tables
point at, refreshed from the newest version (never deleted: a site dropped by an amendment is
only marked inactive, so data captured there keeps its site).
"""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import get_language, gettext_lazy as _

from core.history import HistoricalRecords

from .protocol import localise


# Parsed protocol definitions by (version id, language), and as stored under (version id,
# STORED). Protocol versions are never changed (see ``ProtocolVersion.save``), so a definition
# read once is valid for the life of the process; pages and the randomisation path read it
# without decoding the whole protocol each time, and each language costs no query more.
_DEFINITIONS: dict[tuple[int, str | None], dict[str, Any]] = {}
STORED = "<stored>"


def definition_of(version_id: int | None, *, first_language: bool = False) -> dict[str, Any]:
    """The protocol definition of a version as the reader sees it: every text in the active
    language (``get_language()``, the protocol's first language when it has not that one),
    the author's notes left out (``trials.protocol.localise``). ``first_language``: in the
    protocol's first language whoever reads, for text copied into rows (a visit's label).
    Read once per process, localised once per language."""
    if version_id is None:
        return {}
    key = (version_id, None if first_language else get_language())
    definition = _DEFINITIONS.get(key)
    if definition is None:
        stored = _DEFINITIONS.get((version_id, STORED))
        if stored is None:
            stored = ProtocolVersion.objects.values_list("definition", flat=True).get(
                pk=version_id)
        if len(_DEFINITIONS) > 256:
            _DEFINITIONS.clear()
        _DEFINITIONS[(version_id, STORED)] = stored
        definition = _DEFINITIONS[key] = localise(stored, key[1])
    return definition


def crf_of(version_id: int | None, code: str) -> dict[str, Any] | None:
    return next((c for c in definition_of(version_id).get("crfs", []) if c["code"] == code), None)


class DataState(models.TextChoices):
    """Where a casebook, a site or a trial stands on the way to the final database lock.

    *Frozen*: no data may change (entry, corrections, status changes, randomisation,
    dispensing), but queries may still be raised, answered (without a correction), closed, and
    CRFs signed and locked form by form. *Locked*: nothing changes at all. Each step back is an
    audited unlock (``trials.locks``)."""
    OPEN = "open", _("Open")
    FROZEN = "frozen", _("Frozen")
    LOCKED = "locked", _("Locked")


class Lockable(models.Model):
    """The freeze and lock of a trial, a site or a participant's casebook (``trials.locks``).
    A lock comes after a freeze: a locked row keeps its ``frozen_at``."""

    frozen_at = models.DateTimeField(null=True, blank=True)
    frozen_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                  on_delete=models.PROTECT, related_name="+")

    class Meta:
        abstract = True

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    @property
    def is_frozen(self) -> bool:
        """Frozen or locked: in both, no data may change."""
        return self.frozen_at is not None

    @property
    def data_state(self) -> str:
        if self.locked_at is not None:
            return DataState.LOCKED
        return DataState.FROZEN if self.frozen_at is not None else DataState.OPEN


class Masking(models.TextChoices):
    OPEN = "open", _("Open label")
    SINGLE_BLIND = "single-blind", _("Single blind")
    DOUBLE_BLIND = "double-blind", _("Double blind")


class Trial(Lockable):
    slug = models.SlugField(unique=True)
    title = models.TextField()
    short_title = models.CharField(max_length=80)
    registry_id = models.CharField(max_length=40, blank=True)
    phase = models.CharField(max_length=8)
    masking = models.CharField(max_length=16, choices=Masking.choices)
    # Null when the protocol does not state the planned enrolment: no target, no projection.
    target_enrolment = models.PositiveIntegerField(null=True, blank=True)
    current_version = models.ForeignKey(
        "ProtocolVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Set by the statistician when the trial's blind is broken at its end: from then on arms
    # are shown to every role, as in an open-label trial.
    unblinded_at = models.DateTimeField(null=True, blank=True)
    # Null while the trial runs in test mode (user acceptance, on a test allocation list, its
    # participants marked test and left out of every report); set once, irreversibly, when the
    # statistician or data manager takes it live.
    live_since = models.DateTimeField(null=True, blank=True)
    live_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["short_title"]

    def __str__(self) -> str:
        return self.short_title

    @property
    def is_blinded(self) -> bool:
        return self.masking != Masking.OPEN and self.unblinded_at is None

    @property
    def is_test_mode(self) -> bool:
        return self.live_since is None

    @property
    def definition(self) -> dict[str, Any]:
        """The current protocol version's definition (treat it as read-only)."""
        return definition_of(self.current_version_id)


class ProtocolVersion(models.Model):
    """One loaded protocol file, kept verbatim. Amendments add rows; none is ever changed."""

    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField(help_text=_("1 for the first version loaded, then 2, 3…"))
    label = models.CharField(max_length=32, help_text=_("The version the protocol file states."))
    amendment_note = models.TextField(blank=True)
    digest = models.CharField(max_length=64, help_text=_("SHA-256 of the canonical definition."))
    definition = models.JSONField()
    source_file = models.CharField(max_length=255)
    loaded_at = models.DateTimeField(auto_now_add=True)
    loaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["trial", "number"]
        constraints = [
            models.UniqueConstraint(fields=["trial", "number"], name="protocol_version_number"),
            models.UniqueConstraint(fields=["trial", "digest"], name="protocol_version_digest"),
        ]

    def __str__(self) -> str:
        return f"{self.trial.short_title} v{self.label} (#{self.number})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("A protocol version is never changed; load an amendment instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("A protocol version is never deleted.")

    def crf(self, code: str) -> dict[str, Any] | None:
        return crf_of(self.pk, code)


class Site(Lockable):
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="sites")
    code = models.CharField(max_length=64)
    name = models.CharField(max_length=255)
    city = models.CharField(max_length=120, blank=True)
    country = models.CharField(max_length=60, blank=True)
    placeholder = models.BooleanField(
        default=False, help_text=_("The protocol does not name this site yet.")
    )
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["trial", "code"]
        constraints = [models.UniqueConstraint(fields=["trial", "code"], name="site_code")]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class Arm(models.Model):
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="arms")
    code = models.CharField(max_length=64)
    label = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    ratio = models.PositiveIntegerField()
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["trial", "position"]
        constraints = [models.UniqueConstraint(fields=["trial", "code"], name="arm_code")]

    def __str__(self) -> str:
        return f"{self.code} — {self.label}"


class Role(models.TextChoices):
    INVESTIGATOR = "investigator", _("Investigator")
    COORDINATOR = "coordinator", _("Coordinator")
    DATA_MANAGER = "data_manager", _("Data manager")
    SPONSOR = "sponsor", _("Sponsor (study staff)")
    MONITOR = "monitor", _("Monitor (clinical research associate)")
    STATISTICIAN = "statistician", _("Statistician (unblinded)")
    SAFETY_OFFICER = "safety_officer", _("Safety officer (pharmacovigilance)")
    SUPPLY_MANAGER = "supply_manager", _("Supply manager (unblinded)")
    DMC = "dmc", _("Data monitoring committee member")


class Membership(models.Model):
    """A user's role in a trial, at one site or (``site`` empty) at all its sites."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="memberships"
    )
    trial = models.ForeignKey(Trial, on_delete=models.PROTECT, related_name="memberships")
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.PROTECT, related_name="memberships",
        help_text=_("Leave empty for all sites of the trial."),
    )
    role = models.CharField(max_length=20, choices=Role.choices)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["trial", "user", "role"]
        constraints = [
            models.UniqueConstraint(fields=["user", "trial", "site", "role"],
                                    name="membership_unique"),
            models.UniqueConstraint(fields=["user", "trial", "role"],
                                    condition=models.Q(site__isnull=True),
                                    name="membership_unique_all_sites"),
        ]

    def __str__(self) -> str:
        where = self.site.code if self.site_id else "all sites"
        return f"{self.user} — {self.get_role_display()} — {self.trial} ({where})"

    def clean(self) -> None:
        if self.site_id and self.site.trial_id != self.trial_id:
            raise ValidationError({"site": _("This site belongs to another trial.")})


class Terminology(models.Model):
    """An adverse-event term list (NCI-CTCAE v4.03), loaded from ``trials/reference/`` by
    ``manage.py load_ctcae`` (``trials.terminology``); ``digest`` is the file's sha256."""

    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    source = models.CharField(max_length=300)
    digest = models.CharField(max_length=64)
    loaded_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "terminologies"

    def __str__(self) -> str:
        return self.name


class Term(models.Model):
    """One term of a terminology: its MedDRA code, system organ class and the grades it has
    (``grades``: "1".."5" -> that grade's definition, only the grades the term defines)."""

    terminology = models.ForeignKey(Terminology, on_delete=models.CASCADE, related_name="terms")
    meddra_code = models.CharField(max_length=8)
    soc = models.CharField(max_length=100)
    label = models.CharField(max_length=200)
    definition = models.TextField(blank=True)
    grades = models.JSONField()
    order = models.PositiveIntegerField()  # as the NCI lists them: by SOC, then term

    class Meta:
        ordering = ["terminology", "order"]
        constraints = [
            models.UniqueConstraint(fields=["terminology", "meddra_code"],
                                    name="term_unique_meddra_code"),
            models.UniqueConstraint(fields=["terminology", "label"], name="term_unique_label"),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.meddra_code})"
