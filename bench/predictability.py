"""How predictable is the next allocation to a site that sees its own allocations?

Issue 22: in an open-label trial a site knows the arm of each participant it randomised. Reading
them, it can guess the next one (selection bias: Blackwell & Hodges, Biometrika 1957;44:
'convergence strategy'): guess the arm that has had fewer allocations (relative to its ratio) so
far; a tie is a coin toss. And with permuted blocks some allocations are known for certain: when
every way of cutting what the site saw into balanced blocks of the allowed sizes leaves one arm
only for the next slot (the last of a block, or the last two of a block of four that began AA).

This script simulates many trials with a protocol file's randomisation settings (the generator
of ``randomisation/generator.py``, the same code that makes the lists), participants arriving at
sites and strata uniformly at random, and reports per setting:

- ``correct``: the share of allocations the site guesses right (50 % would be none),
- ``certain``: the share it knows for certain,
- two views of what the site reads: its **stratum** (its own allocations with the same strata
  values), and, for minimisation, its **site** (all its own allocations: the site factor of the
  minimisation, which the site knows whole).

No database: the generator is pure. Run (``--compare`` with 2,000 lists: about five minutes on
the project machine):

    .venv/bin/python bench/predictability.py                     # both shipped protocols
    .venv/bin/python bench/predictability.py --compare           # and the alternatives below
    .venv/bin/python bench/predictability.py trials/protocols/rectal-resection.yaml \\
        --block-sizes 4,6,8 --lists 4000

Figures: docs/randomisation.md and bench/README.md.
"""
from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from randomisation import generator  # noqa: E402
from trials.protocol import read_protocol_file  # noqa: E402

PARTICIPANTS = 120   # per simulated trial, when the protocol states no target enrolment


@dataclass(frozen=True)
class Setting:
    label: str
    arms: list[tuple[str, int]]
    sites: list[str]
    factors: list[tuple[str, list[str]]]      # the protocol's stratification factors
    stratify_by_site: bool
    method: str                                # permuted_blocks | minimisation
    block_sizes: tuple[int, ...] = ()
    probability: float = 1.0
    weights: dict | None = None
    participants: int = PARTICIPANTS


def setting_of(path: Path, **override) -> Setting:
    data = read_protocol_file(path)
    rnd = data["randomisation"]
    mini = rnd.get("minimisation", {})
    values = dict(
        label=f"{data['trial']['slug']}: {rnd['method']}",
        arms=[(a["code"], a["ratio"]) for a in data["arms"]],
        sites=[s["code"] for s in data["sites"]],
        factors=[(f["code"], [lv["code"] for lv in f["levels"]])
                 for f in data.get("stratification_factors", [])],
        stratify_by_site=bool(rnd.get("stratify_by_site")),
        method=rnd["method"], block_sizes=tuple(rnd.get("block_sizes", ())),
        probability=mini.get("probability", 1.0), weights=mini.get("weights", {}),
        participants=data["trial"].get("target_enrolment") or PARTICIPANTS)
    values.update(override)
    return Setting(**values)


def describe(s: Setting) -> str:
    if s.method == "permuted_blocks":
        how = f"permuted blocks {'/'.join(map(str, s.block_sizes))}"
    else:
        how = f"minimisation p={s.probability:g}"
    strata = (["site"] if s.stratify_by_site else []) + [f for f, _ in s.factors]
    return f"{s.label.split(':')[0]}: {how}, strata {' x '.join(strata) or 'none'}"


# --------------------------------------------------------------------------- what the site knows


