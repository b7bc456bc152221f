"""Allocation lists and randomisation: every state change of this app, in plain sight.

``randomise`` is the one entry point that allocates a participant. In one transaction it
checks the participant, derives the stratum from their recorded data, takes the stratum's next
slot under a row lock, writes the immutable ``Allocation``, moves the participant to
"randomised", and creates their visit schedule.

Languages: what a user reads now (errors, form messages) is translated with ``gettext`` in the
language of the request. What is stored (audit-log messages) stays in English on purpose: the
record is kept in one language, and whoever reads it later may not read the writer's. E-mails
are rendered in each recipient's own language (``Profile.language``), see ``_notify``.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone, translation
from django.utils.translation import gettext as _, ngettext

from core import audit, limits, notify, outcome
from core.dates import shown_instant
from core.reauth import password_confirmed
from crfs import eligibility
from crfs.facts import fact_records
from crfs.models import CRFRecord
from patients.consent import consent_in_force, reconsent_from
from patients import status as participant_status
from patients.locks import refuse_change
from patients.models import Participant, Status
from safety import selectors as safety_selectors
from scheduling.services import create_schedule
from supply import services as supply
from trials import policy
from trials.models import Membership, Role, Trial
from trials.policy import Perm

from . import generator
from .models import (Allocation, AllocationList, AllocationSlot, EmergencyAllocation,
                     EmergencyUnblinding, ListStatus,
                     Method, Purpose, RandomisedInError, SafetyUnblinding, Stratum,
                     StratumCorrection)


class RandomisationError(ValidationError):
    """A randomisation that cannot happen; nothing has been written."""


# ---------------------------------------------------------------------------- strata


def stratification(trial: Trial) -> list[tuple[str, list[str]]]:
    """The trial's stratification factors and their level codes, site first when stratified."""
    definition = trial.definition
    factors: list[tuple[str, list[str]]] = []
    if definition["randomisation"].get("stratify_by_site"):
        factors.append(("site", [s.code for s in trial.sites.filter(active=True)]))
    for factor in definition.get("stratification_factors", []):
        factors.append((factor["code"], [lvl["code"] for lvl in factor["levels"]]))
    return factors


def participant_strata(participant: Participant, record=None) -> dict[str, str]:
    """Factor → level for ``participant``, read from the CRF fields the protocol names, in
    stratum-key order (site first when stratified). ``record``: the eligibility CRF record, if
    the caller already has it.

    Raises ``RandomisationError`` naming the missing answer when one is not recorded.
    """
    definition = participant.definition
    strata: dict[str, str] = {}
    if definition["randomisation"].get("stratify_by_site"):
        strata["site"] = participant.site.code
    record = record if record is not None else eligibility.eligibility_record(participant)
    for factor in definition.get("stratification_factors", []):
        source = factor["source"]
        data = record.data if record is not None and source["crf"] == record.crf_code else \
            _crf_data(participant, source["crf"])
        value = data.get(source["field"])
        level = next((lvl["code"] for lvl in factor["levels"]
                      if any(_same(value, v) for v in lvl["values"])), None)
        if level is None:
            names = {"factor": factor["label"], "field": f"{source['crf']}.{source['field']}"}
            if value is None:
                message = _("The stratification factor “%(factor)s” cannot be derived: "
                            "%(field)s is not recorded.") % names
            else:
                message = _("The stratification factor “%(factor)s” cannot be derived: "
                            "%(field)s is %(value)s, which matches no level.") % {
                    **names, "value": repr(value)}
            raise RandomisationError(message, code="strata_missing")
        strata[factor["code"]] = level
    return strata


def _crf_data(participant: Participant, crf_code: str) -> dict:
    record = (CRFRecord.objects.filter(participant=participant, crf_code=crf_code)
              .order_by("-created_at").first())
    return record.data if record else {}


def _same(a, b) -> bool:
    return str(a) == str(b)


def stratum_key_of(strata: dict[str, str]) -> str:
    """The key of the stratum, from ``participant_strata`` (already in factor order)."""
    return generator.stratum_key(list(strata.items()))


# ---------------------------------------------------------------------------- lists


def _require(user, perm: Perm, trial: Trial, site=None) -> None:
    if not policy.has_perm(user, perm, trial, site):
        # The 403 page shows no message; management commands print this one.
        messages = {
            Perm.MANAGE_ALLOCATION: _("You may not manage allocation in this trial."),
            Perm.RANDOMISE: _("You may not randomise in this trial."),
            Perm.EMERGENCY_UNBLIND: _("You may not emergency unblind in this trial."),
        }
        raise PermissionDenied(messages.get(perm) or _("You may not %(action)s in this trial.")
                               % {"action": perm.value.replace("_", " ")})


def _next_number(trial: Trial) -> int:
    return (trial.allocation_lists.aggregate(n=Max("number"))["n"] or 0) + 1


def _kit_length(trial: Trial) -> int | None:
    """The length of the kit codes the allocation list carries, if it carries any: blinded
    trials without a kit list (``supply``) only; with one, kits are assigned from the stock."""
    if trial.masking == "open":
        return None
    return trial.definition["randomisation"].get("kit_code_length")


def mode_purpose(trial: Trial) -> str:
    """The purpose of the lists ``trial`` randomises from now: test until it goes live."""
    return Purpose.TEST if trial.is_test_mode else Purpose.LIVE


def _purpose(trial: Trial, purpose: str | None) -> str:
    """``purpose`` checked (the trial's current mode's when None)."""
    if purpose in (None, ""):
        return mode_purpose(trial)
    if purpose not in Purpose.values:
        raise ValidationError({"purpose": _("Purpose %(purpose)s is not one of: %(choices)s.") % {
            "purpose": repr(purpose), "choices": ", ".join(Purpose.values)}})
    if purpose == Purpose.TEST and not trial.is_test_mode:
        raise ValidationError({"purpose": _("The trial is live: a test list can no longer be "
                                            "made or used.")})
    return purpose


