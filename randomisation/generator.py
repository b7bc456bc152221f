"""The randomisation algorithms, free of the database so they can be proved on their own.

Everything here is a pure function of its inputs. An allocation list must be reproducible years
later from what the trial master file records — the seed, the arms with their ratios, the block
sizes, the strata — so randomness comes only from ``SeededStream``, which is built on SHA-256
rather than on the ``random`` module: ``random``'s algorithms are an implementation detail of
CPython and have changed between versions (``randrange``, ``shuffle`` and seeding by strings all
have), which would silently change a regenerated list.

What the services do with the results (store slots, hand out kits, seal the list, record who
randomised whom) lives in ``randomisation/services.py``.

Contents:
- ``SeededStream``, ``new_seed``: the deterministic random source and its seeds;
- ``permuted_blocks``, ``generate_list``, ``strata_keys``, ``stratum_key``: stratified
  permuted-block lists, made in advance;
- ``kit_codes``: the codes printed on drug kits in blinded trials;
- ``minimise``: Pocock–Simon minimisation, decided participant by participant;
- ``canonical_text``, ``list_digest``: the text and digest that seal an allocation list.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import product
from typing import TypeVar

T = TypeVar("T")

# Characters that cannot be misread on a kit label or over the phone: no 0/O/Q/D, 1/I/L/J,
# 2/Z, 5/S, 8/B, 6/G or U/V. 18 characters, so a 6-character code has 34 million values.
KIT_ALPHABET = "3479ACEFHKMNPRTWXY"

# Stratum keys are 'factor=level;factor2=level2', so these cannot appear in a factor or level.
_KEY_SEPARATORS = ("=", ";")
UNSTRATIFIED = "all"

# Versioned so that a future change of derivation is a new tag, never a silent change of the
# lists regenerated from seeds recorded under this one. Bytes, not a name: spelt as when the
# first lists were generated (the package has since taken the other spelling).
_STREAM_TAG = b"ctms.randomization.SeededStream/v1"


class SeededStream:
    """Deterministic random stream derived from a recorded seed and labels.

    The bytes are SHA-256 in counter mode: block ``i`` is ``SHA-256(key || i)`` with ``key`` the
    SHA-256 of the tag, seed and labels (each length-prefixed, so ``("ab", "c")`` and
    ``("a", "bc")`` are different streams). Labels separate independent uses of one seed —
    ``SeededStream(seed, "blocks", stratum)`` for each stratum, ``SeededStream(seed, "kits")`` —
    so that adding a stratum or a kit never shifts another's draws. Integers are drawn by
    rejection sampling, so ``randbelow`` is exactly uniform, not merely close.
    """

    def __init__(self, seed: str, *labels: str) -> None:
        if not isinstance(seed, str) or not seed:
            raise ValueError("the seed must be a non-empty string")
        for label in labels:
            if not isinstance(label, str):
                raise ValueError(f"stream labels must be strings, not {label!r}")
        material = hashlib.sha256(_STREAM_TAG)
        for part in (seed, *labels):
            encoded = part.encode("utf-8")
            material.update(len(encoded).to_bytes(8, "big"))
            material.update(encoded)
        self._key = material.digest()
        self._counter = 0
        self._buffer = b""

    def _take(self, n_bytes: int) -> bytes:
        while len(self._buffer) < n_bytes:
            block = hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
            self._buffer += block
            self._counter += 1
        taken, self._buffer = self._buffer[:n_bytes], self._buffer[n_bytes:]
        return taken

    def randbelow(self, n: int) -> int:
        """A uniform integer in ``[0, n)``; ``n == 1`` returns 0 without consuming the stream."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"randbelow needs an integer n >= 1, got {n!r}")
        bits = (n - 1).bit_length()
        if bits == 0:
            return 0
        n_bytes = (bits + 7) // 8
        # Keep only as many bits as n needs, so at least half of the draws are accepted.
        surplus = n_bytes * 8 - bits
        while True:
            candidate = int.from_bytes(self._take(n_bytes), "big") >> surplus
            if candidate < n:
                return candidate

    def random(self) -> float:
        """A uniform float in ``[0, 1)`` with 53 random bits (every value a multiple of 2**-53)."""
        return (int.from_bytes(self._take(7), "big") >> 3) / (1 << 53)

    def shuffle(self, items: list) -> None:
        """Shuffle ``items`` in place (Fisher–Yates, from the end), each order equally likely."""
        for i in range(len(items) - 1, 0, -1):
            j = self.randbelow(i + 1)
            items[i], items[j] = items[j], items[i]

    def choice(self, items: Sequence[T]) -> T:
        """One element of ``items``, each position equally likely."""
        if not items:
            raise ValueError("cannot choose from an empty sequence")
        return items[self.randbelow(len(items))]


