"""Kaplan-Meier, log-rank and exact binomial intervals against published values.

Reference data: the NCCTG advanced lung cancer data (Loprinzi et al., J Clin Oncol 1994), the
``lung`` data set of R's survival package, shipped with lifelines as ``load_lung`` (status 1 =
death). The expected values are R's, written here as literals:

    survfit(Surv(time, status) ~ 1, lung)                  (conf.type "log", R's default)
        n 228, events 165, median 310, 0.95LCL 285, 0.95UCL 363
    survfit(Surv(time, status) ~ 1, lung, conf.type = "log-log")
        n 228, events 165, median 310, 0.95LCL 284, 0.95UCL 361
    survfit(Surv(time, status) ~ sex, lung)
        sex=1: n 138, events 112, median 270, 0.95LCL 212, 0.95UCL 310
        sex=2: n  90, events  53, median 426, 0.95LCL 348, 0.95UCL 550
    summary(survfit(Surv(time, status) ~ 1, lung), times = 365)$surv      0.409
    survdiff(Surv(time, status) ~ sex, lung)
        Chisq = 10.3 on 1 degrees of freedom, p = 0.00131
    coxph(Surv(time, status) ~ sex, lung)
        exp(coef) 0.588, lower .95 0.424, upper .95 0.816, p 0.00149

Clopper-Pearson: R's ``binom.test`` (its help page's example 682/925, and 7/10) and REMINET's
published primary endpoint, "PFS at 6 months was 73.1% (90% CI: 55.3; 86.6) in LAN versus
54.2% (90% CI: 35.8; 71.8) in PBO": 19/26 and 13/24 reproduce both intervals.
"""
from __future__ import annotations

import math

import pytest
from lifelines.datasets import load_lung

from outcomes.endpoints import EndpointValue
from outcomes.survival import (analyse, clopper_pearson, cox_hazard_ratios, greenwood_band,
                               kaplan_meier, landmark_rate, logrank, median_with_interval,
                               methods_text, survival_quantile)


@pytest.fixture(scope="module")
def lung():
    return load_lung()


def test_kaplan_meier_of_the_lung_data_matches_r(lung):
    result = kaplan_meier(lung.time.tolist(), lung.status.tolist(), key="all", label="All",
                          landmarks=[{"months": 365, "level": 0.95}])
    assert (result.n, result.events) == (228, 165)
    assert result.median.estimate == 310
    assert (result.median.lower, result.median.upper) == (285, 363), "R's default: log"
    assert result.landmarks[0].km == pytest.approx(0.409, abs=0.0005)
    assert result.steps[0] == (0.0, 1.0)
    assert all(b[1] < a[1] for a, b in zip(result.steps, result.steps[1:])), "steps go down"


def test_kaplan_meier_by_sex_and_the_log_rank_test_match_r(lung):
    groups = [lung[lung.sex == s] for s in (1, 2)]
    men, women = (kaplan_meier(g.time.tolist(), g.status.tolist(), key=str(s), label=str(s))
                  for s, g in zip((1, 2), groups))
    assert (men.n, men.events, men.median.estimate) == (138, 112, 270)
    assert (women.n, women.events, women.median.estimate) == (90, 53, 426)
    assert (men.median.lower, men.median.upper) == (212, 310)
    assert (women.median.lower, women.median.upper) == (348, 550)
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


def test_the_log_log_interval_of_the_lung_median_matches_r(lung):
    median = median_with_interval(lung.time.tolist(), lung.status.tolist(), transform="log-log")
    assert (median.estimate, median.lower, median.upper) == (310, 284, 361)


def test_the_log_log_band_is_lifelines_exponential_greenwood(lung):
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(lung.time, lung.status)
    table = kmf.event_table
    surv = kmf.survival_function_.iloc[:, 0].loc[table.index].tolist()
    band = greenwood_band(surv, table.at_risk.tolist(), table.observed.tolist(), level=0.95,
                          transform="log-log")
    theirs = kmf.confidence_interval_.loc[table.index]
    for (lower, upper), (_, row) in zip(band, theirs.iterrows()):
        if lower is not None:
            assert (lower, upper) == pytest.approx((row.iloc[0], row.iloc[1]), abs=1e-9)


def test_the_log_band_is_s_times_exp_of_z_greenwood_by_hand():
    # 4 deaths at 1, 2, 3, 4: after the first, S = 3/4, Greenwood var(log S) = 1/(4*3).
    z, sigma = 1.959963984540054, (1 / 12) ** 0.5
    band = greenwood_band([0.75, 0.5], [4, 3], [1, 1], level=0.95, transform="log")
    assert band[0] == pytest.approx((0.75 * math.exp(-z * sigma), 1.0))
    sigma2 = (1 / 12 + 1 / 6) ** 0.5   # + 1/(3*2)
    assert band[1] == pytest.approx((0.5 * math.exp(-z * sigma2),
                                     min(1.0, 0.5 * math.exp(z * sigma2))))
    with pytest.raises(ValueError):
        greenwood_band([0.5], [2], [1], level=0.95, transform="plain")


def test_a_curve_flat_at_one_half_gives_the_midpoint_of_the_flat():
    # Uncensored deaths at 1, 2, 3, 4: S = 0.5 from 2 to 3, so the median is 2.5 (the ordinary
    # median of four numbers), where lifelines' median_survival_time_ says 2.
    median = median_with_interval([1, 2, 3, 4], [True] * 4)
    assert median.estimate == 2.5
    # Deaths at 1 and 2, then censored at 5 and 8: S stays 0.5 to the end of follow-up, so the
    # midpoint runs to the last time observed, (2 + 8) / 2.
    assert median_with_interval([1, 2, 5, 8], [True, True, False, False]).estimate == 5
    # Not exactly one half: the first time at or below it.
    assert median_with_interval([1, 2, 3], [True] * 3).estimate == 2
    assert median_with_interval([1, 2, 3], [False] * 3).estimate is None
    assert survival_quantile([0, 1, 3], [1.0, 0.5, 0.5, ], last=7) == 4


