"""Derived endpoints against worked examples computed by hand (arithmetic in the comments).

RECIST 1.1 (Eisenhauer 2009), EORTC QLQ-C30 v3.0 (scoring manual, 3rd ed. 2001), CTCAE v4.0
worst grades and Clavien-Dindo worst grade. Pure functions: no database.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from crfs.derivations import (DERIVED, clavien_dindo_worst_grade, qlq_c30_scores,
                              recist_overall_response, recist_response, recist_sum_of_diameters,
                              recist_target_response, worst_ctcae_grade, worst_grade_by_term)
from trials.protocol import read_protocol_file
from trials.services import shipped_protocol_files


# --- helpers: CRF data as stored -----------------------------------------------------------------

def lesion(number: int, diameter: str | None, *, node: bool = False, organ: str = "liver") -> dict:
    return {"lesion_number": number, "organ": "lymph node" if node else organ,
            "diameter_mm": diameter, "lymph_node": node}


def assessment(*lesions: dict, non_target: str | None = "present",
               new: bool | None = False) -> dict:
    return {"assessment_date": "2024-01-01", "method": "ct", "target_lesions": list(lesions),
            "non_target_status": non_target, "new_lesions": new,
            "sum_of_diameters": None, "overall_response": None}


def d(text: str) -> Decimal:
    return Decimal(text)


# --- RECIST 1.1: sum of diameters ----------------------------------------------------------------

def test_the_sum_adds_longest_diameters_and_node_short_axes():
    # 32.5 (liver) + 17.0 (lung) + 12.0 (node, short axis) = 61.5 mm
    data = assessment(lesion(1, "32.5"), lesion(2, "17.0", organ="lung"),
                      lesion(3, "12.0", node=True))
    assert recist_sum_of_diameters(data) == d("61.5")


def test_a_lesion_too_small_to_measure_counts_its_default_5_mm_and_a_vanished_one_0():
    # RECIST 1.1 4.3.2: too small to measure -> 5 mm; disappeared -> 0 mm. 20 + 5 + 0 = 25 mm
    data = assessment(lesion(1, "20"), lesion(2, "5"), lesion(3, "0"))
    assert recist_sum_of_diameters(data) == d("25")


def test_the_sum_is_unknown_when_a_diameter_is_missing_or_there_is_no_target_lesion():
    assert recist_sum_of_diameters(assessment(lesion(1, "20"), lesion(2, None))) is None
    assert recist_sum_of_diameters(assessment()) is None


# --- RECIST 1.1: target response -----------------------------------------------------------------

TUMOUR = [lesion(1, "50")]  # a non-nodal lesion, not gone: never CR


@pytest.mark.parametrize("current, expected", [
    ("69", "PR"),  # (69 - 100) / 100 = -31 % -> at least 30 % decrease: PR
    ("70", "PR"),  # -30 % exactly: "at least a 30% decrease" -> PR
    ("71", "SD"),  # -29 %: not enough for PR; +0 % vs nadir 100: not PD -> SD
    ("119", "SD"),  # +19 % vs nadir 100: not PD
    ("120", "PD"),  # +20 % and +20 mm vs nadir 100 -> PD
])
def test_partial_response_is_judged_against_the_baseline_sum(current, expected):
    assert recist_target_response(d("100"), d("100"), d(current), TUMOUR) == expected


def test_progression_is_judged_against_the_nadir_not_the_baseline():
    # baseline 100, nadir 60: 72 is -28 % vs baseline (not PR) but 72/60 = 1.20 -> +20 %, and
    # 72 - 60 = +12 mm >= 5 mm -> PD
    assert recist_target_response(d("100"), d("60"), d("72"), TUMOUR) == "PD"
    # 71: 71/60 = +18.3 % -> not PD; -29 % vs baseline -> not PR -> SD
    assert recist_target_response(d("100"), d("60"), d("71"), TUMOUR) == "SD"


def test_a_20_percent_increase_of_less_than_5_mm_is_not_progression():
    # nadir 20 -> 24 mm: 24/20 = +20 %, but 24 - 20 = 4 mm < 5 mm -> SD (baseline 30: -20 %)
    assert recist_target_response(d("30"), d("20"), d("24"), TUMOUR) == "SD"
    # nadir 25 -> 30 mm: +20 % and +5 mm -> PD
    assert recist_target_response(d("30"), d("25"), d("30"), TUMOUR) == "PD"


def test_progression_from_the_nadir_wins_over_a_partial_response_against_the_baseline():
    # baseline 100, nadir 40, now 60: -40 % vs baseline (PR) but +50 % and +20 mm vs nadir -> PD
    assert recist_target_response(d("100"), d("40"), d("60"), TUMOUR) == "PD"


def test_complete_response_needs_every_lesion_gone_and_every_node_under_10_mm():
    gone = [lesion(1, "0"), lesion(2, "0", organ="lung"), lesion(3, "8", node=True)]
    # 0 + 0 + 8 = 8 mm: the sum need not be 0, a node of 8 mm short axis is normal -> CR
    assert recist_target_response(d("80"), d("80"), d("8"), gone) == "CR"


def test_all_targets_gone_but_a_node_of_12_mm_is_not_complete_response():
    rows = [lesion(1, "0"), lesion(2, "12", node=True)]
    # node 12 mm >= 10 mm -> not CR; sum 12 vs baseline 60 = -80 % -> PR
    assert recist_target_response(d("60"), d("60"), d("12"), rows) == "PR"


def test_a_node_of_exactly_10_mm_is_not_yet_normal():
    rows = [lesion(1, "0"), lesion(2, "10", node=True)]
    # "<10 mm" is strict: 10 mm is not CR; 10 vs baseline 60 = -83 % -> PR
    assert recist_target_response(d("60"), d("60"), d("10"), rows) == "PR"


def test_a_lesion_too_small_to_measure_is_present_so_not_complete_response():
    rows = [lesion(1, "5"), lesion(2, "0")]
    # 5 mm is the "too small to measure" default: the lesion is there -> not CR; 5 vs 60 -> PR
    assert recist_target_response(d("60"), d("60"), d("5"), rows) == "PR"


def test_a_missing_measurement_makes_the_target_response_not_evaluable():
    rows = [lesion(1, "30"), lesion(2, None)]
    assert recist_target_response(d("100"), d("100"), None, rows) == "NE"
    assert recist_target_response(None, None, d("30"), rows[:1]) == "NE"


def test_a_missing_measurement_still_gives_progression_when_the_measured_part_already_does():
    rows = [lesion(1, "80"), lesion(2, None)]
    # RECIST 1.1 4.4.2: partial sum 80 vs nadir 50 = +60 %, +30 mm: the missing lesion can only
    # add -> PD whatever it measures
    assert recist_target_response(d("50"), d("50"), None, rows) == "PD"


# --- RECIST 1.1: overall response, Table 1 (and Table 2) -----------------------------------------

@pytest.mark.parametrize("target, non_target, new, expected", [
    # Table 1: target | non-target | new lesions | overall
    ("CR", "absent", False, "CR"),                      # CR | CR | No | CR
    ("CR", "present", False, "PR"),                     # CR | Non-CR/non-PD | No | PR
    ("CR", "not_evaluated", False, "PR"),               # CR | Not evaluated | No | PR
    ("PR", "absent", False, "PR"),                      # PR | Non-PD | No | PR
    ("PR", "present", False, "PR"),                     # PR | Non-PD | No | PR
    ("PR", "not_evaluated", False, "PR"),               # PR | not all evaluated | No | PR
    ("SD", "absent", False, "SD"),                      # SD | Non-PD | No | SD
    ("SD", "present", False, "SD"),                     # SD | Non-PD | No | SD
    ("SD", "not_evaluated", False, "SD"),               # SD | not all evaluated | No | SD
    ("NE", "absent", False, "NE"),                      # Not all evaluated | Non-PD | No | NE
    ("NE", "present", False, "NE"),                     # Not all evaluated | Non-PD | No | NE
    ("PD", "absent", False, "PD"),                      # PD | Any | Yes or No | PD
    ("PD", "present", True, "PD"),                      # PD | Any | Yes or No | PD
    ("PD", "not_evaluated", False, "PD"),               # PD | Any | Yes or No | PD
    ("CR", "unequivocal_progression", False, "PD"),     # Any | PD | Yes or No | PD
    ("PR", "unequivocal_progression", False, "PD"),     # Any | PD | Yes or No | PD
    ("NE", "unequivocal_progression", False, "PD"),     # Any | PD | Yes or No | PD
    ("CR", "absent", True, "PD"),                       # Any | Any | Yes | PD
    ("PR", "present", True, "PD"),                      # Any | Any | Yes | PD
    ("SD", "not_evaluated", True, "PD"),                # Any | Any | Yes | PD
    ("NE", "not_evaluated", True, "PD"),                # Any | Any | Yes | PD
    # Table 2, no target lesion at baseline: non-target | new lesions | overall
    ("NA", "absent", False, "CR"),                      # CR | No | CR
    ("NA", "present", False, "NON-CR/NON-PD"),          # Non-CR/non-PD | No | Non-CR/non-PD
    ("NA", "not_evaluated", False, "NE"),               # Not all evaluated | No | NE
    ("NA", "unequivocal_progression", False, "PD"),     # Unequivocal PD | Yes or No | PD
    ("NA", "absent", True, "PD"),                       # Any | Yes | PD
])
def test_overall_response_follows_recist_table_1(target, non_target, new, expected):
    assert recist_overall_response(target, non_target, new) == expected


def test_an_unanswered_new_lesions_question_leaves_the_response_not_evaluable_unless_pd():
    assert recist_overall_response("PR", "present", None) == "NE"
    assert recist_overall_response("PD", "present", None) == "PD"


def test_an_unknown_non_target_code_is_refused():
    with pytest.raises(ValueError):
        recist_overall_response("SD", "stable", False)


# --- RECIST 1.1: one assessment in its history ---------------------------------------------------

BASELINE = assessment(lesion(1, "60"), lesion(2, "40", organ="lung"))  # sum 100 mm


def test_response_uses_baseline_for_pr_and_the_smallest_earlier_sum_for_pd():
    previous = [assessment(lesion(1, "40"), lesion(2, "30")),   # 70 mm
                assessment(lesion(1, "35"), lesion(2, "25"))]   # 60 mm: the nadir
    current = assessment(lesion(1, "45"), lesion(2, "27"))      # 72 mm
    # nadir = min(100, 70, 60) = 60; 72/60 = +20 %, +12 mm -> target PD -> overall PD
    assert recist_response(BASELINE, previous, current) == {
        "sum_of_diameters": d("72"), "target_response": "PD",
        "overall_response": "PD", "nadir": d("60")}


def test_response_without_earlier_assessments_takes_the_baseline_as_nadir():
    current = assessment(lesion(1, "40"), lesion(2, "29"))      # 69 mm
    # 69 vs 100 = -31 % -> PR; non-target present, no new lesion -> overall PR
    result = recist_response(BASELINE, [], current)
    assert (result["nadir"], result["target_response"], result["overall_response"]) == \
        (d("100"), "PR", "PR")


def test_a_new_lesion_is_progression_whatever_the_targets_do():
    current = assessment(lesion(1, "0"), lesion(2, "0"), non_target="absent", new=True)
    # targets 0 + 0 = 0 -> target CR; but a new lesion -> overall PD
    result = recist_response(BASELINE, [], current)
    assert (result["target_response"], result["overall_response"]) == ("CR", "PD")


def test_a_baseline_lesion_left_out_at_follow_up_makes_the_assessment_not_evaluable():
    current = assessment(lesion(1, "50"))  # lesion 2 not measured: 50 alone is no RECIST sum
    result = recist_response(BASELINE, [], current)
    assert result == {"sum_of_diameters": None, "target_response": "NE",
                      "overall_response": "NE", "nadir": d("100")}


def test_an_incomplete_earlier_assessment_does_not_set_the_nadir():
    previous = [assessment(lesion(1, "20"))]   # lesion 2 missing: its 20 mm is not a sum
    current = assessment(lesion(1, "50"), lesion(2, "40"))  # 90 mm
    # nadir stays 100 (not 20); 90 vs 100 = -10 % -> SD (with nadir 20 it would be PD)
    result = recist_response(BASELINE, previous, current)
    assert (result["nadir"], result["target_response"]) == (d("100"), "SD")


def test_without_target_lesions_at_baseline_table_2_applies():
    baseline = assessment(non_target="present")
    current = assessment(non_target="present")
    result = recist_response(baseline, [], current)
    assert (result["target_response"], result["overall_response"]) == ("NA", "NON-CR/NON-PD")


# --- EORTC QLQ-C30 v3.0 --------------------------------------------------------------------------

FUNCTIONAL = ("PF2", "RF2", "EF", "CF", "SF")
SYMPTOMS = ("FA", "NV", "PA", "DY", "SL", "AP", "CO", "DI", "FI")


def questionnaire(**answers: int | None) -> dict:
    data: dict = {f"q{n}": None for n in range(1, 31)}
    data.update(answers)
    return data


def test_an_all_ones_questionnaire_scores_full_function_no_symptom_and_worst_global_health():
    scores = qlq_c30_scores(questionnaire(**{f"q{n}": 1 for n in range(1, 31)}))
    # RS = 1 everywhere: functional (1 - 0/3) x 100 = 100; symptoms (0/3) x 100 = 0;
    # QL2 (0/6) x 100 = 0 (items 29-30 at 1 = "very poor")
    assert set(scores) == {"QL2", *FUNCTIONAL, *SYMPTOMS}
    assert {k: scores[k] for k in FUNCTIONAL} == dict.fromkeys(FUNCTIONAL, 100.0)
    assert {k: scores[k] for k in SYMPTOMS} == dict.fromkeys(SYMPTOMS, 0.0)
    assert scores["QL2"] == 0.0


def test_an_all_worst_questionnaire_scores_the_other_end():
    scores = qlq_c30_scores(questionnaire(**{f"q{n}": 4 for n in range(1, 29)}, q29=7, q30=7))
    # RS = 4: functional (1 - 3/3) x 100 = 0; symptoms (3/3) x 100 = 100; QL2 RS 7: 6/6 -> 100
    assert {k: scores[k] for k in FUNCTIONAL} == dict.fromkeys(FUNCTIONAL, 0.0)
    assert {k: scores[k] for k in SYMPTOMS} == dict.fromkeys(SYMPTOMS, 100.0)
    assert scores["QL2"] == 100.0


def test_worked_example_physical_functioning_global_health_and_fatigue():
    scores = qlq_c30_scores(questionnaire(q1=2, q2=2, q3=3, q4=1, q5=1, q29=5, q30=6,
                                          q10=2, q12=3, q18=4, q8=3))
    # PF2: RS (2+2+3+1+1)/5 = 1.8; (1 - 0.8/3) x 100 = 73.333...
    assert scores["PF2"] == pytest.approx(73.3333333, abs=1e-6)
    assert round(scores["PF2"], 1) == 73.3
    # QL2: RS (5+6)/2 = 5.5; (4.5/6) x 100 = 75.0
    assert scores["QL2"] == pytest.approx(75.0)
    # FA: RS (2+3+4)/3 = 3; (2/3) x 100 = 66.666...
    assert scores["FA"] == pytest.approx(66.6666667, abs=1e-6)
    assert round(scores["FA"], 1) == 66.7
    # DY, single item 3: (2/3) x 100 = 66.666...
    assert scores["DY"] == pytest.approx(66.6666667, abs=1e-6)


def test_a_scale_with_half_its_items_answered_is_scored_on_those_items():
    scores = qlq_c30_scores(questionnaire(q21=2, q22=4))  # EF: 2 of 4 items answered
    # RS (2+4)/2 = 3; (1 - 2/3) x 100 = 33.333...
    assert scores["EF"] == pytest.approx(33.3333333, abs=1e-6)


def test_a_scale_with_less_than_half_its_items_answered_is_missing():
    scores = qlq_c30_scores(questionnaire(q21=2))  # EF: 1 of 4 items answered
    assert scores["EF"] is None
    # FA with 1 of 3 answered (1 < 1.5): missing; with 2 of 3: RS (1+4)/2 = 2.5 -> 50.0
    assert qlq_c30_scores(questionnaire(q10=4))["FA"] is None
    assert qlq_c30_scores(questionnaire(q10=1, q12=4))["FA"] == pytest.approx(50.0)


def test_an_unanswered_single_item_is_missing_and_an_empty_questionnaire_scores_nothing():
    scores = qlq_c30_scores(questionnaire())
    assert set(scores.values()) == {None}


def test_an_answer_out_of_the_item_range_is_refused():
    with pytest.raises(ValueError):
        qlq_c30_scores(questionnaire(q1=5))   # items 1-28 go from 1 to 4
    with pytest.raises(ValueError):
        qlq_c30_scores(questionnaire(q29=8))  # items 29-30 go from 1 to 7
    assert qlq_c30_scores(questionnaire(q29=7, q30=7))["QL2"] == 100.0


# --- CTCAE v4.0 ----------------------------------------------------------------------------------

def ae(term: str, grade: int | None, **extra) -> dict:
    return {"term": term, "grade": grade, "serious": grade is not None and grade >= 3,
            "attribution": "possible", "start_date": "2024-02-01", "end_date": None,
            "ongoing": True, **extra}


AE_CRFS = [
    {"any_event": True, "events": [ae("Diarrhea", 2), ae("Fatigue", 1)]},
    {"any_event": False, "events": None},
    {"any_event": True, "events": [ae("Neutrophil count decreased", 3), ae("diarrhea ", 1)]},
    {"any_event": True, "events": [ae("Fatigue", 2), ae("Nausea", None)]},  # a draft row
]


def test_the_worst_ctcae_grade_is_taken_over_every_row_of_every_crf():
    # grades 2, 1 | none | 3, 1 | 2, ungraded -> worst 3 (from the third CRF)
    assert worst_ctcae_grade(AE_CRFS) == 3
    assert worst_ctcae_grade(AE_CRFS[:1]) == 2


def test_no_graded_event_gives_no_ctcae_grade():
    assert worst_ctcae_grade([{"any_event": False, "events": None}]) is None
    assert worst_ctcae_grade([]) is None


def test_worst_grade_by_term_merges_spellings_that_differ_only_in_case_and_spaces():
    # Diarrhea 2 and "diarrhea " 1 -> 2; Fatigue 1 and 2 -> 2; neutropenia 3; Nausea ungraded
    assert worst_grade_by_term(AE_CRFS) == {
        "Diarrhea": 2, "Fatigue": 2, "Neutrophil count decreased": 3}


def test_a_grade_outside_ctcae_is_refused():
    with pytest.raises(ValueError):
        worst_ctcae_grade([{"any_event": True, "events": [ae("Fatigue", 6)]}])


# --- Clavien-Dindo -------------------------------------------------------------------------------

def complications(*grades: str | None) -> dict:
    return {"assessment_date": "2024-03-01", "any_complication": True,
            "complications": [{"description": f"complication {i}", "onset_date": "2024-02-10",
                               "grade": g} for i, g in enumerate(grades)],
            "worst_grade": None}


@pytest.mark.parametrize("grades, worst", [
    (("IIIa", "IIIb"), "IIIb"),     # IIIb (general anaesthesia) is worse than IIIa
    (("IIIb", "IIIa"), "IIIb"),     # order of the rows does not matter
    (("IIIb", "IVa"), "IVa"),       # IVa is worse than IIIb
    (("IVb", "IVa"), "IVb"),
    (("II", "I", "II"), "II"),
    (("I", "V", "IVb"), "V"),       # V (death) is the worst
    (("I",), "I"),
])
def test_the_worst_clavien_dindo_grade_follows_the_classification_order(grades, worst):
    assert clavien_dindo_worst_grade(complications(*grades)) == worst


def test_no_complication_is_grade_0():
    assert clavien_dindo_worst_grade({"assessment_date": "2024-03-01", "any_complication": False,
                                      "complications": None, "worst_grade": None}) == "0"


def test_an_unfinished_clavien_dindo_form_has_no_worst_grade_yet():
    assert clavien_dindo_worst_grade({"any_complication": None, "complications": None}) is None
    assert clavien_dindo_worst_grade(complications()) is None        # yes, but no row yet
    assert clavien_dindo_worst_grade(complications(None)) is None    # a row not yet graded
    assert clavien_dindo_worst_grade(complications(None, "II")) == "II"


def test_a_clavien_dindo_grade_the_protocol_does_not_offer_is_refused():
    with pytest.raises(ValueError):
        clavien_dindo_worst_grade(complications("III"))  # only IIIa / IIIb exist


# --- the registry of the protocols' derived: names -----------------------------------------------

def _derived_fields(definition: dict) -> list[tuple[str, dict]]:
    found = []
    for crf in definition["crfs"]:
        for f in crf["fields"]:
            found += [(crf["code"], f)] if f.get("derived") else []
            found += [(crf["code"], s) for s in f.get("fields", []) if s.get("derived")]
    return found


def test_every_derived_name_in_the_shipped_protocols_has_a_function():
    names = {f["derived"] for path in shipped_protocol_files()
             for _, f in _derived_fields(read_protocol_file(path))}
    assert {"recist_sum_of_diameters", "recist_overall_response",
            "clavien_dindo_worst_grade"} <= names
    assert names <= set(DERIVED)


def test_derived_choice_values_are_codes_the_protocols_offer():
    outputs = {
        "recist_overall_response": {
            DERIVED["recist_overall_response"](current, {"baseline": BASELINE, "previous": []})
            for current in (assessment(lesion(1, "0"), lesion(2, "0"), non_target="absent"),  # cr
                            assessment(lesion(1, "40"), lesion(2, "29")),                     # pr
                            assessment(lesion(1, "60"), lesion(2, "40")),                     # sd
                            assessment(lesion(1, "60"), lesion(2, "40"), new=True),           # pd
                            assessment(lesion(1, "60")))},                                    # ne
        "clavien_dindo_worst_grade": {
            DERIVED["clavien_dindo_worst_grade"](complications(g), {})
            for g in ("I", "II", "IIIa", "IIIb", "IVa", "IVb", "V")} | {"0"},
    }
    assert outputs["recist_overall_response"] == {"cr", "pr", "sd", "pd", "ne"}
    for path in shipped_protocol_files():
        for _, f in _derived_fields(read_protocol_file(path)):
            if f["derived"] in outputs:
                offered = {c["code"] for c in f["choices"]}
                assert outputs[f["derived"]] <= offered, (path.name, f["code"])


def test_derived_recist_values_are_stored_like_the_fields():
    current = assessment(lesion(1, "40.5"), lesion(2, "28.5"))  # 40.5 + 28.5 = 69.0 mm
    context = {"baseline": BASELINE, "previous": []}
    # decimal field with "decimals: 1" -> "69.0"; 69 vs 100 = -31 % -> PR stored as "pr"
    assert DERIVED["recist_sum_of_diameters"](current, context) == "69.0"
    assert DERIVED["recist_overall_response"](current, context) == "pr"


def test_the_baseline_assessment_gets_its_sum_but_no_response():
    context = {"baseline": None, "previous": []}
    # 60 + 40 = 100 mm, the reference; a baseline has no response of its own
    assert DERIVED["recist_sum_of_diameters"](BASELINE, context) == "100.0"
    assert DERIVED["recist_overall_response"](BASELINE, context) is None


def test_the_derived_overall_response_uses_the_nadir_from_the_context():
    current = assessment(lesion(1, "45"), lesion(2, "27"))  # 72 mm
    # nadir 100 (baseline only): -28 % -> SD; nadir 60 from an earlier visit: +20 %, +12 mm -> PD
    assert DERIVED["recist_overall_response"](current, {"baseline": BASELINE,
                                                        "previous": []}) == "sd"
    earlier = assessment(lesion(1, "35"), lesion(2, "25"))  # 60 mm
    assert DERIVED["recist_overall_response"](current, {"baseline": BASELINE,
                                                        "previous": [earlier]}) == "pd"


def test_a_surgically_removed_target_lesion_is_accounted_for_not_missing():
    """Choice (protocol files, ``surgically_removed``): RECIST 1.1 has no rule for a resected
    target lesion. Read as missing (4.4.2) it would make the assessment not evaluable; it is
    accounted for and adds nothing to the sum, in a baseline as at a follow-up."""
    def lesion(n, mm, removed=None):
        row = {"lesion_number": n, "organ": "x", "diameter_mm": mm, "lymph_node": False}
        if removed is not None:
            row["surgically_removed"] = removed
        return row
    baseline = {"target_lesions": [lesion(1, "40"), lesion(2, "30")]}
    after = {"target_lesions": [lesion(1, "0", True), lesion(2, "30")],
             "non_target_status": "present", "new_lesions": False}
    assert recist_sum_of_diameters(after) == Decimal(30)
    result = recist_response(baseline, [], after)
    assert (result["sum_of_diameters"], result["overall_response"]) == (Decimal(30), "PR")
    # Left out instead, lesion 1 is missing: not evaluable.
    missing = dict(after, target_lesions=[lesion(2, "30")])
    assert recist_response(baseline, [], missing)["overall_response"] == "NE"
    # As a baseline, the removed row is no part of the reference (30, not 70): 25 mm is SD
    # (-17 %), 20 mm PR (-33 %).
    later = dict(after, target_lesions=[lesion(2, "25")])
    assert recist_response(after, [], later)["overall_response"] == "SD"
    assert recist_response(after, [], dict(later, target_lesions=[lesion(2, "20")]))[
        "overall_response"] == "PR"