def new_seed() -> str:
    """A fresh seed to record with a new list: 128 bits from the operating system."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class PlannedSlot:
    """One position of a stratum's allocation list, before it is stored."""

    sequence: int  # 1-based position within the stratum
    arm: str  # arm code
    block_number: int  # 1-based
    block_size: int


def _checked_arms(arms: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """The arms as (code, ratio) pairs, or a ValueError naming what is wrong."""
    arms = list(arms)
    if len(arms) < 2:
        raise ValueError(f"randomisation needs at least two arms, got {len(arms)}")
    seen: set[str] = set()
    for entry in arms:
        try:
            code, ratio = entry
        except (TypeError, ValueError):
            raise ValueError(f"each arm must be a (code, ratio) pair, got {entry!r}") from None
        if not isinstance(code, str) or not code:
            raise ValueError(f"arm codes must be non-empty strings, got {code!r}")
        if code in seen:
            raise ValueError(f"arm {code!r} is listed twice")
        seen.add(code)
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"arm {code!r} has ratio {ratio!r}: ratios must be positive integers")
    return arms


def permuted_blocks(arms: Sequence[tuple[str, int]], block_sizes: Sequence[int], n_slots: int,
                    stream: SeededStream) -> list[PlannedSlot]:
    """One stratum's list of at least ``n_slots`` slots, made of whole blocks.

    Each block's size is drawn uniformly from ``block_sizes`` (as listed: the order is part of
    the input), and a block of size ``s`` holds arm ``a`` exactly ``ratio_a * s / sum(ratios)``
    times, in a random order. Varying the block size keeps the next allocation hard to guess at
    the end of a block. Generation stops at the first whole block that reaches ``n_slots``, so
    the list never ends mid-block and every block is balanced. Because blocks are drawn in
    order, the list for ``n`` slots is a prefix of the list for any larger ``n`` from the same
    stream: topping up a stratum only appends blocks.

    Imbalance bound: completed blocks are exactly balanced, so at any point only the current
    block is out of balance. With ``p = ratio_a / sum(ratios)``, an arm can run ahead of its
    share by at most ``p * (1 - p) * s`` in a block of size ``s`` (all its ``p * s`` slots
    first), or behind by the same amount (all the other arms' slots first); hence for every
    prefix of ``n`` slots, ``|count_a - p * n| <= p * (1 - p) * max(block_sizes)``, and this is
    reached.
    """
    arms = _checked_arms(arms)
    sizes = list(block_sizes)
    if not sizes:
        raise ValueError("at least one block size is needed")
    total_ratio = sum(ratio for _, ratio in arms)
    for size in sizes:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"block size {size!r} is not a positive integer")
        if size % total_ratio:
            ratio_text = ":".join(str(ratio) for _, ratio in arms)
            raise ValueError(f"block size {size} is not a multiple of the ratio's sum "
                             f"{total_ratio} ({ratio_text})")
    if len(set(sizes)) != len(sizes):
        # A repeated size would silently make that size more likely than the protocol says.
        raise ValueError(f"block sizes {sizes} repeat a size")
    if isinstance(n_slots, bool) or not isinstance(n_slots, int) or n_slots < 1:
        raise ValueError(f"the number of slots must be an integer >= 1, got {n_slots!r}")

    slots: list[PlannedSlot] = []
    block_number = 0
    while len(slots) < n_slots:
        block_number += 1
        size = stream.choice(sizes)
        block = [code for code, ratio in arms for _ in range(ratio * size // total_ratio)]
        stream.shuffle(block)
        start = len(slots)
        slots.extend(PlannedSlot(sequence=start + i + 1, arm=arm,
                                 block_number=block_number, block_size=size)
                     for i, arm in enumerate(block))
    return slots


def _check_code_part(kind: str, value: object) -> str:
    text = value if isinstance(value, str) else None
    if not text:
        raise ValueError(f"{kind} must be a non-empty string, got {value!r}")
    for separator in _KEY_SEPARATORS:
        if separator in text:
            raise ValueError(f"{kind} {text!r} contains {separator!r}, which separates stratum "
                             f"keys")
    return text


def strata_keys(factors: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """All strata: the Cartesian product of the factors' level codes, in the given order.

    Each key reads ``'factor=level;factor2=level2'``; with no factors the one stratum is
    ``'all'``. The key is stored with every slot, so it must stay readable in an export.
    """
    names: list[str] = []
    level_lists: list[list[str]] = []
    for entry in factors:
        try:
            name, levels = entry
        except (TypeError, ValueError):
            raise ValueError(f"each factor must be a (code, levels) pair, got {entry!r}") from None
        name = _check_code_part("a factor code", name)
        if name in names:
            raise ValueError(f"factor {name!r} is listed twice")
        if isinstance(levels, str):
            raise ValueError(f"factor {name!r}: levels must be a sequence of codes, not a string")
        checked = [_check_code_part(f"a level of factor {name!r}", level) for level in levels]
        if not checked:
            raise ValueError(f"factor {name!r} has no levels")
        if len(set(checked)) != len(checked):
            raise ValueError(f"factor {name!r} lists a level twice: {checked}")
        names.append(name)
        level_lists.append(checked)
    if not names:
        return [UNSTRATIFIED]
    return [";".join(f"{name}={level}" for name, level in zip(names, combination))
            for combination in product(*level_lists)]


def stratum_key(values: Sequence[tuple[str, str]]) -> str:
    """The key of one stratum from its (factor, level) pairs, in factor order; [] -> 'all'."""
    parts: list[str] = []
    seen: set[str] = set()
    for entry in values:
        try:
            name, level = entry
        except (TypeError, ValueError):
            raise ValueError(f"each value must be a (factor, level) pair, got {entry!r}") from None
        name = _check_code_part("a factor code", name)
        if name in seen:
            raise ValueError(f"factor {name!r} is given twice")
        seen.add(name)
        parts.append(f"{name}={_check_code_part(f'the level of factor {name!r}', level)}")
    return ";".join(parts) if parts else UNSTRATIFIED


def generate_list(seed: str, arms: Sequence[tuple[str, int]], block_sizes: Sequence[int],
                  strata: Sequence[str], slots_per_stratum: int) -> dict[str, list[PlannedSlot]]:
    """Each stratum's slots, from its own stream ``SeededStream(seed, 'blocks', stratum)``.

    A stratum's list depends only on the seed, the arms, the block sizes, its own key and the
    number of slots — not on which other strata exist — so a site added by an amendment gets
    a new list without changing anyone else's. Same inputs, same output.
    """
    strata = list(strata)
    if not strata:
        raise ValueError(f"at least one stratum is needed (an unstratified list has the one "
                         f"stratum {UNSTRATIFIED!r})")
    if len(set(strata)) != len(strata):
        raise ValueError(f"a stratum is listed twice: {strata}")
    for stratum in strata:
        if not isinstance(stratum, str) or not stratum:
            raise ValueError(f"stratum keys must be non-empty strings, got {stratum!r}")
    return {stratum: permuted_blocks(arms, block_sizes, slots_per_stratum,
                                     SeededStream(seed, "blocks", stratum))
            for stratum in strata}


def kit_codes(seed: str, n: int, length: int, *, taken: Collection[str] = ()) -> list[str]:
    """``n`` distinct kit codes of ``length`` characters from ``KIT_ALPHABET``, none in ``taken``.

    Drawn from ``SeededStream(seed, 'kits')``, a stream that never sees the arms: a kit code
    says nothing about the treatment in its box, which is what keeps a blinded trial blind.
    Codes that collide with ``taken`` (compared exactly) or with an earlier draw are redrawn,
    so the result is deterministic for the same seed and ``taken``, and the codes for ``n`` are
    a prefix of those for any larger ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"the number of kit codes must be an integer >= 0, got {n!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"the kit code length must be an integer >= 1, got {length!r}")
    excluded = set(taken)
    possible = len(KIT_ALPHABET) ** length
    blocked = sum(1 for code in excluded
                  if len(code) == length and all(c in KIT_ALPHABET for c in code))
    if n > possible - blocked:
        raise ValueError(f"only {possible - blocked} kit codes of length {length} are free, "
                         f"{n} were asked for: use longer codes")
    stream = SeededStream(seed, "kits")
    codes: list[str] = []
    while len(codes) < n:
        code = "".join(KIT_ALPHABET[stream.randbelow(len(KIT_ALPHABET))] for _ in range(length))
        if code not in excluded:
            excluded.add(code)
            codes.append(code)
    return codes


def _weighted_choice(stream: SeededStream, arms: Sequence[tuple[str, int]]) -> str:
    """An arm code drawn with probability proportional to its ratio."""
    if len(arms) == 1:
        return arms[0][0]
    draw = stream.randbelow(sum(ratio for _, ratio in arms))
    for code, ratio in arms:
        if draw < ratio:
            return code
        draw -= ratio
    raise AssertionError("unreachable: the draw is below the ratios' sum")


def minimise(arms: Sequence[tuple[str, int]], participant: Mapping[str, str],
             counts: Mapping[str, Mapping[str, Mapping[str, int]]], weights: Mapping[str, float],
             probability: float, stream: SeededStream) -> str:
    """Pocock–Simon minimisation with a random element: the arm for one participant.

    ``participant`` maps factor -> level; ``counts[factor][level][arm]`` are the numbers already
    allocated (missing keys mean 0); ``weights[factor]`` defaults to 1.0. For each candidate arm,
    the total imbalance is what it would be after adding the participant to that arm: per
    factor, the range (max - min) over arms of ``count / ratio`` at the participant's level —
    dividing by the ratio makes 2:1 the balanced state of a 2:1 trial — summed with the
    weights. With probability ``probability`` the arm with the smallest total is taken (ties at
    random, weighted by ratio); otherwise one of the other arms, at random weighted by ratio.
    When every arm gives the same total (the first participant, say) the choice is at random
    weighted by ratio. The random element keeps the next allocation from being predictable
    by whoever knows the counts.

    Totals are computed in exact fractions so that ties are true ties, not rounding accidents.
    """
    arms = _checked_arms(arms)
    if isinstance(probability, bool) or not isinstance(probability, (int, float)) \
            or not 0.5 < probability <= 1:
        raise ValueError(f"the minimisation probability must be above 0.5 and at most 1, "
                         f"got {probability!r}")
    codes = {code for code, _ in arms}
    for factor, levels in counts.items():
        for level, by_arm in levels.items():
            for arm, count in by_arm.items():
                if arm not in codes:
                    raise ValueError(f"counts[{factor!r}][{level!r}] mention unknown arm {arm!r} "
                                     f"(arms: {sorted(codes)})")
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise ValueError(f"counts[{factor!r}][{level!r}][{arm!r}] is {count!r}: "
                                     f"counts must be integers >= 0")
    factor_weights: dict[str, Fraction] = {}
    for factor, level in participant.items():
        if not isinstance(level, str):
            raise ValueError(f"the participant's level for {factor!r} must be a string code, "
                             f"got {level!r}")
        weight = weights.get(factor, 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"the weight of factor {factor!r} must be a number >= 0, "
                             f"got {weight!r}")
        factor_weights[factor] = Fraction(weight)

    def imbalance_if(candidate: str) -> Fraction:
        total = Fraction(0)
        for factor, level in participant.items():
            at_level = counts.get(factor, {}).get(level, {})
            scaled = [Fraction(at_level.get(code, 0) + (code == candidate), ratio)
                      for code, ratio in arms]
            total += factor_weights[factor] * (max(scaled) - min(scaled))
        return total

    totals = {code: imbalance_if(code) for code, _ in arms}
    smallest = min(totals.values())
    best = [(code, ratio) for code, ratio in arms if totals[code] == smallest]
    others = [(code, ratio) for code, ratio in arms if totals[code] != smallest]
    if not others:
        return _weighted_choice(stream, best)
    if stream.random() < probability:
        return _weighted_choice(stream, best)
    return _weighted_choice(stream, others)


def canonical_text(header: Mapping[str, object],
                   rows: Iterable[tuple[str, int, str, str, int, int]]) -> str:
    """The canonical text of an allocation list, the thing that is sealed.

    Header lines ``key=value`` sorted by key, each value ``json.dumps(value, sort_keys=True)``
    (default separators, so anyone can recompute it with the standard library); then ``--``;
    then one CSV line per row ``stratum,sequence,arm,kit_code,block_number,block_size`` (a
    missing kit code, or a missing block number or size, is empty), rows sorted by
    (stratum, sequence) so the order they were read from the database does not matter. Lines
    end with ``\\n``, including the last. Fields are quoted by the ``csv`` module's minimal
    rules, so a comma or newline inside a field cannot forge a row.
    """
    lines: list[str] = []
    for key in sorted(header):
        if not isinstance(key, str) or not key or "=" in key or "\n" in key or "\r" in key:
            raise ValueError(f"header key {key!r} must be a non-empty string without '=' "
                             f"or line breaks")
        lines.append(f"{key}={json.dumps(header[key], sort_keys=True)}\n")
    lines.append("--\n")

    checked: list[tuple[str, int, str, str, str, str]] = []
    for row in rows:
        try:
            stratum, sequence, arm, kit_code, block_number, block_size = row
        except (TypeError, ValueError):
            raise ValueError(f"each row must have 6 fields (stratum, sequence, arm, kit_code, "
                             f"block_number, block_size), got {row!r}") from None
        if not isinstance(stratum, str) or not isinstance(arm, str):
            raise ValueError(f"row {row!r}: stratum and arm must be strings")
        if isinstance(sequence, bool) or not isinstance(sequence, int):
            raise ValueError(f"row {row!r}: the sequence must be an integer")
        checked.append((stratum, sequence, arm, kit_code or "",
                        "" if block_number is None else str(block_number),
                        "" if block_size is None else str(block_size)))
    checked.sort(key=lambda row: (row[0], row[1]))
    for before, after in zip(checked, checked[1:]):
        if before[:2] == after[:2]:
            # Two rows at one position would make the order, and so the digest, arbitrary.
            raise ValueError(f"stratum {before[0]!r} has sequence {before[1]} twice")

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(checked)
    return "".join(lines) + buffer.getvalue()


def list_digest(header: Mapping[str, object],
                rows: Iterable[tuple[str, int, str, str, int, int]]) -> str:
    """SHA-256 (hex) of the canonical text in UTF-8: recorded when the list is sealed, and
    recomputed from the stored slots to show that none has changed since."""
    return hashlib.sha256(canonical_text(header, rows).encode("utf-8")).hexdigest()
