"""Loading protocol files into the database.

``load_protocol`` is idempotent: the same content loads once. Changed content is an amendment:
a new ``ProtocolVersion`` is added and becomes current, the old one stays, and data captured
against the old version keeps pointing at it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit, limits
from core.dates import shown_instant
from core.reauth import password_confirmed

from . import policy
from .models import Arm, ProtocolVersion, Site, Trial
from .protocol import (ProtocolProblem, definition_digest, languages_of, localise,
                       protocol_warnings, read_protocol_file)

PROTOCOL_DIR = Path(__file__).resolve().parent / "protocols"


@dataclass(frozen=True)
class LoadResult:
    trial: Trial
    version: ProtocolVersion
    created: bool  # False when this exact content was already loaded
    warnings: tuple[ProtocolProblem, ...] = ()  # loaded all the same (``protocol_warnings``)

    def __str__(self) -> str:
        state = "loaded as" if self.created else "unchanged, already"
        return f"{self.trial.slug}: {state} version {self.version.label} (#{self.version.number})"


def shipped_protocol_files() -> list[Path]:
    return sorted(PROTOCOL_DIR.glob("*.yaml"))


def load_protocol(path: str | Path, *, by=None) -> LoadResult:
    """Validate ``path`` and store it. Raises ``ProtocolError`` and writes nothing if invalid."""
    return store_protocol(read_protocol_file(path), source_file=Path(path).name, by=by)


@transaction.atomic
def store_protocol(definition: dict, *, source_file: str, by=None) -> LoadResult:
    """Store a definition already validated by ``trials.protocol``; its ``protocol_warnings``
    come back with the result (the definition is stored all the same)."""
    digest = definition_digest(definition)
    warnings = tuple(protocol_warnings(definition))
    # The rows copied from the protocol (trial title, arm labels and descriptions) keep its
    # first language; pages that show them in the reader's language read the definition.
    rows = localise(definition, languages_of(definition)[0])
    info = rows["trial"]

    trial = Trial.objects.select_for_update().filter(slug=info["slug"]).first()
    if trial is not None:
        existing = trial.versions.filter(digest=digest).first()
        if existing is not None:
            # Loading an old file again does not roll the trial back: only new content counts.
            return LoadResult(trial, existing, created=False, warnings=warnings)

    fields = dict(
        title=info["title"],
        short_title=info["short_title"],
        registry_id=info.get("registry_id") or "",
        phase=info["phase"],
        masking=info["masking"],
        target_enrolment=info.get("target_enrolment"),  # None: not stated in the protocol
    )
    if trial is None:
        trial = Trial.objects.create(slug=info["slug"], **fields)
    else:
        for name, value in fields.items():
            setattr(trial, name, value)

    number = (trial.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = ProtocolVersion.objects.create(
        trial=trial,
        number=number,
        label=definition["version"],
        amendment_note=definition.get("amendment_note", ""),
        digest=digest,
        definition=definition,
        source_file=source_file,
        loaded_by=by if getattr(by, "is_authenticated", False) else None,
    )
    trial.current_version = version
    trial.save()
    _sync_sites(trial, definition["sites"])
    _sync_arms(trial, rows["arms"])
    audit.record(
        "protocol.loaded",
        f"{trial.short_title}: protocol version {version.label} loaded as #{number} "
        f"from {version.source_file} (sha256 {digest[:16]}…)",
        actor=by, trial=trial, obj=version, detail={"digest": digest},
    )
    return LoadResult(trial, version, created=True, warnings=warnings)


def _sync_sites(trial: Trial, sites: list[dict]) -> None:
    listed = set()
    for item in sites:
        listed.add(item["code"])
        Site.objects.update_or_create(
            trial=trial, code=item["code"],
            defaults=dict(name=item["name"], city=item.get("city", ""),
                          country=item.get("country", ""),
                          placeholder=item.get("placeholder", False), active=True),
        )
    trial.sites.exclude(code__in=listed).update(active=False)


def _sync_arms(trial: Trial, arms: list[dict]) -> None:
    for position, item in enumerate(arms):
        Arm.objects.update_or_create(
            trial=trial, code=item["code"],
            defaults=dict(label=item["label"], description=item.get("description", ""),
                          ratio=item["ratio"], position=position),
        )


@transaction.atomic
def unblind_trial(trial: Trial, *, by, reason: str, password: str, request=None) -> Trial:
    """Break a blinded trial's blind at its end: from then on every member sees the arms, as in
    an open-label trial (``Trial.is_blinded`` turns false, so ``policy.is_blinded_for`` does).

    Only the unblinded statistician (``Perm.MANAGE_ALLOCATION``) or a superuser, with a reason
    and the password typed again; once only, once the trial is locked (``trials.locks``);
    audited. Not a per-participant emergency
    unblinding (``randomisation.services.emergency_unblind``).
    """
    limits.REASON.check(reason, field="reason")
    trial = Trial.objects.select_for_update().get(pk=trial.pk)
    if not policy.has_perm(by, policy.Perm.MANAGE_ALLOCATION, trial):
        raise PermissionDenied(_("Only the trial's statistician may unblind the trial."))
    if trial.masking == "open":
        raise ValidationError(_("This trial is open-label: there is no blind to break."))
    if trial.unblinded_at is not None:
        raise ValidationError(_("This trial was already unblinded on %(when)s.") % {
            "when": shown_instant(trial.unblinded_at, zone=False)})
    if not trial.is_locked:
        # The blind is broken on final data only: the database lock comes first.
        raise ValidationError(_("The trial's data are not locked: the data manager locks the "
                                "trial before it is unblinded."))
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for unblinding the trial.")})
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    trial.unblinded_at = timezone.now()
    trial.save(update_fields=["unblinded_at"])
    # Audit-log text in English, as every governance entry.
    audit.record("trial.unblinded",
                 f"{trial.short_title}: blind broken at the end of the trial by "
                 f"{by.get_username()}; arms are now shown to every member. "
                 f"Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=trial)
    return trial


@transaction.atomic
def load_terminology(path: str | Path, *, code: str | None = None):
    """Check and store a terminology file (``trials.terminology``); raises
    ``TerminologyError`` and writes nothing when the file is bad. Idempotent by digest."""
    from .models import Term, Terminology
    from .terminology import read_terminology_file, store_terminology
    result = store_terminology(read_terminology_file(path, code=code),
                               terminology_model=Terminology, term_model=Term)
    if result.created:
        audit.record("terminology.loaded", f"{result}", detail={"digest": result.digest,
                                                                 "code": result.code})
    return result