@transaction.atomic
def generate_list(trial: Trial, *, by, seed: str | None = None,
                  slots_per_stratum: int | None = None,
                  purpose: str | None = None) -> AllocationList:
    """A draft list from ``seed`` (a fresh one from ``secrets`` if none): same seed and
    parameters give the same list, byte for byte. ``purpose``: ``test`` or ``live`` (the
    trial's current mode's when None)."""
    _require(by, Perm.MANAGE_ALLOCATION, trial)
    purpose = _purpose(trial, purpose)
    rnd = trial.definition["randomisation"]
    seed = (seed or "").strip() or generator.new_seed()
    arms = list(trial.arms.all())
    arm_ratios = [(a.code, a.ratio) for a in arms]
    factors = stratification(trial)
    keys = generator.strata_keys(factors)
    method = rnd["method"]
    parameters = {"method": method, "arms": arm_ratios, "factors": factors,
                  "protocol_version": trial.current_version.number}
    alist = AllocationList(trial=trial, protocol_version=trial.current_version,
                           number=_next_number(trial), method=method, source="generated",
                           seed=seed, created_by=by, purpose=purpose)
    if method == Method.MINIMISATION:
        parameters["minimisation"] = rnd["minimisation"]
        alist.parameters = parameters
        alist.save()
        return alist

    size = slots_per_stratum or rnd.get("slots_per_stratum", 50)
    if size < 1:
        raise ValidationError({"slots_per_stratum": _("Give at least 1 slot per stratum.")})
    parameters.update(block_sizes=rnd["block_sizes"], slots_per_stratum=size)
    alist.parameters = parameters
    alist.save()
    planned = generator.generate_list(seed, arm_ratios, rnd["block_sizes"], keys, size)
    total = sum(len(slots) for slots in planned.values())
    kit_length = _kit_length(trial)
    kits = iter(generator.kit_codes(seed, total, kit_length, taken=_taken_kits(trial))
                if kit_length else [])
    by_code = {a.code: a for a in arms}
    for key in keys:
        stratum = Stratum.objects.create(allocation_list=alist, key=key, size=len(planned[key]))
        AllocationSlot.objects.bulk_create([
            AllocationSlot(allocation_list=alist, stratum=stratum, sequence=s.sequence,
                           arm=by_code[s.arm], trial=trial, kit_code=next(kits, None),
                           block_number=s.block_number, block_size=s.block_size)
            for s in planned[key]
        ])
    # Audit-log messages stay in English (see the module docstring).
    audit.record("allocation_list.generated",
                 f"Allocation list #{alist.number} ({purpose}) generated as a draft "
                 f"({len(keys)} strata, {total} slots).",
                 actor=by, trial=trial, obj=alist)
    return alist


def _taken_kits(trial: Trial) -> set[str]:
    return set(AllocationSlot.objects.filter(trial=trial).exclude(kit_code=None)
               .values_list("kit_code", flat=True)) | \
        set(Allocation.objects.filter(trial=trial).exclude(kit_code="")
            .values_list("kit_code", flat=True))


class ListImportError(ValidationError):
    """An allocation table refused whole; ``rows`` are (row number, reason)."""

    def __init__(self, rows: list[tuple[int, str]]):
        self.rows = rows
        super().__init__([_("row %(n)s: %(reason)s") % {"n": n, "reason": reason} if n else reason
                          for n, reason in rows])


@transaction.atomic
def import_list(trial: Trial, content: bytes | str, *, by, note: str = "",
                purpose: str | None = None) -> AllocationList:
    """A draft list from a CSV allocation table with columns stratum, sequence, arm, kit_code.

    Every row is checked: known stratum and arm, sequences 1, 2, 3… without gap or repeat in
    each stratum, kit codes present (blinded trial), well-formed and unique in the trial. Any
    problem refuses the whole file, listing every bad row.
    """
    limits.NOTE.check(note, field="note")
    _require(by, Perm.MANAGE_ALLOCATION, trial)
    purpose = _purpose(trial, purpose)
    if trial.definition["randomisation"]["method"] != Method.PERMUTED_BLOCKS:
        raise ListImportError([(0, _("This trial allocates by minimisation: there is no list "
                                     "to import."))])
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ListImportError([(0, _("The file is not UTF-8 text."))])
    reader = csv.DictReader(io.StringIO(content))
    expected = ["stratum", "sequence", "arm", "kit_code"]
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames][:3] != expected[:3]:
        found = ",".join(reader.fieldnames or [])
        if found:
            problem = _("the header must be: %(expected)s (found: %(found)s)") % {
                "expected": ",".join(expected), "found": found}
        else:
            problem = _("the header must be: %(expected)s (found: nothing)") % {
                "expected": ",".join(expected)}
        raise ListImportError([(1, problem)])
    keys = set(generator.strata_keys(stratification(trial)))
    arms = {a.code: a for a in trial.arms.all()}
    kit_length = _kit_length(trial)
    taken = _taken_kits(trial)
    problems: list[tuple[int, str]] = []
    rows: list[tuple[int, str, int, str, str | None]] = []
    seen_kits: dict[str, int] = {}
    for n, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        stratum, arm, kit = row.get("stratum", ""), row.get("arm", ""), row.get("kit_code", "")
        if stratum not in keys:
            problems.append((n, _("unknown stratum %(stratum)s") % {"stratum": repr(stratum)}))
        if arm not in arms:
            problems.append((n, _("unknown arm %(arm)s (arms: %(arms)s)") % {
                "arm": repr(arm), "arms": ", ".join(arms)}))
        try:
            sequence = int(row.get("sequence", ""))
            if sequence < 1:
                raise ValueError
        except ValueError:
            problems.append((n, _("sequence %(sequence)s is not a positive whole number") % {
                "sequence": repr(row.get("sequence"))}))
            sequence = None
        if kit_length and not kit:
            problems.append((n, _("kit_code is missing (this trial is blinded)")))
        if kit and not kit_length:
            problems.append((n, _("kit_code must be empty: kits come from the kit list "
                                  "(supply), or the trial is open label")))
        elif kit:
            if set(kit) - set(generator.KIT_ALPHABET) or (kit_length and len(kit) != kit_length):
                problems.append((n, _("kit code %(kit)s must be %(length)s characters from "
                                      "%(alphabet)s") % {"kit": repr(kit), "length": kit_length,
                                                         "alphabet": generator.KIT_ALPHABET}))
            if kit in seen_kits:
                problems.append((n, _("kit code %(kit)s repeats row %(row)s") % {
                    "kit": repr(kit), "row": seen_kits[kit]}))
            elif kit in taken:
                problems.append((n, _("kit code %(kit)s is already used in this trial") % {
                    "kit": repr(kit)}))
            seen_kits.setdefault(kit, n)
        if sequence is not None:
            rows.append((n, stratum, sequence, arm, kit or None))
    if not rows and not problems:
        problems.append((0, _("The file has no rows.")))
    by_stratum: dict[str, list[tuple[int, int]]] = {}
    for n, stratum, sequence, *_rest in rows:
        by_stratum.setdefault(stratum, []).append((sequence, n))
    for stratum, seqs in sorted(by_stratum.items()):
        seqs.sort()
        for expected_seq, (sequence, n) in enumerate(seqs, start=1):
            if sequence != expected_seq:
                problems.append((n, _("stratum %(stratum)s: sequence %(sequence)s where "
                                      "%(expected)s was expected (sequences must run 1, 2, 3… "
                                      "without gap or repeat)") % {
                    "stratum": repr(stratum), "sequence": sequence, "expected": expected_seq}))
                break
    if problems:
        raise ListImportError(sorted(problems))

    alist = AllocationList.objects.create(
        trial=trial, protocol_version=trial.current_version, number=_next_number(trial),
        method=Method.PERMUTED_BLOCKS, source="imported", created_by=by, note=note,
        purpose=purpose,
        parameters={"method": "permuted_blocks", "imported_rows": len(rows),
                    "factors": stratification(trial)})
    strata = {key: Stratum.objects.create(allocation_list=alist, key=key,
                                          size=len(by_stratum[key]))
              for key in sorted(by_stratum)}
    AllocationSlot.objects.bulk_create([
        AllocationSlot(allocation_list=alist, stratum=strata[stratum], sequence=sequence,
                       arm=arms[arm], trial=trial, kit_code=kit)
        for _n, stratum, sequence, arm, kit in sorted(rows, key=lambda r: (r[1], r[2]))
    ])
    audit.record("allocation_list.imported",
                 f"Allocation list #{alist.number} ({purpose}) imported as a draft "
                 f"({len(rows)} rows).",
                 actor=by, trial=trial, obj=alist)
    return alist


