"""Interim analyses declared in the protocol (``interim_analyses``), read against their stopping
boundaries: a part of the data monitoring committee's closed report.

Each interim analysis looks at one endpoint when a fraction of the planned information is
reached (events of the endpoint, or participants randomised). Its test statistic is the
endpoint's log-rank statistic as the Outcomes page computes it (stratified as the endpoint says),
|Z| = sqrt(chi-square) on one degree of freedom; the boundary is two-sided and symmetric, for
efficacy:

- ``lan_demets_obrien_fleming``: alpha spending (Lan & DeMets, Biometrika 1983;70:659-663) with
  the O'Brien-Fleming-type function, each side spending half the overall two-sided level ``alpha``:
  alpha_side(t) = 2 - 2 Phi(Phi^-1(1 - alpha/4) / sqrt(t)) - gsDesign's ``sfLDOF`` with its
  one-sided level alpha/2. For alpha 0.05 and two looks at t = 0.5 and 1 this gives |Z| 2.963
  then 1.969, the figures gsDesign prints.
- ``lan_demets_pocock``: alpha_side(t) = alpha/2 ln(1 + (e - 1) t).
- ``haybittle_peto`` and ``fixed``: the |Z| given, or the one of a two-sided nominal ``p``.

The boundary of look k is c_k with P(|Z_1| < c_1, ..., |Z_k| < c_k) = 1 - 2 alpha_side(t_k)
under the null hypothesis, the Z's having the canonical joint distribution (corr(Z_i, Z_j) =
sqrt(t_i / t_j), Jennison & Turnbull 2000, section 3.1): closed form at the first look, scipy's
multivariate normal integral after it. Earlier looks are placed at their declared fractions, the
current one at the fraction observed when the planned information is known (the point of alpha
spending), else at its declared fraction - the report says which.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.stats import multivariate_normal, norm

from .survival import EndpointAnalysis


def alpha_spent_per_side(method: str, alpha: float, t: float) -> float:
    """The one-sided level spent by information fraction ``t`` (0 < t <= 1) of a two-sided
    overall level ``alpha``."""
    t = min(max(t, 1e-9), 1.0)
    if method == "lan_demets_obrien_fleming":
        return 2 - 2 * norm.cdf(norm.ppf(1 - alpha / 4) / math.sqrt(t))
    if method == "lan_demets_pocock":
        return alpha / 2 * math.log(1 + (math.e - 1) * t)
    raise ValueError(f"{method!r} is not an alpha-spending method")


def spending_boundaries(method: str, alpha: float, fractions: Sequence[float]) -> list[float]:
    """The two-sided |Z| boundary at each of the increasing information ``fractions``."""
    bounds: list[float] = []
    for k, t in enumerate(fractions):
        target = 1 - 2 * alpha_spent_per_side(method, alpha, t)   # P(no crossing by look k)
        if k == 0:
            bounds.append(float(norm.ppf(1 - (1 - target) / 2)))
            continue
        ts = list(fractions[:k + 1])
        cov = np.array([[math.sqrt(min(a, b) / max(a, b)) for b in ts] for a in ts])

        def excess(c: float) -> float:
            upper = np.array(bounds + [c])
            inside = multivariate_normal.cdf(upper, mean=np.zeros(k + 1), cov=cov,
                                             lower_limit=-upper, abseps=1e-7, releps=1e-7,
                                             rng=np.random.default_rng(0))
            return float(inside) - target
        bounds.append(float(brentq(excess, 0.5, 10.0, xtol=1e-5)))
    return bounds


def fixed_boundary(boundary: dict) -> float:
    return float(boundary["z"]) if "z" in boundary else float(norm.ppf(1 - boundary["p"] / 2))


@dataclass(frozen=True)
class InterimLook:
    code: str
    label: str
    endpoint: str                # the endpoint's label
    method: str
    declared_fraction: float
    measure: str                 # "events" or "participants"
    observed: int
    planned: int | None          # None: not stated in the protocol
    fraction: float | None       # observed / planned, when planned is known
    boundary_fraction: float     # where the boundary was computed
    boundary_z: float            # two-sided |Z| boundary
    boundary_p: float            # its two-sided nominal p
    statistic: float | None      # |Z| of the log-rank test; None when not computable
    p: float | None
    note: str

    @property
    def reached(self) -> bool | None:
        return None if self.fraction is None else self.fraction >= self.declared_fraction

    @property
    def crossed(self) -> bool | None:
        return None if self.statistic is None else self.statistic >= self.boundary_z


def interim_looks(interims: list[dict], analyses: dict[str, EndpointAnalysis], *,
                  randomised: int, target: int | None) -> list[InterimLook]:
    """Each declared interim analysis with its information, statistic and boundary, from the
    per-arm ``analyses`` (endpoint code -> analysis) the closed report computed."""
    looks = []
    for index, interim in enumerate(interims):
        analysis = analyses.get(interim["endpoint"])
        if analysis is None or analysis.pooled:
            continue
        information = interim["information"]
        if information["measure"] == "events":
            observed = sum(g.events for g in analysis.groups)
            planned = information["planned"]
        else:
            observed, planned = randomised, information["planned"] or target
        fraction = observed / planned if planned else None
        boundary = interim["boundary"]
        at = min(fraction, 1.0) if fraction else interim["information_fraction"]
        if boundary["method"].startswith("lan_demets"):
            earlier = [i["information_fraction"] for i in interims[:index]
                       if i["endpoint"] == interim["endpoint"]
                       and i["boundary"]["method"] == boundary["method"]
                       and i["information_fraction"] < at]
            z = spending_boundaries(boundary["method"], boundary["alpha"], earlier + [at])[-1]
        else:
            z = fixed_boundary(boundary)
        test = analysis.logrank
        statistic = p = None
        if test is not None and test.df == 1:
            statistic, p = math.sqrt(test.chi2), test.p
        looks.append(InterimLook(
            interim["code"], interim.get("label") or interim["code"], analysis.label,
            boundary["method"], interim["information_fraction"], information["measure"],
            observed, planned, fraction, at, z, float(2 * (1 - norm.cdf(z))), statistic, p,
            interim.get("note", "")))
    return looks
