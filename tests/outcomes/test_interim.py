"""Interim analyses (issue 22): declared in the protocol, validated at load, reported to the data
monitoring committee with the information reached, the log-rank statistic and the boundary.
The boundaries are held to gsDesign's published figures."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
from django.urls import reverse
from scipy.stats import norm

from outcomes.interim import fixed_boundary, interim_looks, spending_boundaries
from outcomes.survival import analyse
from tests.outcomes.test_closed_reports import rectal_with_outcomes  # noqa: F401
from trials.protocol import read_protocol_file, validate_definition
from trials.services import shipped_protocol_files


# --------------------------------------------------------------------------- boundaries


@pytest.mark.parametrize("method, fractions, expected", [
    # gsDesign (test.type = 2, alpha = 0.025 per side, sfLDOF / sfLDPocock), upper bounds.
    ("lan_demets_obrien_fleming", [0.5, 1.0], [2.963, 1.969]),
    ("lan_demets_obrien_fleming", [1 / 3, 2 / 3, 1.0], [3.710, 2.511, 1.993]),
    ("lan_demets_pocock", [0.5, 1.0], [2.157, 2.201]),
])
def test_alpha_spending_boundaries_are_gsdesigns(method, fractions, expected):
    assert spending_boundaries(method, 0.05, fractions) == pytest.approx(expected, abs=0.002)


def test_the_first_look_is_exact_and_a_single_look_spends_all_alpha():
    # O'Brien-Fleming type, first look: 1 - Phi(c) = 2 - 2 Phi(z_{1-alpha/4} / sqrt(t)).
    spent = 2 - 2 * norm.cdf(norm.ppf(1 - 0.05 / 4) / math.sqrt(0.25))
    assert spending_boundaries("lan_demets_obrien_fleming", 0.05, [0.25]) == pytest.approx(
        [norm.ppf(1 - spent)], abs=1e-6)
    assert spending_boundaries("lan_demets_obrien_fleming", 0.05, [1.0]) == pytest.approx(
        [1.960], abs=0.001)


def test_fixed_boundaries_from_z_or_p():
    assert fixed_boundary({"method": "haybittle_peto", "z": 3}) == 3.0
    assert fixed_boundary({"method": "fixed", "p": 0.001}) == pytest.approx(3.2905, abs=1e-4)


# --------------------------------------------------------------------------- the looks


def values(arm: str, deaths: int, alive: int) -> list:
    return ([SimpleNamespace(arm_code=arm, months=3.0 + i, event=True, strata={})
             for i in range(deaths)] +
            [SimpleNamespace(arm_code=arm, months=24.0, event=False, strata={})
             for _ in range(alive)])


def os_analysis(deaths_a: int, deaths_b: int):
    rows = values("A", deaths_a, 20 - deaths_a) + values("B", deaths_b, 20 - deaths_b)
    return analyse({"code": "os", "label": "Overall survival"}, rows, horizon=24,
                   arms=[("A", "Arm A"), ("B", "Arm B")])


def interim(planned, method="lan_demets_obrien_fleming", **boundary):
    return {"code": "ia1", "endpoint": "os", "information_fraction": 0.5,
            "information": {"measure": "events", "planned": planned},
            "boundary": {"method": method, **(boundary or {"alpha": 0.05})}, "note": "n"}


def test_a_look_reports_information_statistic_and_boundary_at_the_observed_fraction():
    analysis = os_analysis(2, 14)
    look, = interim_looks([interim(32)], {"os": analysis}, randomised=40, target=None)
    assert (look.observed, look.planned, look.fraction) == (16, 32, 0.5)
    assert look.reached
    assert look.statistic == pytest.approx(math.sqrt(analysis.logrank.chi2))
    assert look.boundary_z == pytest.approx(2.963, abs=0.002)
    assert look.crossed == (look.statistic >= look.boundary_z) and look.crossed
    # Fewer events than planned at the interim: the boundary is placed where the information is.
    early, = interim_looks([interim(64)], {"os": analysis}, randomised=40, target=None)
    assert early.fraction == 0.25 and early.reached is False
    assert early.boundary_z == pytest.approx(4.333, abs=0.002)


def test_a_balanced_look_does_not_cross_and_an_unknown_plan_is_said():
    look, = interim_looks([interim(None)], {"os": os_analysis(5, 6)}, randomised=40,
                          target=None)
    assert look.fraction is None and look.reached is None
    assert look.boundary_fraction == 0.5 and look.crossed is False
    haybittle, = interim_looks([interim(30, "haybittle_peto", z=3)], {"os": os_analysis(5, 6)},
                               randomised=40, target=None)
    assert haybittle.boundary_z == 3.0


def test_no_look_on_pooled_figures():
    pooled = analyse({"code": "os", "label": "OS"}, values("A", 3, 3), horizon=24, arms=None)
    assert interim_looks([interim(10)], {"os": pooled}, randomised=6, target=None) == []


# --------------------------------------------------------------------------- the protocol


@pytest.fixture
def rectal_definition():
    path = next(p for p in shipped_protocol_files() if "rectal" in p.name)
    return read_protocol_file(path)


def test_the_rectal_file_declares_one_interim_at_half_the_deaths(rectal_definition):
    ia, = rectal_definition["interim_analyses"]
    assert (ia["endpoint"], ia["information_fraction"]) == ("os", 0.5)
    assert ia["information"] == {"measure": "events", "planned": None}
    assert ia["boundary"] == {"method": "lan_demets_obrien_fleming", "alpha": 0.05}
    assert "choice:" in ia["note"] and "2.963" in ia["note"]


@pytest.mark.parametrize("change, path, message", [
    (lambda ia: ia.update(endpoint="pfs2"), "interim_analyses[0].endpoint", "unknown endpoint"),
    (lambda ia: ia["boundary"].pop("alpha"), "interim_analyses[0].boundary", "give 'alpha'"),
    (lambda ia: ia.update(boundary={"method": "fixed", "z": 3, "p": 0.001}),
     "interim_analyses[0].boundary", "either 'z' or a two-sided nominal 'p'"),
    (lambda ia: ia.update(information_fraction=1.0), "interim_analyses[0].information_fraction",
     "maximum"),
    (lambda ia: ia["boundary"].update(method="triangular"),
     "interim_analyses[0].boundary.method", "is not one of"),
    (lambda ia: ia["information"].update(planned=0), "interim_analyses[0].information.planned",
     "minimum"),
])
def test_a_bad_interim_analysis_is_refused_with_its_path(rectal_definition, change, path,
                                                         message):
    data = copy.deepcopy(rectal_definition)
    change(data["interim_analyses"][0])
    found = {p.path: p.message for p in validate_definition(data)}
    assert path in found and message in found[path], found


def test_interim_analyses_of_an_endpoint_come_in_order(rectal_definition):
    data = copy.deepcopy(rectal_definition)
    later = copy.deepcopy(data["interim_analyses"][0])
    data["interim_analyses"].append({**later, "code": "ia0", "information_fraction": 0.3})
    found = {p.path: p.message for p in validate_definition(data)}
    assert "list them in order" in found["interim_analyses[1].information_fraction"]


# --------------------------------------------------------------------------- the closed report


def test_the_dmc_reads_the_interim_against_its_boundary_others_do_not(
        rectal_with_outcomes, make_user, client_for):  # noqa: F811
    trial = rectal_with_outcomes
    dmc_page = client_for(make_user("dmc", trial)).get(
        reverse("trial_outcomes", args=[trial.slug])).content.decode()
    assert "Interim analyses (closed report)" in dmc_page
    assert "2 events; planned number not stated in the protocol" in dmc_page
    assert "|Z| ≥ 2.963" in dmc_page and "at the declared information (50.0 %)" in dmc_page
    # Two deaths, one per arm, in different strata: no stratified log-rank test to read.
    assert "not computable (no log-rank test of two arms: see the endpoint)" in dmc_page
    assert "not assessable" in dmc_page
    sponsor_page = client_for(make_user("sponsor", trial)).get(
        reverse("trial_outcomes", args=[trial.slug])).content.decode()
    assert "Interim analys" not in sponsor_page and "2.963" not in sponsor_page