def canonical_rows(alist: AllocationList):
    return [
        (key, seq, arm, kit or "", block or 0, size or 0)
        for key, seq, arm, kit, block, size in AllocationSlot.objects
        .filter(allocation_list=alist).order_by("stratum__key", "sequence")
        .values_list("stratum__key", "sequence", "arm__code", "kit_code", "block_number",
                     "block_size")
    ]


def canonical_header(alist: AllocationList) -> dict:
    header = {"trial": alist.trial.slug, "list": alist.number, "method": alist.method,
              "source": alist.source, "seed": alist.seed, "parameters": alist.parameters}
    # A test list's purpose is sealed with it (a live list's header is as it always was, so
    # lists sealed before test mode existed verify as before): changing it breaks the seal.
    if alist.purpose != Purpose.LIVE:
        header["purpose"] = alist.purpose
    return header


def compute_digest(alist: AllocationList) -> str:
    return generator.list_digest(canonical_header(alist), canonical_rows(alist))


@transaction.atomic
def seal_and_activate(alist: AllocationList, *, by) -> AllocationList:
    """Freeze a draft list, store its SHA-256, log it, and make it the trial's active list.

    The previously active list, if any, is retired: randomisation continues on the new one.
    """
    _require(by, Perm.MANAGE_ALLOCATION, alist.trial)
    alist = AllocationList.objects.select_for_update().get(pk=alist.pk)
    if alist.status != ListStatus.DRAFT:
        refusals = {
            ListStatus.ACTIVE: _("List #%(n)s is active: only a draft can be sealed."),
            ListStatus.RETIRED: _("List #%(n)s is retired: only a draft can be sealed."),
        }
        raise ValidationError(refusals.get(alist.status, _(
            "List #%(n)s is not a draft: only a draft can be sealed.")) % {"n": alist.number})
    if alist.protocol_version_id != alist.trial.current_version_id:
        raise ValidationError(_("This list was made for an older protocol version; generate a "
                                "new one."))
    if alist.purpose == Purpose.TEST and not Trial.objects.get(pk=alist.trial_id).is_test_mode:
        raise ValidationError(_("List #%(n)s is a test list and the trial is live: a test list "
                                "can no longer be sealed.") % {"n": alist.number})
    now = timezone.now()
    # A test list and a live list may both be active: the trial's mode chooses between them.
    previous = list(AllocationList.objects.select_for_update()
                    .filter(trial=alist.trial, purpose=alist.purpose, status=ListStatus.ACTIVE))
    for old in previous:
        AllocationList.objects.filter(pk=old.pk).update(status=ListStatus.RETIRED, retired_at=now)
        audit.record("allocation_list.retired",
                     f"Allocation list #{old.number} retired, replaced by #{alist.number}.",
                     actor=by, trial=alist.trial, obj=old)
    digest = compute_digest(alist)
    AllocationList.objects.filter(pk=alist.pk).update(
        status=ListStatus.ACTIVE, sealed_at=now, sealed_by=by, digest=digest)
    alist.refresh_from_db()
    audit.record("allocation_list.sealed",
                 f"Allocation list #{alist.number} sealed and activated; SHA-256 {digest}.",
                 actor=by, trial=alist.trial, obj=alist, detail={"sha256": digest})
    return alist


@dataclass(frozen=True)
class AllocationProblem:
    """An allocation that disagrees with its list: the participant and what is wrong."""
    study_id: str
    problem: str

    def __str__(self) -> str:
        return f"{self.study_id}: {self.problem}"


@dataclass(frozen=True)
class Verification:
    allocation_list: AllocationList
    stored: str
    computed: str
    problems: tuple[AllocationProblem, ...] = ()

    @property
    def seal_ok(self) -> bool:
        return bool(self.stored) and self.stored == self.computed

    @property
    def ok(self) -> bool:
        return self.seal_ok and not self.problems


def verify_list(alist: AllocationList) -> Verification:
    """The list against its seal (the digest recomputed from the stored slots), and every
    allocation made from it against its slot (``check_allocations``)."""
    return Verification(alist, alist.digest, compute_digest(alist),
                        tuple(check_allocations(alist)))


def check_allocations(alist: AllocationList) -> list[AllocationProblem]:
    """Every allocation of ``alist`` against the slot it took: the same arm, kit code (when the
    slot carries one), stratum (the slot's, and the one its recorded strata give) and list;
    and the order: in each stratum the slots taken are exactly 1, 2, 3… up to the counter,
    each by one allocation, made in that order. Allocations by minimisation have no slot: only
    their stratum key is checked. (Stored English: the report is the command's and the page's.)
    """
    problems: list[AllocationProblem] = []
    rows = (Allocation.objects.filter(allocation_list=alist)
            .select_related("participant", "arm", "slot__arm", "slot__stratum")
            .order_by("pk"))
    taken: dict[int, list[tuple[int, Allocation]]] = {}
    for a in rows:
        sid = a.participant.study_id

        def report(problem: str) -> None:
            problems.append(AllocationProblem(sid, problem))

        if a.stratum_key != stratum_key_of(a.strata):
            report(f"stratum {a.stratum_key} does not match the recorded strata "
                   f"({stratum_key_of(a.strata)})")
        slot = a.slot
        if slot is None:
            if alist.method != Method.MINIMISATION:
                report("no slot, in a list of slots")
            continue
        if slot.allocation_list_id != alist.pk:
            report(f"its slot belongs to another list (#{slot.allocation_list_id})")
        if slot.arm_id != a.arm_id:
            # Never the arms' codes here: the page shows it to the statistician only, but the
            # command's output may travel.
            report(f"arm differs from slot {slot.stratum.key} #{slot.sequence}")
        if slot.kit_code and slot.kit_code != a.kit_code:
            report(f"kit code {a.kit_code or '(none)'} differs from slot {slot.stratum.key} "
                   f"#{slot.sequence} ({slot.kit_code})")
        if slot.stratum.key != a.stratum_key:
            report(f"stratum {a.stratum_key} differs from its slot's ({slot.stratum.key} "
                   f"#{slot.sequence})")
        taken.setdefault(slot.stratum_id, []).append((slot.sequence, a))
    for stratum in alist.strata.all():
        used = taken.get(stratum.pk, [])  # in the order written
        below_counter = set(range(1, stratum.next_sequence))
        for seq, a in used:
            if seq not in below_counter:
                problems.append(AllocationProblem(a.participant.study_id, (
                    f"took slot {stratum.key} #{seq}, beyond the stratum's counter (next slot "
                    f"#{stratum.next_sequence})")))
        missing = sorted(below_counter - {seq for seq, _a in used})
        if missing:
            problems.append(AllocationProblem("-", (
                f"stratum {stratum.key}: slot(s) {', '.join(f'#{n}' for n in missing)} below "
                f"the counter taken by no allocation")))
        for (seq, a), (before, _b) in zip(used[1:], used[:-1]):
            if seq < before:
                problems.append(AllocationProblem(a.participant.study_id, (
                    f"took slot {stratum.key} #{seq} after slot #{before} was taken")))
    return problems


