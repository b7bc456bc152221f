"""Kit lists: which arm each kit number holds, generated from a recorded seed or imported by the
unblinded statistician, then sealed like the allocation lists (SHA-256 of a canonical text,
written to the audit log). Kept apart from the allocation list: a site's kits and a
participant's allocation meet only when a kit is assigned (``supply.services.assign``).

A kit number reveals nothing of its arm. Numbers are drawn from ``SeededStream(seed, 'kits')``,
a stream that never sees the arms; arms are laid out by a separate stream
(``SeededStream(seed, 'kit-arms', lot)``) within each lot, in the ratio's proportions, so that
every lot (printed on the label) holds every arm with one expiry date. Neither the numbers'
order, their range nor their characters follow the arm (tests/supply/test_kit_list.py tests
this statistically).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit
from supply.models import Kit, KitEvent, KitEventKind, KitList, KitListStatus
from supply.services import settings_of
from trials import policy
from trials.models import Trial
from trials.policy import Perm

from . import generator

MAX_KITS = 100_000  # one batch; a trial needing more makes several lists


class KitListImportError(ValidationError):
    """A kit table refused whole; ``rows`` are (row number, reason)."""

    def __init__(self, rows: list[tuple[int, str]]):
        self.rows = rows
        super().__init__([f"row {n}: {reason}" for n, reason in rows])


def _require(by, trial: Trial) -> dict:
    if not policy.has_perm(by, Perm.MANAGE_ALLOCATION, trial):
        raise PermissionDenied
    settings = settings_of(trial)
    if settings is None:
        raise ValidationError(_("%(trial)s dispenses no kits (its protocol declares no product "
                                "supply).") % {"trial": trial.short_title})
    return settings


def _next_number(trial: Trial) -> int:
    return (KitList.objects.filter(trial=trial).aggregate(n=Max("number"))["n"] or 0) + 1


def _taken(trial: Trial) -> set[str]:
    return set(Kit.objects.filter(trial=trial).values_list("number", flat=True))


@transaction.atomic
def generate(trial: Trial, *, by, kits: int, lot_size: int, expires_on: dt.date,
             seed: str | None = None) -> KitList:
    """A draft kit list of ``kits`` kits in lots of ``lot_size``, each lot holding the arms in
    the ratio's proportions, all expiring on ``expires_on``. Same seed, same list."""
    settings = _require(by, trial)
    arms = list(trial.arms.order_by("position"))
    per_round = sum(a.ratio for a in arms)
    problems = {}
    if isinstance(kits, bool) or not isinstance(kits, int) or not 0 < kits <= MAX_KITS:
        problems["kits"] = _("Give a number of kits from 1 to %(max)s.") % {"max": MAX_KITS}
    elif kits % per_round:
        problems["kits"] = _("The number of kits must be a multiple of %(n)s (the allocation "
                             "ratio's sum), so that every arm has its share.") % {"n": per_round}
    if isinstance(lot_size, bool) or not isinstance(lot_size, int) or lot_size < per_round \
            or lot_size % per_round:
        problems["lot_size"] = _("A lot holds a multiple of %(n)s kits (every arm in the "
                                 "ratio), at least %(n)s.") % {"n": per_round}
    if not isinstance(expires_on, dt.date) or expires_on <= timezone.localdate():
        problems["expires_on"] = _("The expiry date must be after today.")
    if problems:
        raise ValidationError(problems)
    seed = (seed or "").strip() or generator.new_seed()
    number = _next_number(trial)
    kit_list = KitList.objects.create(
        trial=trial, number=number, source="generated", seed=seed, created_by=by,
        parameters={"kits": kits, "lot_size": lot_size, "expires_on": expires_on.isoformat(),
                    "arms": [(a.code, a.ratio) for a in arms],
                    "kit_number_length": settings["kit_number_length"]})
    numbers = iter(generator.kit_codes(seed, kits, settings["kit_number_length"],
                                       taken=_taken(trial)))
    rows = []
    for lot_index in range((kits + lot_size - 1) // lot_size):
        lot = f"L{number:02d}-{lot_index + 1:03d}"
        size = min(lot_size, kits - lot_index * lot_size)
        layout = [a for a in arms for _ in range(a.ratio)] * (size // per_round)
        generator.SeededStream(seed, "kit-arms", lot).shuffle(layout)
        rows += [Kit(trial=trial, kit_list=kit_list, number=next(numbers), arm=arm, lot=lot,
                     expires_on=expires_on) for arm in layout]
    Kit.objects.bulk_create(rows, batch_size=2000)
    audit.record("kit_list.generated",
                 f"Kit list #{number} generated as a draft ({kits} kits in lots of {lot_size}).",
                 actor=by, trial=trial, obj=kit_list)
    return kit_list


def import_list(trial: Trial, text: str, *, by) -> KitList:
    """A draft kit list from a CSV table ``kit_number,arm,lot,expires_on`` (ISO dates). The
    whole table is refused, with every problem and its row, when a number is malformed or
    repeated (in the file or the trial), an arm unknown, a date invalid or not after today,
    or a lot holds a single arm or several expiry dates (its label would reveal the arm)."""
    settings = _require(by, trial)
    # newline="": a lone carriage return ends a row, as csv expects, instead of breaking it.
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    expected = ["kit_number", "arm", "lot", "expires_on"]
    try:
        return _import_rows(trial, reader, expected, settings, by=by)
    except csv.Error as exc:
        # ``line_num``: the lines read whole; the error is on the next one.
        raise KitListImportError([(reader.line_num + 1, _("not a CSV table: %(error)s") % {
            "error": exc})])


def _import_rows(trial: Trial, reader: csv.DictReader, expected: list[str], settings: dict, *,
                 by) -> KitList:
    length = settings["kit_number_length"]
    found = [h.strip() for h in reader.fieldnames or []]
    if found != expected:
        raise KitListImportError([(1, _("the header must be: %(expected)s (found: %(found)s)")
                                   % {"expected": ",".join(expected),
                                      "found": ",".join(found) or _("nothing")})])
    arms = {a.code: a for a in trial.arms.all()}
    taken, seen = _taken(trial), {}
    today = timezone.localdate()
    problems: list[tuple[int, str]] = []
    rows: list[tuple[str, str, str, dt.date]] = []
    lots: dict[str, dict] = {}
    for n, row in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
        number, arm, lot = row.get("kit_number", "").upper(), row.get("arm", ""), row.get("lot", "")
        if len(number) != length or set(number) - set(generator.KIT_ALPHABET):
            problems.append((n, _("kit number %(kit)s must be %(length)s characters from "
                                  "%(alphabet)s") % {"kit": repr(number), "length": length,
                                                     "alphabet": generator.KIT_ALPHABET}))
        elif number in seen:
            problems.append((n, _("kit number %(kit)s repeats row %(row)s") % {
                "kit": number, "row": seen[number]}))
        elif number in taken:
            problems.append((n, _("kit number %(kit)s is already in this trial") % {
                "kit": number}))
        seen.setdefault(number, n)
        if arm not in arms:
            problems.append((n, _("unknown arm %(arm)s (arms: %(arms)s)") % {
                "arm": repr(arm), "arms": ", ".join(arms)}))
        if not lot or len(lot) > 32:
            problems.append((n, _("the lot must be given (32 characters at most)")))
        try:
            expires = dt.date.fromisoformat(row.get("expires_on", ""))
        except ValueError:
            problems.append((n, _("expires_on %(value)s is not a date (YYYY-MM-DD)") % {
                "value": repr(row.get("expires_on", ""))}))
            continue
        if expires <= today:
            problems.append((n, _("expires_on %(date)s is not after today") % {
                "date": expires.isoformat()}))
        info = lots.setdefault(lot, {"arms": set(), "expiry": {}, "first": n})
        info["arms"].add(arm)
        info["expiry"].setdefault(expires, n)
        rows.append((number, arm, lot, expires))
    if not rows and not problems:
        problems.append((1, _("the table has no kit")))
    for lot, info in lots.items():
        if len(info["expiry"]) > 1:
            problems.append((sorted(info["expiry"].values())[1], _(
                "lot %(lot)s has several expiry dates: a lot's kits expire together, whatever "
                "their arm") % {"lot": lot}))
        if lot and len(arms) > 1 and not set(arms) <= info["arms"]:
            problems.append((info["first"], _(
                "lot %(lot)s does not hold every arm: its number on a label would reveal the "
                "arm") % {"lot": lot}))
    if problems:
        raise KitListImportError(sorted(problems))
    with transaction.atomic():
        kit_list = KitList.objects.create(trial=trial, number=_next_number(trial),
                                          source="imported", created_by=by,
                                          parameters={"kits": len(rows)})
        Kit.objects.bulk_create([Kit(trial=trial, kit_list=kit_list, number=number,
                                     arm=arms[arm], lot=lot, expires_on=expires)
                                 for number, arm, lot, expires in rows], batch_size=2000)
        audit.record("kit_list.imported",
                     f"Kit list #{kit_list.number} imported as a draft ({len(rows)} kits).",
                     actor=by, trial=trial, obj=kit_list)
    return kit_list


def canonical_text(kit_list: KitList) -> str:
    """What is sealed: ``key=value`` header lines sorted by key (values JSON), ``--``, then one
    CSV line ``kit_number,arm,lot,expires_on`` per kit sorted by number; lines end with \\n."""
    header = {"trial": kit_list.trial.slug, "list": kit_list.number, "source": kit_list.source,
              "seed": kit_list.seed, "parameters": kit_list.parameters}
    out = io.StringIO()
    for key in sorted(header):
        out.write(f"{key}={json.dumps(header[key], sort_keys=True)}\n")
    out.write("--\n")
    writer = csv.writer(out, lineterminator="\n")
    for number, arm, lot, expires in (kit_list.kits.order_by("number")
                                      .values_list("number", "arm__code", "lot", "expires_on")):
        writer.writerow([number, arm, lot, expires.isoformat()])
    return out.getvalue()


def digest(kit_list: KitList) -> str:
    return hashlib.sha256(canonical_text(kit_list).encode("utf-8")).hexdigest()


@transaction.atomic
def seal(kit_list: KitList, *, by) -> KitList:
    """Freeze a draft kit list, store and log its SHA-256; its kits are then made (at the
    depot) and can be shipped."""
    _require(by, kit_list.trial)
    kit_list = KitList.objects.select_for_update().get(pk=kit_list.pk)
    if kit_list.status != KitListStatus.DRAFT:
        raise ValidationError(_("Kit list #%(n)s is already sealed.") % {"n": kit_list.number})
    now = timezone.now()
    sha = digest(kit_list)
    KitList.objects.filter(pk=kit_list.pk).update(status=KitListStatus.SEALED, sealed_at=now,
                                                  sealed_by=by, digest=sha)
    KitEvent.objects.bulk_create(
        [KitEvent(kit_id=pk, kind=KitEventKind.MADE, at=now, by=by,
                  reason=f"kit list #{kit_list.number}")
         for pk in kit_list.kits.values_list("pk", flat=True)], batch_size=2000)
    audit.record("kit_list.sealed", f"Kit list #{kit_list.number} sealed; SHA-256 {sha}.",
                 actor=by, trial=kit_list.trial, obj=kit_list, detail={"sha256": sha})
    kit_list.refresh_from_db()
    return kit_list


def verify(kit_list: KitList) -> bool:
    """Is the sealed list unchanged (its kits' numbers, arms, lots and expiry dates)?"""
    return kit_list.status == KitListStatus.SEALED and digest(kit_list) == kit_list.digest
