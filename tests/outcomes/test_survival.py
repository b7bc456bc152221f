"""Kaplan-Meier, log-rank and exact binomial intervals against published values.

Reference data: the NCCTG advanced lung cancer data (Loprinzi et al., J Clin Oncol 1994), the
``lung`` data set of R's survival package, shipped with lifelines as ``load_lung`` (status 1 =
death). The expected values are R's, written here as literals:

    survfit(Surv(time, status) ~ 1, lung, conf.type = "log-log")
        n 228, events 165, median 310, 0.95LCL 284, 0.95UCL 361
    survfit(Surv(time, status) ~ sex, lung)
        sex=1: n 138, events 112, median 270;  sex=2: n 90, events 53, median 426
    summary(survfit(Surv(time, status) ~ 1, lung), times = 365)$surv      0.409
    survdiff(Surv(time, status) ~ sex, lung)
        Chisq = 10.3 on 1 degrees of freedom, p = 0.00131

Clopper-Pearson: R's ``binom.test`` (its help page's example 682/925, and 7/10) and REMINET's
published primary endpoint, "PFS at 6 months was 73.1% (90% CI: 55.3; 86.6) in LAN versus
54.2% (90% CI: 35.8; 71.8) in PBO": 19/26 and 13/24 reproduce both intervals.
"""
from __future__ import annotations

import pytest
from lifelines.datasets import load_lung

from outcomes.endpoints import EndpointValue
from outcomes.survival import (analyse, clopper_pearson, kaplan_meier, landmark_rate, logrank,
                               methods_text)


@pytest.fixture(scope="module")
def lung():
    return load_lung()


def test_kaplan_meier_of_the_lung_data_matches_r(lung):
    result = kaplan_meier(lung.time.tolist(), lung.status.tolist(), key="all", label="All",
                          landmarks=[{"months": 365, "level": 0.95}])
    assert (result.n, result.events) == (228, 165)
    assert result.median.estimate == 310
    assert (result.median.lower, result.median.upper) == (284, 361)
    assert result.landmarks[0].km == pytest.approx(0.409, abs=0.0005)
    assert result.steps[0] == (0.0, 1.0)
    assert all(b[1] < a[1] for a, b in zip(result.steps, result.steps[1:])), "steps go down"


def test_kaplan_meier_by_sex_and_the_log_rank_test_match_r(lung):
    groups = [lung[lung.sex == s] for s in (1, 2)]
    men, women = (kaplan_meier(g.time.tolist(), g.status.tolist(), key=str(s), label=str(s))
                  for s, g in zip((1, 2), groups))
    assert (men.n, men.events, men.median.estimate) == (138, 112, 270)
    assert (women.n, women.events, women.median.estimate) == (90, 53, 426)
    test = logrank([(g.time.tolist(), g.status.tolist()) for g in groups])
    assert test.df == 1
    assert test.chi2 == pytest.approx(10.3, abs=0.05)
    assert test.p == pytest.approx(0.00131, abs=0.000005)


@pytest.mark.parametrize("successes, trials, level, lower, upper", [
    (682, 925, 0.95, 0.7076683, 0.7654066),   # R: binom.test(c(682, 243), p = 3/4)
    (7, 10, 0.95, 0.3475471, 0.9332605),      # R: binom.test(7, 10)
    (0, 10, 0.95, 0.0, 0.3084971),            # 1 - 0.025^(1/10)
    (10, 10, 0.95, 0.6915029, 1.0),           # 0.025^(1/10)
])
def test_clopper_pearson_matches_known_values(successes, trials, level, lower, upper):
    assert clopper_pearson(successes, trials, level) == pytest.approx((lower, upper), abs=5e-7)


@pytest.mark.parametrize("successes, trials, published", [
    (19, 26, (73.1, 55.3, 86.6)),   # lanreotide
    (13, 24, (54.2, 35.8, 71.8)),   # placebo
])
def test_reminets_published_pfs_at_6_months_is_reproduced(successes, trials, published):
    lower, upper = clopper_pearson(successes, trials, 0.90)
    assert (round(100 * successes / trials, 1), round(100 * lower, 1),
            round(100 * upper, 1)) == published


def test_a_landmark_rate_counts_only_participants_evaluable_at_it():
    times = [2.0, 5.0, 7.0, 6.0, 4.0, 9.0]
    events = [True, True, True, False, False, False]
    # Evaluable at 6 months: the two events before it, the event after it, the two followed to
    # or past it (6.0 censored exactly at the landmark counts); censored at 4.0 is not.
    rate = landmark_rate(times, events, 6, 0.90)
    assert (rate.evaluable, rate.event_free) == (5, 3)
    assert rate.rate == pytest.approx(0.6)
    assert (rate.lower, rate.upper) == pytest.approx(clopper_pearson(3, 5, 0.90))


def value(arm, months, event):
    import datetime as dt

    return EndpointValue(0, "X", arm, dt.date(2025, 1, 1), months, event, dt.date(2025, 1, 1), "")


def test_analyse_per_arm_or_pooled():
    values = [value("A", m, e) for m, e in [(3, True), (8, False), (12, True), (24, False)]]
    values += [value("B", m, e) for m, e in [(1, True), (2, True), (5, True), (6, False), (7, False)]]
    endpoint = {"code": "os", "label": "Overall survival",
                "landmarks": [{"months": 6, "level": 0.9}]}
    per_arm = analyse(endpoint, values, horizon=24, arms=[("A", "Arm A"), ("B", "Arm B")])
    assert [g.n for g in per_arm.groups] == [4, 5] and per_arm.logrank is not None
    assert per_arm.at_risk_times == [0, 3, 6, 9, 12, 15, 18, 21, 24]
    assert per_arm.groups[0].at_risk[:4] == [4, 4, 3, 2]
    assert per_arm.groups[1].median.estimate == 5
    assert per_arm.groups[0].median.estimate == 12
    pooled = analyse(endpoint, values, horizon=24, arms=None)
    assert pooled.pooled and len(pooled.groups) == 1 and pooled.logrank is None
    assert pooled.groups[0].key == "all" and pooled.groups[0].n == 9


def test_the_methods_are_stated():
    text = methods_text()
    assert "Kaplan-Meier" in text and "Clopper-Pearson" in text and "365.25/12" in text
    assert "%" in text and "%%" not in text


def test_follow_up_within_the_assessment_window_reaches_the_landmark():
    # Seen at the 24-month visit 10 days early (23.67 months), alive: evaluable with a
    # 14-day window, not without one.
    times, events = [24 - 10 / 30.4375, 12.0], [False, True]
    assert landmark_rate(times, events, 24, 0.95).evaluable == 1
    strict_or_not = landmark_rate(times, events, 24, 0.95, window_days=14)
    assert (strict_or_not.evaluable, strict_or_not.event_free) == (2, 1)