def active_list(trial: Trial, purpose: str | None = None) -> AllocationList | None:
    """The sealed list ``trial`` randomises from for ``purpose`` (its current mode's when
    None)."""
    return AllocationList.objects.filter(trial=trial, status=ListStatus.ACTIVE,
                                         purpose=purpose or mode_purpose(trial)).first()


# ---------------------------------------------------------------------------- randomise


def check_can_randomise(participant: Participant, record=None) -> eligibility.Eligibility:
    """Raise ``RandomisationError`` with the first reason ``participant`` cannot be randomised.

    ``record``: the eligibility CRF record, if the caller already has it. The participant's
    status is the source of truth for "already randomised" (the one-to-one constraint on the
    allocation guards it in the database).
    """
    who = {"id": participant.study_id}
    if participant.is_randomised:
        raise RandomisationError(_("%(id)s is already randomised.") % who,
                                 code="already_randomised")
    if participant.status == Status.SCREEN_FAILED:
        # The criteria's codes and texts are the protocol's own words.
        failed = "; ".join(f"{c['code']} {c['text']}"
                           for c in eligibility.evaluate(participant, record).failed)
        raise RandomisationError(_("%(id)s is a screen failure (criteria not met: "
                                   "%(criteria)s).") % {**who, "criteria": failed},
                                 code="not_eligible")
    if participant.consent_date is None:
        raise RandomisationError(_("%(id)s has no recorded informed consent.") % who,
                                 code="not_consented")
    if participant.consent_version in reconsent_from(participant.trial.definition):
        # An amendment asks those who signed this form to sign the new one (issue 17): nobody
        # is randomised on a consent the protocol has withdrawn.
        raise RandomisationError(_(
            "%(id)s signed consent form %(version)s, which the current amendment asks to "
            "re-consent: record their consent to form %(new)s first.") % {
                **who, "version": participant.consent_version,
                "new": consent_in_force(participant.trial.definition)},
            code="reconsent_pending")
    result = eligibility.evaluate(participant, record)
    if not result.complete:
        if result.unanswered:
            message = _("Eligibility of %(id)s is not complete (unanswered: %(fields)s).") % {
                **who, "fields": ", ".join(result.unanswered)}
        else:
            message = _("Eligibility of %(id)s is not complete (the eligibility form is not "
                        "completed).") % who
        raise RandomisationError(message, code="eligibility_incomplete")
    if not result.met:
        # The criteria's codes and texts are the protocol's own words.
        failed = "; ".join(f"{c['code']} {c['text']}" for c in result.failed)
        raise RandomisationError(_("%(id)s is not eligible: %(criteria)s.") % {
            **who, "criteria": failed}, code="not_eligible")
    # The confirmation is read here, not from ``record`` (the randomisation passes the answers
    # only): the signatures and the content they must still match.
    if (eligibility.confirmation_required(participant)
            and eligibility.confirmation_of(participant) is None):
        raise RandomisationError(
            _("Eligibility of %(id)s is awaiting an investigator's confirmation: an "
              "investigator of the site must confirm it (e-signature) before "
              "randomisation; a change of the eligibility form since voids an earlier "
              "confirmation.") % who, code="eligibility_unconfirmed")
    return result


KEY_MAX_LENGTH = 64
KEY_CONFLICTS = ("key_other_user", "key_other_participant")


def clean_key(key) -> str:
    """A randomisation request's key, stripped; ``RandomisationError`` (field ``key``) when it
    is not 1 to 64 printable ASCII characters without spaces (a UUID fits)."""
    key = (key or "").strip() if isinstance(key, str) else key
    if key in ("", None):
        return ""
    if (not isinstance(key, str) or len(key) > KEY_MAX_LENGTH
            or not all(33 <= ord(c) <= 126 for c in key)):
        error = RandomisationError({"key": [_(
            "The randomisation key must be 1 to %(n)s printable characters without spaces "
            "(a UUID, for example).") % {"n": KEY_MAX_LENGTH}]})
        error.code = "bad_key"
        raise error
    return key


def randomise(participant: Participant, *, by, confirmed_strata: dict[str, str] | None = None,
              key: str = "", at=None) -> Allocation:
    """Allocate ``participant``. Raises ``RandomisationError`` (nothing written) when it cannot.

    ``confirmed_strata`` are the values shown to the coordinator for confirmation: if the
    recorded data changed since, the randomisation is refused rather than made on other strata.

    ``key``: the request's idempotency key (the form's hidden field, the API's
    ``Idempotency-Key``), stored with the allocation, unique in the trial. A retry with the
    same key by the same user answers the allocation already made (``allocation.replayed`` is
    then True), nothing new is written; the key of another user, or the same key for another
    participant, is refused (codes ``key_other_user``, ``key_other_participant``).

    The transaction is committed by ``core.outcome.atomic_commit``: a connection lost during
    the COMMIT raises ``CommitOutcomeUnknown`` (the answer then says the outcome is unknown,
    and a retry with the key tells).

    ``at``: the time the allocation is dated, now unless given; only the demo's past data
    (and tests) give one: the pages and the API never do.
    """
    trial = participant.trial
    _require(by, Perm.RANDOMISE, trial, participant.site)
    key = clean_key(key)
    try:
        return outcome.atomic_commit(_randomise, participant, trial, by, confirmed_strata, key,
                                     at)
    except IntegrityError:
        # The one-allocation-per-participant constraint, or the key's: another request won
        # the race. If it was this one's retry, answer what it made.
        if key:
            previous = _previous_with_key(trial, key)
            if previous is not None:
                return _replay(previous, participant, by)
        raise RandomisationError(_("%(id)s is already randomised.") % {"id": participant.study_id},
                                 code="already_randomised")
    except RandomisationError as exc:
        if exc.code == "list_exhausted":
            _alert_exhausted(exc.params["list_id"], exc.params["key"])
        raise
    except supply.SupplyError as exc:
        # Rolled back: nobody was randomised, and the supply manager hears of the stock-out.
        if exc.code == "stock_out":
            supply.alert_stock_out(exc)
        raise RandomisationError(exc.messages[0], code=exc.code) from exc


def _previous_with_key(trial: Trial, key: str) -> Allocation | None:
    return (Allocation.objects.select_related("participant", "arm")
            .filter(trial=trial, idempotency_key=key).first())