def forced_next(seen: list[str], arms: list[tuple[str, int]], sizes: tuple[int, ...]
                ) -> str | None:
    """The arm the next slot must hold, if every cut of ``seen`` (a whole stratum's list so
    far) into balanced blocks of ``sizes`` agrees; else None."""
    total = sum(r for _, r in arms)
    quota = {s: {a: r * s // total for a, r in arms} for s in sizes}
    n = len(seen)
    ok = [True] + [False] * n          # ok[j]: seen[:j] is whole blocks
    for j in range(1, n + 1):
        for s in sizes:
            if s <= j and ok[j - s]:
                block = seen[j - s:j]
                if all(block.count(a) == q for a, q in quota[s].items()):
                    ok[j] = True
                    break
    if ok[n]:
        return None                    # a block may just have ended: anything may come
    possible: set[str] = set()
    for start in range(max(0, n - max(sizes)), n):
        if not ok[start]:
            continue
        block = seen[start:]
        for s in sizes:
            if s > len(block) and all(block.count(a) <= q for a, q in quota[s].items()):
                possible |= {a for a, q in quota[s].items() if block.count(a) < q}
    return possible.pop() if len(possible) == 1 else None


def convergence_guess(counts: dict[str, int], arms: list[tuple[str, int]]) -> list[str]:
    """The arms with the fewest allocations so far relative to their ratio (a tie: several)."""
    scaled = {a: counts.get(a, 0) / r for a, r in arms}
    low = min(scaled.values())
    return [a for a, _ in arms if scaled[a] == low]


# --------------------------------------------------------------------------- simulation


@dataclass
class Tally:
    n: int = 0
    correct: float = 0.0
    certain: int = 0

    def add(self, truth: str, guesses: list[str], forced: str | None) -> None:
        self.n += 1
        if forced is not None:
            self.certain += 1
            self.correct += truth == forced
        else:
            self.correct += (truth in guesses) / len(guesses)


def simulate(s: Setting, lists: int, seed: str = "predictability") -> dict[str, Tally]:
    rng = random.Random(seed)          # arrivals only; allocations come from the generator
    by_stratum, by_site = Tally(), Tally()
    factors = ([("site", s.sites)] if s.stratify_by_site else []) + s.factors
    for trial in range(lists):
        lists_of: dict[str, list] = {}
        used: dict[str, int] = {}
        counts: dict[str, dict[str, dict[str, int]]] = {}
        seen_stratum: dict[tuple, list[str]] = {}   # (site, strata values): what the site saw
        seen_site: dict[str, dict[str, int]] = {}
        whole_stratum: dict[str, list[str]] = {}     # the stratum's whole list so far
        for k in range(s.participants):
            site = rng.choice(s.sites)
            levels = {f: rng.choice(lv) for f, lv in s.factors}
            strata = ({"site": site} if s.stratify_by_site else {}) | levels
            key = generator.stratum_key(list(strata.items())) if strata else "all"
            mine = (site, key)
            history = seen_stratum.setdefault(mine, [])
            forced = None
            if s.method == "permuted_blocks":
                if key not in lists_of:
                    stream = generator.SeededStream(f"{seed}:{trial}", key)
                    lists_of[key] = generator.permuted_blocks(s.arms, list(s.block_sizes),
                                                              s.participants, stream)
                arm = lists_of[key][used.get(key, 0)].arm
                used[key] = used.get(key, 0) + 1
                # The site sees the whole stratum only when the strata include the site.
                if s.stratify_by_site:
                    forced = forced_next(history, s.arms, s.block_sizes)
            else:
                stream = generator.SeededStream(f"{seed}:{trial}", "minimisation", str(k + 1))
                arm = generator.minimise(s.arms, strata, counts, s.weights or {}, s.probability,
                                         stream)
                for f, level in strata.items():
                    by_arm = counts.setdefault(f, {}).setdefault(level, {})
                    by_arm[arm] = by_arm.get(arm, 0) + 1
            tally_counts = {a: history.count(a) for a, _ in s.arms}
            by_stratum.add(arm, convergence_guess(tally_counts, s.arms), forced)
            site_counts = seen_site.setdefault(site, {})
            by_site.add(arm, convergence_guess(site_counts, s.arms), None)
            history.append(arm)
            whole_stratum.setdefault(key, []).append(arm)
            site_counts[arm] = site_counts.get(arm, 0) + 1
    return {"stratum": by_stratum, "site": by_site}


def report(s: Setting, lists: int) -> str:
    result = simulate(s, lists)
    st, si = result["stratum"], result["site"]
    return (f"{describe(s):<70} {s.participants:>5} {lists:>6}  "
            f"{100 * st.correct / st.n:5.1f} %  {100 * st.certain / st.n:5.1f} %  "
            f"{100 * si.correct / si.n:5.1f} %")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--lists", type=int, default=2000, help="simulated trials per setting")
    parser.add_argument("--participants", type=int, help="participants per simulated trial")
    parser.add_argument("--block-sizes", help="override, e.g. 4,6,8")
    parser.add_argument("--minimisation", type=float, metavar="P",
                        help="override: minimisation with this probability")
    parser.add_argument("--compare", action="store_true",
                        help="also blocks 2/4, blocks 4/6/8 and minimisation p=0.8 and 0.7 "
                             "with each file's strata")
    args = parser.parse_args(argv)
    files = args.files or sorted((ROOT / "trials" / "protocols").glob("*.yaml"))
    print(f"{'setting':<70} {'n':>5} {'lists':>6}  {'correct':>7}  {'certain':>7}  "
          f"{'site view':>9}")
    for path in files:
        base: dict = {}
        if args.participants:
            base["participants"] = args.participants
        settings = []
        if args.block_sizes:
            settings.append(setting_of(path, **base, method="permuted_blocks", block_sizes=tuple(
                int(x) for x in args.block_sizes.split(","))))
        elif args.minimisation:
            settings.append(setting_of(path, **base, method="minimisation",
                                       probability=args.minimisation))
        else:
            settings.append(setting_of(path, **base))
        if args.compare:
            settings += [setting_of(path, **base, method="permuted_blocks", block_sizes=sizes)
                         for sizes in ((2, 4), (4, 6, 8))]
            settings += [setting_of(path, **base, method="minimisation", probability=p)
                         for p in (0.8, 0.7)]
        shown = set()
        for s in settings:
            if describe(s) not in shown:   # the file's own setting is also one compared
                shown.add(describe(s))
                print(report(s, args.lists), flush=True)


if __name__ == "__main__":
    main()
