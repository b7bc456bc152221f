"""Survival analysis of the derived endpoints: Kaplan-Meier per arm (or pooled), medians with
their 95 % interval, landmark rates with an exact binomial interval, numbers at risk and the
log-rank test. Estimation is lifelines' (``KaplanMeierFitter``, ``multivariate_logrank_test``);
the exact binomial interval is scipy's (``binomtest(...).proportion_ci(method="exact")``).
This module only arranges their results for the page and the report; ``METHODS`` states them.

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


def kaplan_meier(times: Sequence[float], events: Sequence[bool], *, key: str, label: str,
                 landmarks: Sequence[dict] = (), at_risk_times: Sequence[float] = ()) -> GroupResult:
    from lifelines import KaplanMeierFitter
    from lifelines.utils import median_survival_times

    n = len(times)
    if n == 0:
        return GroupResult(key, label, 0, 0, Interval(None, None, None),
                           [landmark_rate([], [], lm["months"], lm["level"],
                                          primary=lm.get("primary", False))
                            for lm in landmarks], [(0.0, 1.0)], [], [0 for _ in at_risk_times])
    kmf = KaplanMeierFitter(alpha=1 - MEDIAN_LEVEL)
    kmf.fit(list(times), event_observed=[bool(e) for e in events], label="km")
    curve = kmf.survival_function_["km"]
    bounds = median_survival_times(kmf.confidence_interval_)
    median = Interval(_finite(kmf.median_survival_time_),
                      _finite(bounds.iloc[0, 0]), _finite(bounds.iloc[0, 1]))
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


def logrank(groups: Sequence[tuple[Sequence[float], Sequence[bool]]]) -> LogRank | None:
    """The log-rank test between groups (None with fewer than two non-empty groups or no
    event)."""
    from lifelines.statistics import multivariate_logrank_test

    groups = [g for g in groups if len(g[0])]
    if len(groups) < 2 or not any(any(e) for _, e in groups):
        return None
    durations, labels, observed = [], [], []
    for index, (times, events) in enumerate(groups):
        durations += list(times)
        observed += [bool(e) for e in events]
        labels += [index] * len(times)
    result = multivariate_logrank_test(durations, labels, observed)
    return LogRank(float(result.test_statistic), int(result.degrees_of_freedom),
                   float(result.p_value))


def at_risk_times_for(horizon: int, *, step: int = 3) -> list[float]:
    """Every ``step`` months from 0 to the horizon (3: the trials' assessment interval)."""
    if horizon > 24:
        step = 6
    return [float(m) for m in range(0, horizon + 1, step)]


def analyse(endpoint: dict, values, *, horizon: int, arms: Sequence[tuple[str, str]] | None
            ) -> EndpointAnalysis:
    """Kaplan-Meier of one endpoint: per arm when ``arms`` (code, label) is given, else pooled.
    Pass ``arms=None`` for a reader blinded to the arm."""
    at_risk_times = at_risk_times_for(horizon)
    landmarks = endpoint.get("landmarks", [])
    groups: list[tuple[str, str, list]] = (
        [(code, label, [v for v in values if v.arm_code == code]) for code, label in arms]
        if arms is not None else [("all", str(_("All participants")), list(values))])
    results = [kaplan_meier([v.months for v in rows], [v.event for v in rows], key=key,
                            label=label, landmarks=landmarks, at_risk_times=at_risk_times)
               for key, label, rows in groups]
    test = None
    if arms is not None:
        test = logrank([([v.months for v in rows], [v.event for v in rows])
                        for _, _, rows in groups])
    return EndpointAnalysis(endpoint["code"], endpoint["label"], horizon, arms is None, results,
                            at_risk_times, test, endpoint.get("primary", False), endpoint)


METHODS = _(
    "Time runs from randomisation, in months of 365.25/12 days. An endpoint's event date is the "
    "earliest date recorded for it on a completed CRF; a participant without the event is "
    "censored at the latest date of the evidence the protocol names (visits done and dated "
    "forms: last known alive for overall survival, last tumour assessment for progression), and "
    "at the protocol's follow-up horizon (administrative censoring). Survival curves are "
    "Kaplan-Meier estimates (lifelines %(lifelines)s); medians are given with a 95 %% "
    "confidence interval (Brookmeyer-Crowley, from the Greenwood variance on the log(-log) "
    "scale); 'not reached' when the curve stays above 50 %%. Arms are compared with the "
    "two-sided log-rank test. Landmark rates are the proportion of participants evaluable at "
    "the landmark (event before it, or followed up to it, within the assessment window the "
    "protocol states) who are event-free at it, with an "
    "exact binomial (Clopper-Pearson) confidence interval at the level the protocol states; "
    "the Kaplan-Meier estimate at the landmark is shown beside it. Numbers at risk count "
    "participants still followed and event-free at each time.")


def methods_text() -> str:
    import lifelines

    return str(METHODS) % {"lifelines": lifelines.__version__}