def _replay(previous: Allocation, participant: Participant, by) -> Allocation:
    """The allocation ``previous`` made with this request's key, if it is this user's and this
    participant's; refused otherwise, naming nobody else."""
    if previous.randomised_by_id != by.pk:
        raise RandomisationError(_(
            "This randomisation key was used by another user: reload the participant's page "
            "and randomise from there (each page carries its own key)."), code="key_other_user")
    if previous.participant_id != participant.pk:
        raise RandomisationError(_(
            "This randomisation key was already used to randomise another participant: a key "
            "stands for one randomisation request. Reload the participant's page and randomise "
            "from there."), code="key_other_participant")
    previous.replayed = True
    return previous


def _randomise(participant: Participant, trial: Trial, by, confirmed_strata, key: str,
               at=None) -> Allocation:
    # Lock the participant's row and re-read what decides whether they may be randomised, so
    # two clicks on "randomise" serialise here.
    participant.refresh_from_db(fields=["status", "consent_date", "test"],
                                from_queryset=Participant.objects.select_for_update())
    if key:
        # Read under the participant's lock: a retry that waited for the first request's
        # commit finds its allocation here.
        previous = _previous_with_key(trial, key)
        if previous is not None:
            return _replay(previous, participant, by)
    refuse_change(participant)  # no randomisation in a frozen or locked casebook, site, trial
    records = fact_records(participant, also={eligibility.ELIGIBILITY_CRF})
    # A participant has one eligibility record at most (``one_crf_outside_visits``).
    record = next((r for r in records if r.crf_code == eligibility.ELIGIBILITY_CRF), None)
    check_can_randomise(participant, record)
    strata = participant_strata(participant, record)
    if confirmed_strata is not None and confirmed_strata != strata:
        raise RandomisationError(
            _("The stratification data changed since it was shown; check it and confirm again."),
            code="strata_changed")
    stratum_key = stratum_key_of(strata)
    purpose = _purpose_for(participant, trial)
    method = trial.definition["randomisation"]["method"]
    if method == Method.MINIMISATION:
        alist = _active_list_or_error(trial, purpose)
        check_list_purpose(alist, purpose)
        arm, kit = _minimise(alist, trial, strata)
        slot = None
    else:
        slot = _take_slot(trial, stratum_key, purpose)
        alist, arm, kit = slot.allocation_list, slot.arm, slot.kit_code or ""
        check_list_purpose(alist, purpose)
    return _allocate(participant, trial, by, records=records, alist=alist, slot=slot,
                     stratum_key=stratum_key, strata=strata, arm=arm, kit=kit,
                     at=at or timezone.now(), key=key)


def _allocate(participant: Participant, trial: Trial, by, *, records, alist, slot,
              stratum_key: str, strata: dict, arm, kit: str, at, key: str = "",
              audit_action: str = "participant.randomised", audit_note: str = "") -> Allocation:
    """Write the allocation and what follows from it (visits, first kit, status, audit entry),
    inside the caller's transaction. The allocation row is inserted once, complete: the table
    refuses any UPDATE (PostgreSQL trigger), so the schedule and the first kit are computed
    from the unsaved allocation first."""
    kits = supply.settings_of(trial)
    if kits is not None:
        # Whatever arm was drawn, the same check of every arm: a refusal (which rolls the draw
        # back) says nothing of this participant's arm.
        _check_stock(participant)
    allocation = Allocation(
        participant=participant, trial=trial, allocation_list=alist, slot=slot,
        stratum_key=stratum_key, strata=strata, arm=arm, kit_code=kit, randomised_at=at,
        randomised_by=by, idempotency_key=key)
    visits = create_schedule(allocation, records)  # sets ``schedule_planned_through``
    if kits is not None:
        # The kit for the first dispensing visit, from the site's stock of the arm; shown with
        # the allocation (its kit code, written in this same transaction).
        first = min((v for v in visits if v.code in kits["dispensing"]["visits"]),
                    key=lambda v: v.target_date, default=None)
        if first is not None:
            kit = supply.assign(participant, first, arm, by=by, at=at, first=True).kit.number
            allocation.kit_code = kit
    allocation.save()
    participant_status.mark_randomised(participant, by=by)
    participant.save(update_fields=["status", "schedule_planned_through"])
    # Audit-log text: English on purpose (see the module docstring).
    audit.record(audit_action,
                 f"{participant.study_id} randomised in stratum {stratum_key}"
                 + (f", kit {kit}" if kit else "") + "." + audit_note,
                 actor=by, trial=trial, obj=allocation, participant=participant)
    allocation.replayed = False
    return allocation


def _purpose_for(participant: Participant, trial: Trial) -> str:
    """The purpose of the list ``participant`` is randomised from: test for a participant
    registered in test mode while the trial is still in it, live for the others once it is
    live. The trial's mode is read from the database, not from the caller's copy."""
    live = Trial.objects.filter(pk=trial.pk, live_since__isnull=False).exists()
    if participant.test and live:
        raise RandomisationError(
            _("%(id)s was registered while the trial was in test mode, and the trial is now "
              "live: a test participant is never randomised from the live list.") % {
                "id": participant.study_id}, code="test_participant_live")
    if not participant.test and not live:
        raise RandomisationError(
            _("The trial is in test mode but %(id)s is not a test participant: nobody is "
              "randomised from a test list who counts.") % {"id": participant.study_id},
            code="live_participant_test_mode")
    return Purpose.TEST if participant.test else Purpose.LIVE


def check_list_purpose(alist: AllocationList, purpose: str) -> None:
    """Refuse (nothing written) a list of the other purpose: a test list is never used live,
    a live list never in test mode."""
    if alist.purpose != purpose:
        raise RandomisationError(
            _("Allocation list #%(n)s is a %(list)s list; this randomisation needs a %(mode)s "
              "list: a list serves only its own purpose.") % {
                "n": alist.number, "list": _purpose_word(alist.purpose),
                "mode": _purpose_word(purpose)},
            code="list_purpose")


def _purpose_word(purpose: str) -> str:
    return _("test") if purpose == Purpose.TEST else _("live")


@transaction.atomic
def go_live(trial: Trial, *, by, password: str, request=None) -> Trial:
    """End the trial's test mode, for good: from now on participants count and are
    randomised from the sealed live list only. Refused without a sealed live list, or without
    the actor's password typed again. Audited."""
    if not policy.has_perm(by, Perm.GO_LIVE, trial):
        raise PermissionDenied(_("You may not take this trial live."))
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    trial = Trial.objects.select_for_update().get(pk=trial.pk)
    if not trial.is_test_mode:
        raise ValidationError(_("The trial has been live since %(at)s.") % {
            "at": shown_instant(trial.live_since)})
    live_list = active_list(trial, Purpose.LIVE)
    if live_list is None:
        raise ValidationError(_("The trial has no sealed live allocation list: the "
                                "statistician must generate or import one for live use and "
                                "seal it before the trial goes live."), code="no_live_list")
    now = timezone.now()
    Trial.objects.filter(pk=trial.pk).update(live_since=now, live_by=by)
    trial.refresh_from_db()
    tests = trial.participants.filter(test=True).count()
    audit.record("trial.went_live",
                 f"{trial.short_title} went live: test mode ended; randomisation from live "
                 f"list #{live_list.number} (SHA-256 {live_list.digest}); {tests} test "
                 f"participant(s) stay marked test and out of every report.",
                 actor=by, trial=trial, obj=trial,
                 detail={"live_list": live_list.number, "test_participants": tests})
    return trial


