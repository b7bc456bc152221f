"""Survival analysis of the derived endpoints: Kaplan-Meier per arm (or pooled), medians with
their 95 % interval, landmark rates with an exact binomial interval, numbers at risk, the
log-rank test stratified by the randomisation strata and the Cox hazard ratio.

The curve is lifelines' (``KaplanMeierFitter``), the hazard ratio too (``CoxPHFitter`` with
``strata``); the exact binomial interval is scipy's. The median, its interval and the
stratified log-rank test are computed here, in small pure functions, because lifelines follows
other conventions (the start of a flat at 50 %, the log(-log) band only, no strata in its
log-rank tests): R's survival package is the reference, and the tests hold them to its
published output. ``METHODS`` and each analysis' ``methods`` state what was done.

Landmark rates (REMINET: PFS at 6 months, 90 %; rectal: OS at 2 years) are the proportion of
participants *evaluable at the landmark* - the event observed by then, or followed up to it -
who are event-free at it, with the Clopper-Pearson interval at the protocol's level. This is how
REMINET reports its primary endpoint: 19 of 26 evaluable is 73.1 % (90 % CI 55.3-86.6). The
Kaplan-Meier estimate at the landmark, which also uses participants censored before it, is
shown beside it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

from django.utils.translation import gettext_lazy as _

MEDIAN_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class LandmarkRate:
    months: float
    level: float
    evaluable: int
    event_free: int
    rate: float | None           # event_free / evaluable
    lower: float | None          # Clopper-Pearson at ``level``
    upper: float | None
    km: float | None             # the Kaplan-Meier estimate at the landmark
    primary: bool = False


@dataclass
class GroupResult:
    key: str                     # arm code, or "all" when pooled
    label: str
    n: int
    events: int
    median: Interval             # None estimate/upper: not reached
    landmarks: list[LandmarkRate]
    steps: list[tuple[float, float]]       # (time, survival) at each change, from (0, 1)
    censored: list[tuple[float, float]]    # (time, survival) of each censored observation
    at_risk: list[int]                     # at each of the analysis' ``at_risk_times``


@dataclass(frozen=True)
class LogRank:
    chi2: float
    df: int
    p: float


@dataclass(frozen=True)
class HazardRatio:
    arm: str                     # the arm compared with the reference (first) arm
    reference: str
    estimate: float | None
    lower: float | None
    upper: float | None
    p: float | None              # Wald
    reason: str = ""             # why not estimable


@dataclass
class EndpointAnalysis:
    code: str
    label: str
    horizon: int
    pooled: bool
    groups: list[GroupResult]
    at_risk_times: list[float]
    logrank: LogRank | None = None
    primary: bool = False
    definition: dict = field(default_factory=dict)
    hazard_ratios: list[HazardRatio] = field(default_factory=list)
    strata: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)   # this endpoint's method sentences


def clopper_pearson(successes: int, trials: int, level: float) -> tuple[float, float]:
    """The exact binomial (Clopper-Pearson) interval of ``successes`` / ``trials``."""
    from scipy.stats import binomtest

    if trials <= 0:
        raise ValueError("An interval needs at least one trial.")
    ci = binomtest(successes, trials).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def landmark_rate(times: Sequence[float], events: Sequence[bool], months: float, level: float,
                  *, window_days: int = 0, km: float | None = None,
                  primary: bool = False) -> LandmarkRate:
    """Event-free at ``months`` among the participants evaluable then: an event by then, or
    followed up (event or not) to at least then - or to within ``window_days`` before it (the
    protocol's assessment window)."""
    from outcomes.endpoints import DAYS_PER_MONTH

    reached = months - window_days / DAYS_PER_MONTH
    evaluable = [(t, e) for t, e in zip(times, events) if (e and t <= months) or t >= reached]
    failed = sum(1 for t, e in evaluable if e and t <= months)
    n = len(evaluable)
    if n == 0:
        return LandmarkRate(months, level, 0, 0, None, None, None, km, primary)
    lower, upper = clopper_pearson(n - failed, n, level)
    return LandmarkRate(months, level, n, n - failed, (n - failed) / n, lower, upper, km, primary)


def _finite(value) -> float | None:
    value = float(value)
    return None if math.isinf(value) or math.isnan(value) else value


# --------------------------------------------------------------------------- median and band
#
# R's survival package is the reference (survfit.formula, quantile.survfit, print.survfit):
# - the band is built from the Greenwood variance of log S, sigma^2(t) = sum d / (n (n - d)),
#   which R prints as ``std.err`` (the standard error of the cumulative hazard);
#   conf.type = "log" (R's default): S exp(+-z sigma), capped at 1;
#   conf.type = "log-log" (SAS's default, lifelines' "exponential Greenwood"):
#   from S^exp(-z sigma / log S) to S^exp(z sigma / log S);
# - the median is where a horizontal line at 0.5 meets the curve: the first time S(t) <= 0.5,
#   except where the curve is exactly 0.5 over an interval, then that interval's midpoint
#   ("the midpoint of the horizontal segment is returned. This mirrors the standard behavior of
#   the median when data is uncensored", quantile.survfit); a flat at 0.5 that ends the curve
#   runs to the last time observed;
# - the median's interval is where the same line meets the band: the lower band gives the lower
#   limit, the upper band the upper limit (Brookmeyer and Crowley 1982), same midpoint rule.

CI_TRANSFORMS = ("log", "log-log")
DEFAULT_CI_TRANSFORM = "log"      # R's survfit default
_TOLERANCE = math.sqrt(2.220446049250313e-16)   # R: sqrt(.Machine$double.eps)


def greenwood_band(surv: Sequence[float], at_risk: Sequence[int], deaths: Sequence[int], *,
                   level: float, transform: str) -> list[tuple[float | None, float | None]]:
    """The pointwise interval of a Kaplan-Meier curve at each of its times (``surv`` after the
    ``deaths`` among ``at_risk`` there), as R's ``survfit(conf.type=transform)``: (1, 1) before
    the first death, (None, None) where R gives NA (the curve has reached 0)."""
    from scipy.stats import norm

    if transform not in CI_TRANSFORMS:
        raise ValueError(f"unknown CI transform {transform!r}: {', '.join(CI_TRANSFORMS)}")
    z = float(norm.ppf(1 - (1 - level) / 2))
    band, var = [], 0.0
    for s, n, d in zip(surv, at_risk, deaths):
        if d:
            var = math.inf if n == d else var + d / (n * (n - d))
        if s <= 0 or math.isinf(var):
            band.append((None, None))
        elif s >= 1 or var == 0:
            band.append((1.0, 1.0) if s >= 1 else (s, s))
        elif transform == "log":
            sigma = math.sqrt(var)
            band.append((s * math.exp(-z * sigma), min(1.0, s * math.exp(z * sigma))))
        else:
            sigma = math.sqrt(var)
            log_s = math.log(s)
            band.append((s ** math.exp(-z * sigma / log_s), s ** math.exp(z * sigma / log_s)))
    return band


def survival_quantile(times: Sequence[float], curve: Sequence[float | None], p: float = 0.5, *,
                      last: float | None = None) -> float | None:
    """Where the step curve (``curve[i]`` from ``times[i]`` on, non-increasing) meets ``p``: the
    first time it is at or below ``p``, or the midpoint of a flat exactly at ``p`` (to ``last``,
    the end of follow-up, when the flat ends the curve); None when it stays above ``p``.
    R's ``quantile.survfit`` (its ``findq``)."""
    points = [(t, y) for t, y in zip(times, curve) if y is not None]
    # Where the value does not change (censoring), the step goes on: keep each value's start.
    steps = [pt for i, pt in enumerate(points) if i == 0 or pt[1] != points[i - 1][1]]
    last = points[-1][0] if last is None and points else last
    for i, (t, y) in enumerate(steps):
        if abs(y - p) < _TOLERANCE:
            end = steps[i + 1][0] if i + 1 < len(steps) else last
            return (t + end) / 2
        if y < p:
            return t
    return None


def _kaplan_meier_table(times: Sequence[float], events: Sequence[bool]):
    """lifelines' Kaplan-Meier curve with what Greenwood needs at each distinct time."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter()
    kmf.fit(list(times), event_observed=[bool(e) for e in events], label="km")
    table = kmf.event_table
    curve = kmf.survival_function_["km"]
    rows = [(float(t), int(table.at[t, "at_risk"]), int(table.at[t, "observed"]))
            for t in table.index]
    surv = [float(curve.loc[t]) for t, _n, _d in rows]
    return kmf, rows, surv


def median_with_interval(times: Sequence[float], events: Sequence[bool], *,
                         level: float = MEDIAN_LEVEL,
                         transform: str = DEFAULT_CI_TRANSFORM) -> Interval:
    """The median and its interval, as R's ``print(survfit(..., conf.type=transform))``."""
    if not len(times):
        return Interval(None, None, None)
    _kmf, rows, surv = _kaplan_meier_table(times, events)
    return _median(rows, surv, last=max(float(t) for t in times), level=level,
                   transform=transform)


def _median(rows, surv, *, last: float, level: float, transform: str) -> Interval:
    band = greenwood_band(surv, [n for _t, n, _d in rows], [d for _t, _n, d in rows],
                          level=level, transform=transform)
    at = [0.0] + [t for t, _n, _d in rows]
    return Interval(survival_quantile(at, [1.0] + surv, last=last),
                    survival_quantile(at, [1.0] + [b[0] for b in band], last=last),
                    survival_quantile(at, [1.0] + [b[1] for b in band], last=last))


def kaplan_meier(times: Sequence[float], events: Sequence[bool], *, key: str, label: str,
                 landmarks: Sequence[dict] = (), at_risk_times: Sequence[float] = (),
                 ci_transform: str = DEFAULT_CI_TRANSFORM) -> GroupResult:
    n = len(times)
    if n == 0:
        return GroupResult(key, label, 0, 0, Interval(None, None, None),
                           [landmark_rate([], [], lm["months"], lm["level"],
                                          primary=lm.get("primary", False))
                            for lm in landmarks], [(0.0, 1.0)], [], [0 for _ in at_risk_times])
    kmf, rows, surv = _kaplan_meier_table(times, events)
    curve = kmf.survival_function_["km"]
    median = _median(rows, surv, last=max(float(t) for t in times), level=MEDIAN_LEVEL,
                     transform=ci_transform)
    steps = [(0.0, 1.0)]
    for t, s in curve.items():
        if float(s) != steps[-1][1]:
            steps.append((float(t), float(s)))
    censored = [(float(t), float(kmf.predict(t))) for t, e in zip(times, events) if not e]
    rates = [landmark_rate(times, events, lm["months"], lm["level"],
                           window_days=lm.get("window_days", 0),
                           km=float(kmf.predict(lm["months"])), primary=lm.get("primary", False))
             for lm in landmarks]
    at_risk = [sum(1 for t in times if t >= when) for when in at_risk_times]
    return GroupResult(key, label, n, int(sum(bool(e) for e in events)), median, rates, steps,
                       censored, at_risk)


# --------------------------------------------------------------------------- comparing arms
#
# The stratified log-rank test (e.g. Collett, Modelling Survival Data in Medical Research,
# chapter 2, stratified tests; R's survdiff(... + strata(...))): within each stratum h and at each event time
# j, with n_hj at risk of whom n_hkj in arm k, and d_hj events of which d_hkj in arm k,
#     U_k = sum_h sum_j (d_hkj - d_hj n_hkj / n_hj)
#     V_kl = sum_h sum_j d_hj (n_hj - d_hj) / (n_hj - 1) * (n_hkj / n_hj) (delta_kl - n_hlj / n_hj)
# and chi-square = U' V^-1 U on (arms - 1) degrees of freedom, U and V without the last arm.
# With one stratum it is the ordinary log-rank test (lifelines' ``logrank_test``).


def logrank(groups: Sequence[tuple[Sequence[float], Sequence[bool]]],
            strata: Sequence[Sequence[str]] | None = None) -> LogRank | None:
    """The log-rank test between groups (times, events), stratified when ``strata`` gives each
    participant's stratum (same shape as ``groups``). None with fewer than two non-empty groups
    or no event."""
    import numpy as np
    from scipy.stats import chi2 as chi2_distribution

    kept = [i for i, g in enumerate(groups) if len(g[0])]
    if len(kept) < 2 or not any(any(groups[i][1]) for i in kept):
        return None
    rows = []   # (stratum, time, event, group)
    for k, i in enumerate(kept):
        times, events = groups[i]
        labels = strata[i] if strata is not None else [""] * len(times)
        rows += [(str(s), float(t), bool(e), k) for t, e, s in zip(times, events, labels)]
    g = len(kept)
    u = np.zeros(g)
    v = np.zeros((g, g))
    for stratum in sorted({r[0] for r in rows}):
        members = [r for r in rows if r[0] == stratum]
        for t in sorted({r[1] for r in members if r[2]}):
            at_risk = np.array([sum(1 for r in members if r[3] == k and r[1] >= t)
                                for k in range(g)], dtype=float)
            died = np.array([sum(1 for r in members if r[3] == k and r[1] == t and r[2])
                             for k in range(g)], dtype=float)
            n, d = at_risk.sum(), died.sum()
            share = at_risk / n
            u += died - d * share
            if n > 1:
                v += d * (n - d) / (n - 1) * (np.diag(share) - np.outer(share, share))
    u, v = u[:-1], v[:-1, :-1]
    try:
        statistic = float(u @ np.linalg.solve(v, u))
    except np.linalg.LinAlgError:
        return None
    df = g - 1
    return LogRank(statistic, df, float(chi2_distribution.sf(statistic, df)))


def cox_hazard_ratios(groups: Sequence[tuple[str, Sequence[float], Sequence[bool]]],
                      strata: Sequence[Sequence[str]] | None = None, *,
                      level: float = 0.95) -> list[HazardRatio]:
    """Hazard ratio of each arm against the first (the protocol's order), from a Cox model with
    the arm as covariate, stratified by ``strata`` (each participant's stratum, per group):
    lifelines' ``CoxPHFitter(strata=...)`` (Efron's ties, as R's ``coxph``), Wald interval.
    Not estimable, with the reason, rather than an error: no participant or no event in an arm,
    no event at all, a fit that does not converge."""
    import warnings

    import pandas as pd
    from lifelines import CoxPHFitter
    from lifelines.exceptions import ConvergenceError, ConvergenceWarning

    if len(groups) < 2:
        return []
    reference = groups[0][0]
    names = [f"arm_{i}" for i in range(1, len(groups))]

    def none(arm: str, reason: str) -> HazardRatio:
        return HazardRatio(arm, reference, None, None, None, None, reason)

    empty = [code for code, times, _e in groups if not len(times)]
    no_event = [code for code, _t, events in groups if len(events) and not any(events)]
    if empty or no_event:
        reason = (_("no participant in arm %(arms)s") % {"arms": ", ".join(empty)} if empty
                  else _("no event in arm %(arms)s") % {"arms": ", ".join(no_event)})
        return [none(code, str(reason)) for code, _t, _e in groups[1:]]
    records = []
    for index, (code, times, events) in enumerate(groups):
        labels = strata[index] if strata is not None else [""] * len(times)
        for t, e, s in zip(times, events, labels):
            records.append({"time": float(t), "event": int(bool(e)), "stratum": str(s),
                            **{name: int(index == i + 1) for i, name in enumerate(names)}})
    frame = pd.DataFrame.from_records(records)
    stratified = frame["stratum"].nunique() > 1
    if not stratified:
        frame = frame.drop(columns="stratum")
    fitter = CoxPHFitter(alpha=1 - level, strata=["stratum"] if stratified else None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            fitter.fit(frame, duration_col="time", event_col="event")
    except (ConvergenceError, ConvergenceWarning, ValueError, ArithmeticError):
        # e.g. every event of one arm before any of the other: the likelihood has no maximum
        return [none(code, str(_("the Cox model did not converge")))
                for code, _t, _e in groups[1:]]
    summary = fitter.summary
    lower_col = next(c for c in summary.columns if c.startswith("exp(coef) lower"))
    upper_col = next(c for c in summary.columns if c.startswith("exp(coef) upper"))
    ratios = []
    for (code, _t, _e), name in zip(groups[1:], names):
        row = summary.loc[name]
        values = [_finite(row["exp(coef)"]), _finite(row[lower_col]), _finite(row[upper_col])]
        if any(v is None for v in values):
            ratios.append(none(code, str(_("the Cox model gives no finite estimate"))))
        else:
            ratios.append(HazardRatio(code, reference, *values, float(row["p"])))
    return ratios


def at_risk_times_for(horizon: int, *, step: int = 3) -> list[float]:
    """Every ``step`` months from 0 to the horizon (3: the trials' assessment interval)."""
    if horizon > 24:
        step = 6
    return [float(m) for m in range(0, horizon + 1, step)]


def analyse(endpoint: dict, values, *, horizon: int, arms: Sequence[tuple[str, str]] | None,
            strata: Sequence[str] = ()) -> EndpointAnalysis:
    """Kaplan-Meier of one endpoint: per arm when ``arms`` (code, label) is given, else pooled.
    Pass ``arms=None`` for a reader blinded to the arm: then no test and no hazard ratio.
    ``strata``: the randomisation factors the log-rank test and the Cox model are stratified by,
    read from each value's ``strata`` (as recorded at randomisation)."""
    at_risk_times = at_risk_times_for(horizon)
    landmarks = endpoint.get("landmarks", [])
    transform = endpoint.get("ci_transform", DEFAULT_CI_TRANSFORM)
    groups: list[tuple[str, str, list]] = (
        [(code, label, [v for v in values if v.arm_code == code]) for code, label in arms]
        if arms is not None else [("all", str(_("All participants")), list(values))])
    results = [kaplan_meier([v.months for v in rows], [v.event for v in rows], key=key,
                            label=label, landmarks=landmarks, at_risk_times=at_risk_times,
                            ci_transform=transform)
               for key, label, rows in groups]
    methods = [median_method(transform)]
    test, ratios = None, []
    if arms is not None:
        def stratum(value) -> str:
            return ";".join(f"{f}={(value.strata or {}).get(f, '')}" for f in strata)

        by_stratum = [[stratum(v) for v in rows] for _k, _l, rows in groups]
        test = logrank([([v.months for v in rows], [v.event for v in rows])
                        for _k, _l, rows in groups], by_stratum if strata else None)
        ratios = cox_hazard_ratios([(key, [v.months for v in rows], [v.event for v in rows])
                                    for key, _l, rows in groups], by_stratum if strata else None)
        methods += comparison_methods(strata)
    return EndpointAnalysis(endpoint["code"], endpoint["label"], horizon, arms is None, results,
                            at_risk_times, test, endpoint.get("primary", False), endpoint,
                            hazard_ratios=ratios, strata=list(strata), methods=methods)


def median_method(transform: str) -> str:
    scale = _("log scale (R's conf.type \"log\", its default)") if transform == "log" else \
        _("log(-log) scale (R's conf.type \"log-log\", SAS's default)")
    return str(_(
        "Median: the first time the Kaplan-Meier curve is at or below 50 %%, or the midpoint of "
        "an interval over which it is exactly 50 %% (the convention of R's survfit); its 95 %% "
        "confidence interval (Brookmeyer-Crowley) is where the curve's pointwise interval, from "
        "the Greenwood variance on the %(scale)s, crosses 50 %%.") % {"scale": scale})


def comparison_methods(strata: Sequence[str]) -> list[str]:
    if strata:
        by = ", ".join(strata)
        return [
            str(_("Log-rank test stratified by the randomisation strata (%(by)s): observed minus "
                  "expected events and their variances summed over the strata, chi-square on "
                  "(arms - 1) degrees of freedom.") % {"by": by}),
            str(_("Hazard ratio of each arm against the first arm of the protocol, with its "
                  "95 %% Wald confidence interval, from a Cox proportional-hazards model with "
                  "the arm as only covariate, stratified by %(by)s (lifelines' CoxPHFitter, "
                  "Efron's method for ties).") % {"by": by})]
    return [
        str(_("Log-rank test, unstratified (the protocol names no strata).")),
        str(_("Hazard ratio of each arm against the first arm of the protocol, with its 95 %% "
              "Wald confidence interval, from a Cox proportional-hazards model with the arm as "
              "only covariate (lifelines' CoxPHFitter, Efron's method for ties).") % {})]


METHODS = _(
    "Time runs from randomisation, in months of 365.25/12 days. An endpoint's event date is the "
    "earliest date recorded for it on a completed CRF; a participant without the event is "
    "censored at the latest date of the evidence the protocol names (visits done and dated "
    "forms: last known alive for overall survival, last tumour assessment for progression), and "
    "at the protocol's follow-up horizon (administrative censoring). Survival curves are "
    "Kaplan-Meier estimates (lifelines %(lifelines)s); medians, their confidence interval, the "
    "tests and hazard ratios are stated with each endpoint; 'not reached' when the curve stays "
    "above 50 %%. Landmark rates are the proportion of participants evaluable at "
    "the landmark (event before it, or followed up to it, within the assessment window the "
    "protocol states) who are event-free at it, with an "
    "exact binomial (Clopper-Pearson) confidence interval at the level the protocol states; "
    "the Kaplan-Meier estimate at the landmark is shown beside it. Numbers at risk count "
    "participants still followed and event-free at each time.")


def methods_text() -> str:
    import lifelines

    return str(METHODS) % {"lifelines": lifelines.__version__}
