"""The protocol files' expression language: parsed once per string, names and types checked at
load with the file's path and the column, nothing loaded when one is wrong."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from trials import expressions
from trials.expressions import ExpressionError, Scope, compile_expression, parse
from trials.protocol import ProtocolError, parse_protocol

RECTAL = Path(__file__).resolve().parents[2] / "trials" / "protocols" / "rectal-resection.yaml"
REMINET = RECTAL.with_name("reminet.yaml")


@pytest.fixture(scope="module")
def rectal() -> dict:
    return yaml.safe_load(RECTAL.read_text(encoding="utf-8"))


def refused(definition: dict) -> dict[str, str]:
    with pytest.raises(ProtocolError) as caught:
        parse_protocol(yaml.safe_dump(definition, allow_unicode=True), source="rectal.yaml")
    assert "rectal.yaml" in str(caught.value)
    return {p.path: p.message for p in caught.value.problems}


def crf_index(definition: dict, code: str) -> int:
    return next(i for i, c in enumerate(definition["crfs"]) if c["code"] == code)


def field_index(crf: dict, code: str) -> int:
    return next(i for i, f in enumerate(crf["fields"]) if f["code"] == code)


# --- parsing -----------------------------------------------------------------------------------

def test_an_expression_parses_into_a_json_tree_once_per_string():
    tree = parse("INC5 = yes and (l1_duration_months >= 2 or not is_blank(x))")
    assert tree["op"] == "and" and tree["args"][0]["op"] == "cmp"
    assert tree["args"][1]["op"] == "or"
    assert parse("INC5 = yes and (l1_duration_months >= 2 or not is_blank(x))") is tree
    assert parse("surgery_date - immunonutrition_start >= 7")["args"][0]["op"] == "sub"
    assert parse("date('2021-03-01') <= today()")["args"][0] == {
        "op": "date", "value": "2021-03-01", "col": 1}
    assert parse("crf@baseline.field = 1")["args"][0]["name"] == "crf@baseline.field"


@pytest.mark.parametrize("text, column, words", [
    ("surgery_date >= ", 17, "expected a value"),
    ("a = 1 b", 7, "unexpected 'b'"),
    ("a = 'open", 5, "unexpected character"),
    ("a ~ 1", 3, "unexpected character '~'"),
    ("(a = 1", 7, "expected ')'"),
    ("median(a) > 1", 1, "unknown function 'median'"),
    ("a = date('2021-02-30')", 10, "not a date"),
    ("days_between(a) > 1", 1, "takes 2 argument(s)"),
    ("a = [1, 2]", 5, "only follows 'in'"),
    ("", 0, "non-empty"),
])
def test_a_syntax_error_gives_its_column(text, column, words):
    with pytest.raises(ExpressionError) as caught:
        parse(text)
    assert caught.value.column == column and words in caught.value.message


# --- names and types ---------------------------------------------------------------------------

FIELDS = [{"code": "d", "type": "date"}, {"code": "n", "type": "integer"},
          {"code": "yn", "type": "yesno"},
          {"code": "c", "type": "choice", "choices": [{"code": "a"}, {"code": 2}]},
          {"code": "m", "type": "multichoice", "choices": [{"code": "liver"}]},
          {"code": "g", "type": "group", "fields": [{"code": "x", "type": "date"}]},
          {"code": "h", "type": "group", "fields": [{"code": "y", "type": "date"}]}]
SCOPE = Scope(fields=FIELDS, crfs={"other": {"code": "other", "fields": FIELDS}},
              visits={"baseline": ["other"], "week4": []}, anchors={"randomisation"},
              crf_code="this")


@pytest.mark.parametrize("text, words", [
    ("d >= 3", "cannot compare a date with a number"),
    ("d + d > d", "cannot compute a date + a date"),
    ("n contains 'liver'", "'contains' tests a multichoice field, not a number"),
    ("m contains 'lung'", "'lung' is not one of the field's codes (liver)"),
    ("c = 'b'", "'b' is not one of the choice's codes (a, 2)"),
    ("c > 'a'", "a choice is compared with = or != only"),
    ("m = 'liver'", "a multichoice is tested with 'contains'"),
    ("yn = 1", "cannot compare yes/no with a number"),
    ("n", "expected a condition (yes/no), found a number"),
    ("nope = 1", "unknown field 'nope' of this form"),
    ("missing.x = 1", "unknown field or form 'missing'"),
    ("other.nope = 1", "unknown field 'nope' of the form 'other'"),
    ("other@week9.n = 1", "unknown visit 'week9'"),
    ("other@week4.n = 1", "the form 'other' is not planned at the visit 'week4'"),
    ("d >= anchor.surgery", "unknown anchor 'surgery'"),
    ("g.x >= h.y", "reads the rows of one group only"),
    ("g = 1", "is a group of rows"),
    ("g.z = d", "unknown field 'z' of the group 'g'"),
    ("days_between(d, n) > 1", "days_between() takes two dates"),
])
def test_a_type_or_name_error_is_refused(text, words):
    with pytest.raises(ExpressionError) as caught:
        compile_expression(text, SCOPE)
    assert words in caught.value.message, caught.value.message


def test_names_resolve_to_fields_rows_and_references_with_their_types():
    compiled = compile_expression(
        "g.x >= d and other.n = 2 and d <= anchor.randomisation + 21 and other@baseline.c = 'a'",
        SCOPE)
    assert compiled.groups == {"g"} and compiled.fields == ["g.x", "d", "d"]
    assert compiled.refs == ["other.n", "anchor.randomisation", "other@baseline.c"]
    assert compiled.ast[1][1][1] == ["cmp", ">=", ["row", "x", "date"], ["field", "d", "date"],
                                     "date"]
    assert compile_expression("d - d >= 7", SCOPE).ast[4] == "days"


def test_a_condition_reads_its_own_form_only():
    with pytest.raises(ExpressionError, match="reads the answers of this form only"):
        compile_expression("other.n = 1", Scope(fields=FIELDS, outside=False))


# --- at load: the file, the path and the problem -----------------------------------------------

def test_the_shipped_files_use_the_language(rectal):
    surgery = rectal["crfs"][crf_index(rectal, "surgery")]
    assert {c["code"]: c["expect"] for c in surgery["checks"]}["surgery_within_21_days"] == \
        "surgery_date <= anchor.randomisation + 21"
    demographics = rectal["crfs"][crf_index(rectal, "demographics")]
    other = demographics["fields"][field_index(demographics, "metastatic_sites_other")]
    assert other["show_if"] == other["required_if"] == "metastatic_sites contains 'other'"
    reminet = yaml.safe_load(REMINET.read_text(encoding="utf-8"))
    checks = {c["code"]: c for crf in reminet["crfs"] for c in crf.get("checks", [])}
    assert checks["l1_duration_agrees_with_eligibility"]["expect"] == \
        "l1_duration_months = eligibility.l1_duration_months"
    assert checks["inc5_needs_two_months_of_first_line"]["when"] == "INC5 = yes"


def surgery_check(rectal: dict, **check) -> tuple[dict, str]:
    bad = copy.deepcopy(rectal)
    i = crf_index(bad, "surgery")
    bad["crfs"][i]["checks"][0] = {"code": "c", "message": {"en": "m", "fr": "m"}, **check}
    return bad, f"crfs[{i}].checks[0]"


@pytest.mark.parametrize("check, key, words", [
    ({"expect": "surgery_date >= "}, "expect",
     "'surgery_date >= ' at column 17: expected a value"),
    ({"expect": "surgry_date >= anchor.randomisation"}, "expect",
     "column 1: unknown field 'surgry_date' of this form"),
    ({"expect": "surgery_date >= anchor.surgey"}, "expect", "unknown anchor 'surgey'"),
    ({"expect": "surgery_date >= demographic.x"}, "expect", "unknown field or form 'demographic'"),
    ({"expect": "surgery_date >= 7"}, "expect", "cannot compare a date with a number"),
    ({"when": "approach = 'robot'", "expect": "surgery_date >= anchor.randomisation"}, "when",
     "'robot' is not one of the choice's codes"),
    ({"expect": "surgery_date >= tumour_assessment@week12.assessment_date"}, "expect",
     "unknown visit 'week12'"),
    ({"expect": "anchor.randomisation <= today()"}, "field", "reads no answer of this form"),
    ({"expect": "surgery_date >= anchor.randomisation", "field": "nope"}, "field",
     "unknown field 'nope'"),
])
def test_a_bad_check_is_refused_with_its_path(rectal, check, key, words):
    bad, path = surgery_check(rectal, **check)
    found = refused(bad)
    assert words in found[f"{path}.{key}"], found


def test_the_old_rule_keys_are_refused(rectal):
    bad, path = surgery_check(rectal, field="surgery_date", rule="not_before",
                              reference={"anchor": "randomisation"})
    found = refused(bad)
    assert found[path] in ("'expect' is required", "unknown key(s): reference, rule")


def test_bad_conditions_are_refused_with_their_path(rectal):
    bad = copy.deepcopy(rectal)
    d = crf_index(bad, "demographics")
    demographics = bad["crfs"][d]["fields"]
    other = field_index(bad["crfs"][d], "metastatic_sites_other")
    location = field_index(bad["crfs"][d], "primary_location")
    demographics[other]["show_if"] = "primary_location contains 'other'"
    demographics[other]["required_if"] = "metastatic_sites contains 'brain'"
    demographics[location]["show_if"] = "primary_location = 'low_rectum'"
    ae = crf_index(bad, "adverse_events")
    events = field_index(bad["crfs"][ae], "events")
    bad["crfs"][ae]["fields"][events]["fields"][1]["show_if"] = "any_event = yes"
    bad["crfs"][ae]["fields"][events]["required_if"] = "any_event = yes"
    found = refused(bad)
    assert "required by min_rows" in found[f"crfs[{ae}].fields[{events}].required_if"]
    here = f"crfs[{d}].fields"
    assert "'contains' tests a multichoice field, not a choice" in \
        found[f"{here}[{other}].show_if"]
    assert "'brain' is not one of the field's codes" in found[f"{here}[{other}].required_if"]
    assert "a field cannot depend on itself" in found[f"{here}[{location}].show_if"]
    assert "depends on the fields of the same row only" in \
        found[f"crfs[{ae}].fields[{events}].fields[1].show_if"]


def test_expressions_compile_against_the_shipped_protocols(rectal):
    for crf in rectal["crfs"]:
        scope = expressions.protocol_scope(rectal, crf)
        for check in crf.get("checks", []):
            compiled = expressions.compile_check(check, scope)
            assert compiled["expect"][0] in ("cmp", "and", "or")