def _check_stock(participant: Participant) -> None:
    """The site holds a usable kit of every arm, so that whichever arm is drawn can be
    supplied, and a refusal says nothing of the participant's arm."""
    site = participant.site
    missing = supply.arms_out_of_stock(site, timezone.localdate())
    if missing:
        raise supply.SupplyError(
            _("%(site)s holds no usable kit of every treatment of the trial: %(id)s cannot be "
              "randomised until it is resupplied. Contact the trial's supply manager: they "
              "have been alerted.") % {"site": site.code, "id": participant.study_id},
            code="stock_out", params={"site_id": site.pk, "arm_id": missing[0].pk})


def assign_kit(visit, *, by):
    """The kit to give ``visit``'s participant at this dispensing visit, from the site's
    stock of their arm (read from the allocation here, never from the page). A stock-out
    refuses it (nothing written) and alerts the supply manager."""
    participant = visit.participant
    if not policy.has_perm(by, Perm.DISPENSE, participant.trial, participant.site):
        raise PermissionDenied
    try:
        with transaction.atomic():
            allocation = Allocation.objects.select_related("arm").get(participant=participant)
            return supply.assign(participant, visit, allocation.arm, by=by)
    except Allocation.DoesNotExist:
        raise supply.SupplyError(_("%(id)s is not randomised: no kit is dispensed.") % {
            "id": participant.study_id}, code="not_randomised")
    except supply.SupplyError as exc:
        if exc.code == "stock_out":
            supply.alert_stock_out(exc)
        raise


def replace_kit(assignment, *, kind: str, reason: str, by):
    """A replacement for the kit of ``assignment`` (damaged or lost), with the reason."""
    limits.REASON.check(reason, field="reason")
    participant = assignment.participant
    if not policy.has_perm(by, Perm.DISPENSE, participant.trial, participant.site):
        raise PermissionDenied
    try:
        with transaction.atomic():
            allocation = Allocation.objects.select_related("arm").get(participant=participant)
            return supply.replace(assignment, allocation.arm, kind=kind, reason=reason, by=by)
    except supply.SupplyError as exc:
        if exc.code == "stock_out":
            supply.alert_stock_out(exc)
        raise


def _active_list_or_error(trial: Trial, purpose: str | None = None) -> AllocationList:
    alist = active_list(trial, purpose)
    if alist is None:
        raise RandomisationError(_("No active allocation list: the statistician must seal one."),
                                 code="no_active_list")
    return alist


def _exhausted(alist: AllocationList, key: str) -> RandomisationError:
    return RandomisationError(
        _("The allocation list has no slot left in stratum %(key)s: the statistician has "
          "been told and must add a new list version.") % {"key": key},
        code="list_exhausted", params={"list_id": alist.pk, "key": key})


def _take_slot(trial: Trial, key: str, purpose: str) -> AllocationSlot:
    """The next slot of the active list's stratum ``key``, taken under the stratum's row lock.

    ``select_for_update`` holds the stratum row until the transaction ends, so concurrent
    randomisations into one stratum queue here: each reads ``next_sequence`` as the one before
    it left it at its COMMIT, so no slot is taken twice and none is skipped. Returned with its
    list and arm loaded.
    """
    try:
        stratum = (Stratum.objects.select_for_update(of=("self",))
                   .select_related("allocation_list")
                   .get(allocation_list__trial=trial, allocation_list__status=ListStatus.ACTIVE,
                        allocation_list__purpose=purpose, key=key))
    except Stratum.DoesNotExist:  # no active list, or it has no such stratum
        raise _exhausted(_active_list_or_error(trial, purpose), key)
    if stratum.next_sequence > stratum.size:  # its slots are all taken
        raise _exhausted(stratum.allocation_list, key)
    alist = stratum.allocation_list
    try:
        slot = AllocationSlot.objects.select_related("arm").get(stratum=stratum,
                                                                sequence=stratum.next_sequence)
    except AllocationSlot.DoesNotExist:
        # A sealed list holds every slot of each stratum, 1 to its size (checked when it is
        # made or imported, and against its digest by ``verify_allocation_list``): a missing
        # one means the stored list was damaged. Refused, and the transaction rolls back.
        raise RandomisationError(
            _("Stratum %(key)s of the allocation list has no slot #%(n)s: the list is damaged. "
              "The statistician must verify it (verify_allocation_list).") % {
                "key": key, "n": stratum.next_sequence}, code="list_damaged")
    slot.allocation_list = alist
    stratum.next_sequence += 1
    fields = ["next_sequence"]
    threshold = trial.definition["randomisation"].get("low_slot_threshold")
    if threshold is not None and stratum.remaining <= threshold and not stratum.low_alert_sent_at:
        # Once per stratum: the stratum row is ours until commit, so no other request can
        # send it too.
        stratum.low_alert_sent_at = timezone.now()
        fields.append("low_alert_sent_at")
        number, remaining = alist.number, stratum.remaining
        _notify(trial, [Role.STATISTICIAN], lambda: (
            _("Allocation list #%(n)s: stratum running low") % {"n": number},
            ngettext("Stratum %(key)s of allocation list #%(n)s has %(left)s unused slot left "
                     "(threshold %(threshold)s). Prepare a new list version before it runs out.",
                     "Stratum %(key)s of allocation list #%(n)s has %(left)s unused slots left "
                     "(threshold %(threshold)s). Prepare a new list version before it runs out.",
                     remaining) % {"key": key, "n": number, "left": remaining,
                                   "threshold": threshold}))
    stratum.save(update_fields=fields)
    return slot


def _alert_exhausted(list_id: int, key: str) -> None:
    """Tell the statisticians, once per stratum, that a randomisation found no slot left.

    Runs after the refused randomisation has rolled back, in a transaction of its own.
    """
    with transaction.atomic():
        stratum = (Stratum.objects.select_for_update().select_related("allocation_list__trial")
                   .filter(allocation_list_id=list_id, key=key).first())
        alist = AllocationList.objects.select_related("trial").get(pk=list_id)
        if stratum is not None:
            if stratum.exhausted_alert_sent_at:
                return
            stratum.exhausted_alert_sent_at = timezone.now()
            stratum.save(update_fields=["exhausted_alert_sent_at"])
        _notify(alist.trial, [Role.STATISTICIAN], lambda: (
            _("Allocation list #%(n)s: stratum exhausted") % {"n": alist.number},
            _("A randomisation in stratum %(key)s was refused because allocation list #%(n)s "
              "has no slot left there. Seal a new list version.") % {
                "key": key, "n": alist.number}))