STRATIFIED = {
    # stratum X: arm A dies at 1, censored at 3; arm B dies at 2
    # stratum Y: arm A dies at 2 and 5; arm B dies at 1 and 4
    "A": ([1, 3, 2, 5], [True, False, True, True], ["X", "X", "Y", "Y"]),
    "B": ([2, 1, 4], [True, True, True], ["X", "Y", "Y"]),
}


def test_the_stratified_log_rank_test_sums_observed_minus_expected_over_strata():
    # By hand, arm A, observed - expected and variance d (n-d)/(n-1) (nA/n)(1 - nA/n):
    #   X: t=1 1 - 2/3, V 2/9;  t=2 0 - 1/2, V 1/4            U -1/6, V 17/36
    #   Y: t=1 0 - 1/2, V 1/4;  t=2 1 - 2/3, V 2/9;  t=4 0 - 1/2, V 1/4;  t=5 1 - 1, V 0
    #                                                          U -2/3, V 26/36
    #   chi-square = (-5/6)^2 / (43/36) = 25/43
    groups = [STRATIFIED[a][:2] for a in ("A", "B")]
    test = logrank(groups, [STRATIFIED[a][2] for a in ("A", "B")])
    assert test.df == 1
    assert test.chi2 == pytest.approx(25 / 43)
    from scipy.stats import chi2
    assert test.p == pytest.approx(chi2.sf(25 / 43, 1))


def test_one_stratum_is_the_ordinary_log_rank_test_of_lifelines():
    from lifelines.statistics import logrank_test

    (ta, ea, _), (tb, eb, _) = STRATIFIED["A"], STRATIFIED["B"]
    theirs = logrank_test(ta, tb, ea, eb)
    for strata in (None, [["s"] * 4, ["s"] * 3]):
        ours = logrank([(ta, ea), (tb, eb)], strata)
        assert ours.chi2 == pytest.approx(theirs.test_statistic)
        assert ours.p == pytest.approx(theirs.p_value)


def test_the_cox_hazard_ratio_of_the_lung_data_by_sex_matches_r(lung):
    groups = [(str(s), lung[lung.sex == s].time.tolist(), lung[lung.sex == s].status.tolist())
              for s in (1, 2)]
    (ratio,) = cox_hazard_ratios(groups)
    assert (ratio.arm, ratio.reference) == ("2", "1")
    assert (round(ratio.estimate, 3), round(ratio.lower, 3), round(ratio.upper, 3)) == (
        0.588, 0.424, 0.816)
    assert ratio.p == pytest.approx(0.00149, abs=0.000005)


def test_the_cox_model_is_stratified_as_asked():
    from lifelines import CoxPHFitter
    import pandas as pd

    groups = [(a, STRATIFIED[a][0], STRATIFIED[a][1]) for a in ("A", "B")]
    (ratio,) = cox_hazard_ratios(groups, [STRATIFIED[a][2] for a in ("A", "B")])
    frame = pd.DataFrame({"time": STRATIFIED["A"][0] + STRATIFIED["B"][0],
                          "event": STRATIFIED["A"][1] + STRATIFIED["B"][1],
                          "arm": [0] * 4 + [1] * 3,
                          "stratum": STRATIFIED["A"][2] + STRATIFIED["B"][2]})
    expected = CoxPHFitter(strata=["stratum"]).fit(frame, "time", "event")
    assert ratio.estimate == pytest.approx(float(expected.hazard_ratios_["arm"]))
    unstratified = CoxPHFitter().fit(frame.drop(columns="stratum"), "time", "event")
    assert ratio.estimate != pytest.approx(float(unstratified.hazard_ratios_["arm"]))


def test_a_hazard_ratio_that_cannot_be_estimated_says_why():
    (none,) = cox_hazard_ratios([("A", [1, 2, 3], [True, False, True]),
                                 ("B", [4, 5], [False, False])])
    assert none.estimate is None and "no event in arm B" in none.reason
    (empty,) = cox_hazard_ratios([("A", [1, 2], [True, True]), ("B", [], [])])
    assert empty.estimate is None and "no participant in arm B" in empty.reason
    # every death in arm B before any in arm A: the likelihood has no maximum
    (apart,) = cox_hazard_ratios([("A", [5, 6, 7], [True] * 3), ("B", [1, 2, 3], [True] * 3)])
    assert apart.estimate is None and "did not converge" in apart.reason
    assert cox_hazard_ratios([("A", [1], [True])]) == []


def test_analyse_stratifies_the_comparison_and_states_it():
    import datetime as dt

    values = [EndpointValue(0, "X", arm, dt.date(2025, 1, 1), t, e, dt.date(2025, 1, 1), "",
                            {"extent": s})
              for arm in ("A", "B") for t, e, s in zip(*STRATIFIED[arm])]
    endpoint = {"code": "os", "label": "Overall survival", "ci_transform": "log-log"}
    result = analyse(endpoint, values, horizon=24, arms=[("A", "A"), ("B", "B")],
                     strata=["extent"])
    assert result.logrank.chi2 == pytest.approx(25 / 43)
    assert result.hazard_ratios[0].estimate is not None and result.strata == ["extent"]
    assert any("stratified by extent" in m for m in result.methods)
    assert any("log-log" in m for m in result.methods)
    pooled = analyse(endpoint, values, horizon=24, arms=None, strata=["extent"])
    assert pooled.logrank is None and pooled.hazard_ratios == []
    assert not any("stratified" in m or "Hazard" in m for m in pooled.methods)