def _minimise(alist: AllocationList, trial: Trial, strata: dict[str, str]):
    # Minimisation depends on every earlier allocation: serialise on the list row.
    AllocationList.objects.select_for_update().get(pk=alist.pk)
    params = alist.parameters["minimisation"]
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for row in Allocation.objects.filter(allocation_list=alist).values("strata", "arm__code"):
        for factor, level in row["strata"].items():
            by_arm = counts.setdefault(factor, {}).setdefault(level, {})
            by_arm[row["arm__code"]] = by_arm.get(row["arm__code"], 0) + 1
    n = Allocation.objects.filter(allocation_list=alist).count()
    arms = {a.code: a for a in trial.arms.all()}
    stream = generator.SeededStream(alist.seed, "minimisation", str(n + 1))
    code = generator.minimise([(a.code, a.ratio) for a in arms.values()], strata, counts,
                              params.get("weights", {}), params["probability"], stream)
    kit = ""
    kit_length = _kit_length(trial)
    if kit_length:
        kit = generator.kit_codes(f"{alist.seed}:{n + 1}", 1, kit_length,
                                  taken=_taken_kits(trial))[0]
    return arms[code], kit


# ---------------------------------------------------------------------------- emergency


def record_emergency_allocation(participant: Participant, *, slot_number, made_at, made_by: str,
                                reason: str, password: str, by, request=None) -> Allocation:
    """Record afterwards an allocation a site made from the sealed envelopes while the system
    was down. The envelopes are the active list printed one slot per envelope, stratum by
    stratum, so the envelope opened is the stratum's next slot: ``slot_number`` must be it
    (refused if used, or not the next one). The allocation is dated ``made_at`` (the real
    time, not in the future, not before consent, not before the stratum's last allocation),
    consumes the slot as a randomisation does (schedule, first kit, status), is audited, and
    carries an ``EmergencyAllocation`` row (who opened the envelope, the reason, who recorded
    it). The participant must be randomisable as for ``randomise`` (consent, eligibility and
    its confirmation recorded first). The unblinded statistician records it, with the password
    typed again."""
    trial = participant.trial
    _require(by, Perm.RECORD_EMERGENCY_ALLOCATION, trial)
    errors: dict[str, list[str]] = {}
    made_by, reason = (made_by or "").strip(), (reason or "").strip()
    if not made_by:
        errors["made_by"] = [_("Say who opened the envelope at the site.")]
    elif len(made_by) > 200:
        errors["made_by"] = [_("At most 200 characters.")]
    if not reason:
        errors["reason"] = [_("Give the reason the sealed envelope was used.")]
    try:
        slot_number = int(slot_number)
        if slot_number < 1:
            raise ValueError
    except (TypeError, ValueError):
        errors["slot_number"] = [_("Give the envelope's slot number (a whole number from 1).")]
    now = timezone.now()
    if made_at is None:
        errors["made_at"] = [_("Give the date and time the envelope was opened.")]
    elif made_at > now:
        errors["made_at"] = [_("The time the envelope was opened cannot be in the future.")]
    elif participant.consent_date and timezone.localdate(made_at) < participant.consent_date:
        errors["made_at"] = [_("The envelope cannot have been opened before the participant's "
                               "consent (%(date)s).") % {"date": participant.consent_date}]
    if trial.definition["randomisation"]["method"] == Method.MINIMISATION:
        errors.setdefault("slot_number", []).append(_(
            "This trial allocates by minimisation: there is no list of sealed envelopes."))
    if errors:
        raise ValidationError(errors)
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    note = (f" Emergency allocation from the sealed envelope of slot #{slot_number}, opened "
            f"{made_at.isoformat()} by {made_by} while the system was down, recorded afterwards "
            f"by {by.get_username()}. Reason: {reason}")
    try:
        with transaction.atomic():
            participant.refresh_from_db(fields=["status", "consent_date", "test"],
                                        from_queryset=Participant.objects.select_for_update())
            refuse_change(participant)  # not in a frozen or locked casebook, site or trial
            records = fact_records(participant, also={eligibility.ELIGIBILITY_CRF})
            record = next((r for r in records if r.crf_code == eligibility.ELIGIBILITY_CRF),
                          None)
            check_can_randomise(participant, record)
            strata = participant_strata(participant, record)
            key = stratum_key_of(strata)
            purpose = _purpose_for(participant, trial)
            stratum = (Stratum.objects.select_for_update(of=("self",))
                       .filter(allocation_list__trial=trial, allocation_list__purpose=purpose,
                               allocation_list__status=ListStatus.ACTIVE, key=key).first())
            if stratum is None:
                raise _exhausted(_active_list_or_error(trial, purpose), key)
            names = {"n": slot_number, "key": key, "next": stratum.next_sequence}
            if slot_number < stratum.next_sequence:
                raise ValidationError({"slot_number": _(
                    "Slot #%(n)s of stratum %(key)s is already used; the next one is "
                    "#%(next)s.") % names})
            if slot_number > stratum.next_sequence:
                raise ValidationError({"slot_number": _(
                    "Slot #%(n)s is not the next one in stratum %(key)s (#%(next)s): envelopes "
                    "are opened in order.") % names})
            last = (Allocation.objects.filter(slot__stratum=stratum)
                    .order_by("-randomised_at").values_list("randomised_at", flat=True).first())
            if last is not None and made_at < last:
                raise ValidationError({"made_at": _(
                    "The stratum's last allocation was made at %(at)s, after this time: the "
                    "envelope's slot follows it, so it was opened later.") % {
                    "at": shown_instant(last)}})
            slot = _take_slot(trial, key, purpose)
            check_list_purpose(slot.allocation_list, purpose)
            allocation = _allocate(participant, trial, by, records=records,
                                   alist=slot.allocation_list, slot=slot, stratum_key=key,
                                   strata=strata, arm=slot.arm, kit=slot.kit_code or "",
                                   at=made_at, audit_action="participant.randomised_emergency",
                                   audit_note=note)
            allocation.emergency_record = EmergencyAllocation.objects.create(
                allocation=allocation, slot_number=slot_number, made_at=made_at,
                made_by=made_by, reason=reason, recorded_by=by)
            return allocation
    except IntegrityError:
        raise RandomisationError(_("%(id)s is already randomised.") % {"id": participant.study_id},
                                 code="already_randomised")
    except supply.SupplyError as exc:
        if exc.code == "stock_out":
            supply.alert_stock_out(exc)
        raise RandomisationError(exc.messages[0], code=exc.code) from exc


def next_envelope(participant: Participant) -> tuple[str, int] | None:
    """The stratum key and the number of the next sealed envelope (slot) for ``participant``,
    for the recording page; None when it cannot be told (strata not recorded, no list)."""
    try:
        key = stratum_key_of(participant_strata(participant))
        purpose = _purpose_for(participant, participant.trial)
    except RandomisationError:
        return None
    stratum = Stratum.objects.filter(
        allocation_list__trial=participant.trial, allocation_list__status=ListStatus.ACTIVE,
        allocation_list__purpose=purpose, key=key).first()
    return (key, stratum.next_sequence) if stratum else None


# ---------------------------------------------------------------------------- after the fact


@transaction.atomic
def correct_stratum(allocation: Allocation, *, factor: str, correct_level: str, reason: str,
                    by) -> StratumCorrection:
    """Record that a stratification value was wrong at randomisation. The allocation stands
    (intention to treat); the correction is kept beside it and flagged in reports."""
    limits.REASON.check(reason, field="reason")
    trial = allocation.trial
    _require(by, Perm.RANDOMISE, trial, allocation.participant.site)
    refuse_change(allocation.participant)
    levels = dict(stratification(trial))
    if factor not in allocation.strata or factor not in levels:
        raise ValidationError({"factor": _("%(factor)s is not a stratification factor of this "
                                           "trial.") % {"factor": repr(factor)}})
    if correct_level not in levels[factor]:
        raise ValidationError({"correct_level": _(
            "%(level)s is not a level of %(factor)s (levels: %(levels)s).") % {
            "level": repr(correct_level), "factor": factor, "levels": ", ".join(levels[factor])}})
    if correct_level == allocation.strata[factor]:
        raise ValidationError({"correct_level": _("That is the level already recorded.")})
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for the correction.")})
    correction = StratumCorrection.objects.create(
        allocation=allocation, factor=factor, recorded_level=allocation.strata[factor],
        correct_level=correct_level, reason=reason.strip(), corrected_by=by)
    # Audit-log text: English on purpose (see the module docstring).
    audit.record("allocation.stratum_corrected",
                 f"{allocation.participant.study_id}: {factor} recorded as "
                 f"{allocation.strata[factor]} at randomisation, correct value {correct_level}. "
                 f"Allocation unchanged. Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=correction, participant=allocation.participant)
    return correction


@transaction.atomic
def record_randomised_in_error(allocation: Allocation, *, reason: str, by) -> RandomisedInError:
    """Record that a participant was randomised in error (found not eligible, consent not
    valid, registered twice…). Nothing else changes: the allocation stands and the participant
    stays in the intention-to-treat population with their arm; exports and the flow diagram
    flag them. Once only."""
    limits.REASON.check(reason, field="reason")
    trial = allocation.trial
    participant = allocation.participant
    _require(by, Perm.RECORD_RANDOMISED_IN_ERROR, trial, participant.site)
    refuse_change(participant)
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason the randomisation was in error.")})
    if RandomisedInError.objects.filter(allocation=allocation).exists():
        raise ValidationError({"reason": _("%(id)s is already recorded as randomised in "
                                           "error.") % {"id": participant.study_id}})
    flag = RandomisedInError.objects.create(allocation=allocation, reason=reason.strip(),
                                            recorded_by=by)
    # Audit-log text: English on purpose (see the module docstring); no arm in it.
    audit.record("allocation.randomised_in_error",
                 f"{participant.study_id} recorded as randomised in error. The allocation "
                 f"stands (intention to treat). Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=flag, participant=participant)
    return flag


@transaction.atomic
def emergency_unblind(allocation: Allocation, *, by, reason: str, password: str,
                      request=None) -> EmergencyUnblinding:
    """Reveal one participant's arm to the investigator who asks, for a stated reason.

    The password is asked again so that a session left open cannot unblind. The event is
    audited and the sponsor and statisticians are told (without the arm: the sponsor is blinded).
    """
    limits.REASON.check(reason, field="reason")
    trial = allocation.trial
    participant = allocation.participant
    _require(by, Perm.EMERGENCY_UNBLIND, trial, participant.site)
    if not trial.is_blinded:
        raise ValidationError(_("This trial is not blinded: the arm is already shown."))
    if not reason.strip():
        raise ValidationError({"reason": _("Give the medical reason for unblinding.")})
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    event = EmergencyUnblinding.objects.create(allocation=allocation, user=by,
                                               reason=reason.strip())
    # Audit-log text: English on purpose (see the module docstring).
    audit.record("participant.emergency_unblinded",
                 f"{participant.study_id} unblinded in an emergency by {by.get_username()}. "
                 f"Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=event, participant=participant)
    # Never the arm: the sponsor is blinded. The reason is quoted as the investigator wrote it.
    names = {"id": participant.study_id, "who": by.get_full_name() or by.get_username(),
             "site": participant.site.code, "reason": reason.strip()}
    _notify(trial, [Role.SPONSOR, Role.STATISTICIAN], lambda: (
        _("Emergency unblinding of %(id)s") % names,
        _("%(who)s unblinded participant %(id)s (site %(site)s) on %(when)s.\n"
          "Reason given: %(reason)s\n\n"
          "The participant is marked unblinded in every report.") % {
            **names, "when": shown_instant(event.at)}))  # in each recipient's language
    return event


@transaction.atomic
def safety_unblind(report, *, by, reason: str, password: str, request=None) -> SafetyUnblinding:
    """Reveal the arm of one SUSAR's participant to the safety officer who asks, for the
    expedited report (EU Reg. 536/2014 art. 42; ICH E2A III.C: SUSARs are reported unblinded).

    The same checks as an emergency unblinding (a reason, the password typed again), but its
    own record and audit action, and nobody of the study team is told: they stay blinded.
    """
    limits.REASON.check(reason, field="reason")
    trial = report.trial
    participant = report.participant
    if not policy.has_perm(by, Perm.SAFETY_UNBLIND, trial):
        raise PermissionDenied(_("You may not unblind for pharmacovigilance in this trial."))
    if not trial.is_blinded:
        raise ValidationError(_("This trial is not blinded: the arm is already shown."))
    assessment = safety_selectors.assessment_of(report)
    if assessment is None or not assessment.susar:
        raise ValidationError(_("Only a SUSAR is unblinded for pharmacovigilance: assess the "
                                "report first."))
    allocation = Allocation.objects.filter(participant=participant).first()
    if allocation is None:
        raise ValidationError(_("This participant was not randomised: there is no arm."))
    if not reason.strip():
        raise ValidationError({"reason": _("Give the reason for unblinding.")})
    if not password_confirmed(request, by, password):
        raise ValidationError({"password": _("The password is not correct.")})
    event = SafetyUnblinding.objects.create(allocation=allocation, report=report, user=by,
                                            reason=reason.strip())
    # Audit-log text: English on purpose (see the module docstring); never the arm.
    audit.record("participant.safety_unblinded",
                 f"{participant.study_id} unblinded for pharmacovigilance ({report.number}, "
                 f"SUSAR) by {by.get_username()}. Reason: {reason.strip()}",
                 actor=by, trial=trial, obj=event, participant=participant)
    return event


def _notify(trial: Trial, roles: list[str], render) -> None:
    """E-mail the trial's active members with ``roles``, each in their own language.

    ``render()`` returns (subject, body); it is called once per language among the recipients,
    with that language active, and each language's recipients get one message (the subject
    prefixed with the trial's name, as ``notify.notify_roles`` does).
    """
    rows = (Membership.objects.filter(trial=trial, role__in=roles, active=True,
                                      user__is_active=True)
            .exclude(user__email="").values_list("user__email", "user__profile__language"))
    known = dict(settings.LANGUAGES)
    by_language: dict[str, set[str]] = {}
    for email, language in rows:
        language = language if language in known else settings.LANGUAGE_CODE
        by_language.setdefault(language, set()).add(email)
    for language, emails in sorted(by_language.items()):
        with translation.override(language):
            subject, body = render()
        notify.notify(sorted(emails), f"[{trial.short_title}] {subject}", body)
