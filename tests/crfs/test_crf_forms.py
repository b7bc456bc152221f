"""CRF forms built from protocol definitions: what a draft and a completed form accept, how the
answers are stored, and what the page shows. No database needed."""
from __future__ import annotations

import datetime
import json
import re

import jsonschema
import pytest
from django.http import QueryDict
from django.template.loader import render_to_string

from crfs.forms import build_crf_form, form_to_data, missing_required, visible
from trials.protocol import SCHEMA, localise, read_protocol_file
from trials.services import shipped_protocol_files

TODAY = datetime.date(2024, 6, 15)

VITALS = {
    "code": "vitals",
    "label": "Vital signs",
    "fields": [
        {"code": "visit_date", "label": "Visit date", "type": "date", "required": True,
         "not_in_future": True},
        {"code": "weight", "label": "Weight", "type": "decimal", "unit": "kg", "min": 20,
         "max": 300, "decimals": 1, "required": True, "help": "Without shoes."},
        {"code": "heart_rate", "label": "Heart rate", "type": "integer", "unit": "bpm",
         "min": 30, "max": 220},
        {"code": "ecog", "label": "ECOG", "type": "choice", "required": True,
         "choices": [{"code": 0, "label": "Fully active"}, {"code": 1, "label": "Restricted"},
                     {"code": 2, "label": "Ambulatory"}]},
        {"code": "sites", "label": "Metastatic sites", "type": "multichoice",
         "choices": [{"code": "liver", "label": "Liver"}, {"code": "lung", "label": "Lung"},
                     {"code": "bone", "label": "Bone"}]},
        {"code": "smoker", "label": "Smoker", "type": "yesno", "required": True},
        {"code": "packs_per_day", "label": "Packs per day", "type": "decimal", "decimals": 2,
         "min": 0, "max": 10, "required": True, "show_if": "smoker = yes"},
        {"code": "comment", "label": "Comment", "type": "text", "max_length": 20},
        {"code": "lesions", "label": "Target lesions", "type": "group", "min_rows": 1,
         "max_rows": 3, "fields": [
             {"code": "organ", "label": "Organ", "type": "choice", "required": True,
              "choices": [{"code": "liver", "label": "Liver"}, {"code": "lung", "label": "Lung"}]},
             {"code": "diameter_mm", "label": "Diameter", "type": "decimal", "unit": "mm",
              "min": 10, "max": 500, "decimals": 1, "required": True},
             {"code": "lymph_node", "label": "Lymph node", "type": "yesno"},
             {"code": "short_axis_mm", "label": "Short axis", "type": "decimal", "unit": "mm",
              "decimals": 1, "required": True,
              "show_if": "lymph_node = yes"},
         ]},
        {"code": "bmi", "label": "BMI", "type": "decimal", "decimals": 1, "derived": "bmi"},
    ],
}

COMPLETE_POST = {
    "visit_date": "2024-06-01", "weight": "72.5", "heart_rate": "64", "ecog": "1",
    "sites": ["lung", "liver"], "smoker": "true", "packs_per_day": "0.5", "comment": "  ok  ",
    "lesions-TOTAL": "2",
    "lesions-0-organ": "liver", "lesions-0-diameter_mm": "23,4", "lesions-0-lymph_node": "false",
    "lesions-1-organ": "lung", "lesions-1-diameter_mm": "15", "lesions-1-lymph_node": "true",
    "lesions-1-short_axis_mm": "12",
}

COMPLETE_STORED = {
    "visit_date": "2024-06-01", "weight": "72.5", "heart_rate": 64, "ecog": 1,
    "sites": ["liver", "lung"], "smoker": True, "packs_per_day": "0.50", "comment": "ok",
    "lesions": [
        {"organ": "liver", "diameter_mm": "23.4", "lymph_node": False, "short_axis_mm": None},
        {"organ": "lung", "diameter_mm": "15.0", "lymph_node": True, "short_axis_mm": "12.0"},
    ],
    "bmi": None,
}


def post(values: dict) -> QueryDict:
    """Like request.POST: every value a string, lists for repeated names."""
    data = QueryDict(mutable=True)
    for name, value in values.items():
        data.setlist(name, value if isinstance(value, list) else [value])
    return data


def submit(values: dict, *, mode: str = "draft", definition: dict = VITALS, **kwargs):
    form = build_crf_form(definition, mode=mode, data=post(values), today=TODAY, **kwargs)
    form.is_valid()
    return form


def errors(values: dict, **kwargs) -> dict[str, list[str]]:
    return {name: list(messages) for name, messages in submit(values, **kwargs).errors.items()}


def render(form) -> str:
    return render_to_string("outcomes/_crf_fields.html", {"form": form})


def test_the_example_definition_is_a_valid_protocol_crf():
    schema = {"$defs": SCHEMA["$defs"], "type": "array", "items": {"$ref": "#/$defs/field"}}
    jsonschema.validate(VITALS["fields"], schema)


# --- stored format and round trip ---------------------------------------------------------------

def test_a_complete_post_is_stored_in_the_documented_json_format():
    form = submit(COMPLETE_POST, mode="complete")
    assert form.is_valid(), form.errors
    data = form_to_data(form)
    assert data == COMPLETE_STORED
    assert json.loads(json.dumps(data)) == data
    assert type(data["ecog"]) is int and type(data["heart_rate"]) is int


@pytest.mark.parametrize("name, stored, rendered", [
    ("visit_date", "2024-06-01", 'name="visit_date" value="2024-06-01"'),
    ("weight", "72.5", 'name="weight" value="72.5"'),
    ("heart_rate", 64, 'name="heart_rate" value="64"'),
    ("ecog", 1, 'name="ecog" value="1" id="id_ecog_1" checked'),
    ("sites", ["liver", "lung"], 'name="sites" value="lung" id="id_sites_1" checked'),
    ("smoker", True, 'name="smoker" value="true" id="id_smoker_0" checked'),
    ("packs_per_day", "0.50", 'name="packs_per_day" value="0.50"'),
    ("comment", "ok", 'name="comment" value="ok"'),
    ("lesions", None, 'name="lesions-1-short_axis_mm" value="12.0"'),
    ("lesions", None, '<option value="lung" selected>Lung</option>'),
])
def test_every_field_type_round_trips_from_post_to_stored_data_to_the_rendered_form(
        name, stored, rendered):
    data = form_to_data(submit(COMPLETE_POST, mode="complete"))
    if stored is not None:
        assert data[name] == stored
    html = render(build_crf_form(VITALS, initial=data, today=TODAY))
    assert rendered in html
    # Submitting the rendered values again gives the same stored data.
    again = build_crf_form(VITALS, initial=data, today=TODAY)
    reposted = {n: again[n].value() for n in again.fields if again[n].value() not in (None, "")}
    assert form_to_data(submit(reposted, mode="complete")) == data


def test_every_field_of_the_definition_is_stored_even_when_unanswered():
    data = form_to_data(submit({}))
    assert set(data) == {f["code"] for f in VITALS["fields"]}
    assert data["weight"] is None and data["sites"] is None and data["comment"] is None
    assert data["lesions"] == []


def test_multichoice_is_stored_in_protocol_order():
    assert form_to_data(submit({"sites": ["bone", "liver"]}))["sites"] == ["liver", "bone"]


def test_text_is_stripped_and_blank_text_is_unanswered():
    assert form_to_data(submit({"comment": "  fine "}))["comment"] == "fine"
    assert form_to_data(submit({"comment": "   "}))["comment"] is None


# --- draft and complete -------------------------------------------------------------------------

def test_a_draft_accepts_missing_required_answers():
    form = submit({"weight": "70"})
    assert form.is_valid(), form.errors
    assert form_to_data(form)["visit_date"] is None


def test_a_draft_still_refuses_invalid_values():
    assert errors({"weight": "heavy"}) == {"weight": ["Enter a number, e.g. 12.5 or 12,5."]}


def test_completing_refuses_a_missing_required_answer_with_the_message_on_that_field():
    values = dict(COMPLETE_POST, weight="")
    assert errors(values, mode="complete") == {
        "weight": ["This field is required to complete the form."]}


def test_an_invalid_value_is_not_also_reported_as_missing():
    values = dict(COMPLETE_POST, weight="abc")
    assert errors(values, mode="complete") == {"weight": ["Enter a number, e.g. 12.5 or 12,5."]}


def test_unknown_mode_is_a_programming_error():
    with pytest.raises(ValueError):
        build_crf_form(VITALS, mode="final")


# --- values -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, message", [
    ("weight", "19.9", "Must be at least 20 kg."),
    ("weight", "300.1", "Must be at most 300 kg."),
    ("heart_rate", "29", "Must be at least 30 bpm."),
    ("heart_rate", "221", "Must be at most 220 bpm."),
    ("packs_per_day", "-1", "Must be at least 0."),
    ("heart_rate", "72.5", "Enter a whole number."),
    ("heart_rate", "many", "Enter a whole number."),
    ("weight", "72.55", "At most 1 decimal place."),
    ("packs_per_day", "0.125", "At most 2 decimal places."),
    ("weight", "1e2", "Enter a number, e.g. 12.5 or 12,5."),
    ("comment", "x" * 21, "At most 20 characters (you entered 21)."),
    ("ecog", "7", "Select a valid choice."),
    ("sites", ["liver", "brain"], "Select a valid choice."),
    ("smoker", "maybe", "Select a valid choice."),
    ("visit_date", "2024-06-16", "This date is in the future."),
    ("visit_date", "31/02/2024", "Enter a valid date, as YYYY-MM-DD or DD/MM/YYYY."),
    ("visit_date", "June 1st", "Enter a valid date, as YYYY-MM-DD or DD/MM/YYYY."),
])
def test_a_wrong_value_is_refused_with_a_message_that_names_the_limit(name, value, message):
    values = {"smoker": "true", name: value}
    assert errors(values) == {name: [message]}


@pytest.mark.parametrize("typed, stored", [("72,5", "72.5"), ("72.50", "72.5"), ("72", "72.0"),
                                           (" 72.5 ", "72.5"), ("+72.5", "72.5")])
def test_decimals_accept_the_french_comma_and_are_stored_exactly_to_the_protocol_places(
        typed, stored):
    assert form_to_data(submit({"weight": typed}))["weight"] == stored


def test_a_decimal_without_places_in_the_protocol_is_stored_as_typed_without_trailing_zeros():
    definition = {"code": "x", "label": "X", "fields": [
        {"code": "ratio", "label": "Ratio", "type": "decimal"}]}
    assert form_to_data(submit({"ratio": "0,1250"}, definition=definition))["ratio"] == "0.125"


@pytest.mark.parametrize("typed", ["2024-06-01", "01/06/2024", "1/6/2024"])
def test_dates_accept_iso_and_the_european_day_month_year(typed):
    assert form_to_data(submit({"visit_date": typed}))["visit_date"] == "2024-06-01"


def test_a_european_date_is_redisplayed_as_iso_so_the_date_input_keeps_it():
    form = submit({"visit_date": "01/06/2024", "weight": "1"})
    assert not form.is_valid()
    assert 'type="date" name="visit_date" value="2024-06-01"' in render(form)


def test_today_is_not_in_the_future_and_dates_without_the_rule_may_be():
    assert submit({"visit_date": "2024-06-15"}).is_valid()
    definition = {"code": "x", "label": "X", "fields": [
        {"code": "next_visit", "label": "Next visit", "type": "date"}]}
    assert submit({"next_visit": "2030-01-01"}, definition=definition).is_valid()


def test_choice_codes_that_are_integers_stay_integers_and_strings_stay_strings():
    definition = {"code": "x", "label": "X", "fields": [
        {"code": "grade", "label": "Grade", "type": "choice",
         "choices": [{"code": 1, "label": "One"}, {"code": "1a", "label": "One a"}]},
        {"code": "grades", "label": "Grades", "type": "multichoice",
         "choices": [{"code": 1, "label": "One"}, {"code": "1a", "label": "One a"}]}]}
    data = form_to_data(submit({"grade": "1", "grades": ["1a", "1"]}, definition=definition))
    assert data == {"grade": 1, "grades": [1, "1a"]}
    assert form_to_data(submit({"grade": "1a"}, definition=definition))["grade"] == "1a"


# --- show_if ------------------------------------------------------------------------------------

def test_a_field_hidden_by_show_if_is_not_required_and_its_stale_answer_is_discarded():
    values = dict(COMPLETE_POST, smoker="false", packs_per_day="")
    form = submit(values, mode="complete")
    assert form.is_valid(), form.errors
    values["packs_per_day"] = "2"
    assert form_to_data(submit(values, mode="complete"))["packs_per_day"] is None


def test_an_invalid_answer_to_a_hidden_field_is_discarded_not_refused():
    form = submit({"smoker": "false", "packs_per_day": "lots"})
    assert form.is_valid(), form.errors
    assert form_to_data(form)["packs_per_day"] is None


def test_a_shown_conditional_field_is_required_to_complete():
    values = dict(COMPLETE_POST, packs_per_day="")
    assert errors(values, mode="complete") == {
        "packs_per_day": ["This field is required to complete the form."]}


def test_show_if_follows_chains_and_lists_of_values():
    fields = [
        {"code": "event", "label": "Event", "type": "choice",
         "choices": [{"code": "death", "label": "Death"}, {"code": "ae", "label": "AE"},
                     {"code": "none", "label": "None"}]},
        {"code": "autopsy", "label": "Autopsy", "type": "yesno",
         "show_if": "event in ['death']"},
        {"code": "autopsy_date", "label": "Autopsy date", "type": "date",
         "show_if": "autopsy = yes"},
    ]
    definition = {"code": "x", "label": "X", "fields": fields}
    data = form_to_data(submit({"event": "ae", "autopsy": "true", "autopsy_date": "2024-01-02"},
                               definition=definition))
    assert data == {"event": "ae", "autopsy": None, "autopsy_date": None}
    assert visible(fields[1], {"event": "death"}, fields)
    assert not visible(fields[1], {"event": None}, fields)
    sites = [{"code": "s", "type": "multichoice",
              "choices": [{"code": "liver"}, {"code": "lung"}]}, {"code": "b", "type": "yesno"}]
    assert visible({"show_if": "s contains 'lung'"}, {"s": ["liver", "lung"]}, sites)
    assert not visible({"show_if": "b = yes"}, {"b": 1}, sites)  # 1 is not yes


# --- groups -------------------------------------------------------------------------------------

def rows(*lesions: dict, total: int | None = None, base: dict | None = None) -> dict:
    """POST values with these lesion rows, on top of ``base`` without its own rows."""
    values = {k: v for k, v in (base or {}).items() if not k.startswith("lesions-")}
    values["lesions-TOTAL"] = str(len(lesions) if total is None else total)
    for i, lesion in enumerate(lesions):
        values.update({f"lesions-{i}-{k}": v for k, v in lesion.items()})
    return values


def test_blank_rows_are_dropped():
    values = rows({}, {"organ": "lung", "diameter_mm": "30"}, {"lymph_node": ""})
    assert form_to_data(submit(values))["lesions"] == [
        {"organ": "lung", "diameter_mm": "30.0", "lymph_node": None, "short_axis_mm": None}]


def test_a_row_error_attaches_to_that_row_and_sub_field():
    values = rows({"organ": "lung", "diameter_mm": "30"}, {"organ": "liver", "diameter_mm": "5"})
    assert errors(values) == {"lesions-1-diameter_mm": ["Must be at least 10 mm."]}


def test_completing_requires_the_sub_fields_of_non_blank_rows_only():
    values = rows({"organ": "lung"}, {}, {"diameter_mm": "12", "lymph_node": "true"},
                  base=COMPLETE_POST)
    assert errors(values, mode="complete") == {
        "lesions-0-diameter_mm": ["This field is required to complete the form."],
        "lesions-2-organ": ["This field is required to complete the form."],
        "lesions-2-short_axis_mm": ["This field is required to complete the form."],
    }


def test_completing_needs_min_rows_but_a_draft_does_not():
    values = rows({}, {}, base=COMPLETE_POST)
    assert errors(values, mode="complete") == {"lesions": ["Add at least 1 row."]}
    assert submit(values).is_valid()


def test_more_rows_than_max_rows_are_refused_on_the_group():
    lesion = {"organ": "lung", "diameter_mm": "30"}
    assert errors(rows(lesion, lesion, lesion, lesion)) == {"lesions": ["At most 3 rows."]}
    assert submit(rows(lesion, lesion, lesion, {}, {})).is_valid()


def test_a_forged_row_count_does_not_build_endless_fields():
    form = submit({"lesions-TOTAL": "100000000"})
    assert len(form.fields) < 100
    assert not form.is_valid() and form.errors["lesions"] == ["At most 3 rows."]


@pytest.mark.parametrize("values", [
    {"lesions-TOTAL": "9" * 5000}, {"lesions-TOTAL": "²"}, {"lesions-99999999999-organ": "lung"},
    {"heart_rate": "9" * 5000}, {"weight": "9" * 5000}, {"visit_date": "9" * 5000},
    {"ecog": ["0", "1"]}, {"comment": "\x00"},
])
def test_garbage_input_gets_an_answer_not_a_server_error(values):
    submit(values).is_valid()


def test_rows_sent_without_a_count_are_still_read():
    values = rows({"organ": "lung", "diameter_mm": "30"})
    del values["lesions-TOTAL"]
    assert len(form_to_data(submit(values))["lesions"]) == 1


def test_a_hidden_group_is_stored_as_none_and_its_rows_are_not_checked():
    definition = {"code": "ae", "label": "AE", "fields": [
        {"code": "any_event", "label": "Any event", "type": "yesno", "required": True},
        {"code": "events", "label": "Events", "type": "group", "min_rows": 1,
         "show_if": "any_event = yes",
         "fields": [{"code": "term", "label": "Term", "type": "text", "required": True},
                    {"code": "onset", "label": "Onset", "type": "date", "not_in_future": True}]},
    ]}
    values = {"any_event": "false", "events-TOTAL": "1", "events-0-onset": "2099-01-01"}
    form = submit(values, mode="complete", definition=definition)
    assert form.is_valid(), form.errors
    assert form_to_data(form) == {"any_event": False, "events": None}
    values["any_event"] = "true"
    assert errors(values, mode="complete", definition=definition) == {
        "events-0-onset": ["This date is in the future."],
        "events-0-term": ["This field is required to complete the form."]}


def test_without_javascript_a_group_offers_its_rows_plus_two_blank_ones():
    def rendered_rows(initial):
        html = render(build_crf_form(VITALS, initial=initial, today=TODAY))
        return len(re.findall(r'name="lesions-(\d+|TOTAL)', html)), html
    lesion = {"organ": "lung", "diameter_mm": "30.0", "lymph_node": None, "short_axis_mm": None}
    count, html = rendered_rows({})
    assert count == 1 + 4 * 3  # the TOTAL, then max(0 rows, min_rows 1, 1) + 2 spare rows
    assert 'name="lesions-TOTAL" value="3"' in html
    assert html.count("data-spare") == 2
    count, html = rendered_rows({"lesions": [lesion, lesion]})
    assert count == 1 + 4 * 3  # 2 rows + 2 spare, but never more than max_rows 3
    assert html.count("data-spare") == 1


# --- derived and required paths -----------------------------------------------------------------

def test_a_derived_field_cannot_be_set_by_post_and_keeps_its_stored_value():
    form = submit({"bmi": "99.9", "weight": "70"}, initial={"bmi": "24.2"})
    assert "bmi" not in form.fields
    assert form_to_data(form)["bmi"] == "24.2"
    assert form_to_data(submit({"bmi": "99.9"}))["bmi"] is None


def test_a_derived_field_is_shown_read_only():
    html = render(build_crf_form(VITALS, initial={"bmi": "24.2"}, today=TODAY))
    assert '<output class="crf-derived">24.2</output>' in html
    assert 'name="bmi"' not in html


def test_missing_required_lists_paths_honouring_show_if_and_min_rows():
    assert missing_required(VITALS, COMPLETE_STORED) == []
    data = json.loads(json.dumps(COMPLETE_STORED))
    data.update(weight=None, smoker=False, packs_per_day=None)
    data["lesions"][1].update(short_axis_mm=None, organ=None)
    assert missing_required(VITALS, data) == [
        "weight", "lesions[1].organ", "lesions[1].short_axis_mm"]
    assert missing_required(VITALS, {}) == ["visit_date", "weight", "ecog", "smoker", "lesions"]


# --- the page -----------------------------------------------------------------------------------

def test_the_partial_shows_labels_units_help_required_marks_and_conditions():
    html = render(build_crf_form(VITALS, today=TODAY))
    assert '<label for="id_weight">Weight <abbr class="crf-required"' in html
    assert '<span class="crf-unit">kg</span>' in html
    assert 'id="id_weight_helptext">Without shoes.</p>' in html
    assert ('data-show-if="[&quot;cmp&quot;, &quot;=&quot;, [&quot;field&quot;, &quot;smoker&quot;, '
            '&quot;bool&quot;], [&quot;lit&quot;, true], &quot;bool&quot;]"') in html
    assert "Only if “Smoker” is Yes." in html
    assert 'type="date" name="visit_date"' in html
    assert '<template data-row-template>' in html and 'name="lesions-__prefix__-organ"' in html
    assert 'data-show-if="[&quot;cmp&quot;, &quot;=&quot;, [&quot;field&quot;, &quot;lymph_node&quot;' in html
    assert "data-add-row" in html and "js/crf.js" in html and "js/checks.js" in html


def test_the_partial_shows_each_error_next_to_its_field():
    form = submit(dict(rows({"organ": "lung", "diameter_mm": "5"}), weight="500"))
    html = render(form)
    weight = html.index('name="weight"')
    assert html.index("Must be at most 300 kg.") > weight
    assert html.index("Must be at most 300 kg.") < html.index('name="heart_rate"')
    diameter = html.index('name="lesions-0-diameter_mm"')
    assert diameter < html.index("Must be at least 10 mm.") < html.index('name="lesions-0-lymph_node"')


def test_the_partial_shows_group_errors_on_the_group():
    html = render(submit(rows({}, base=COMPLETE_POST), mode="complete"))
    assert html.index("Target lesions") < html.index("Add at least 1 row.") < html.index("<table")


def test_a_prefix_keeps_two_forms_apart():
    form = build_crf_form(VITALS, data=post({"v-weight": "70", "v-lesions-TOTAL": "1",
                                             "v-lesions-0-organ": "lung"}),
                          prefix="v", today=TODAY)
    assert form.is_valid(), form.errors
    assert form_to_data(form)["lesions"][0]["organ"] == "lung"
    html = render(form)
    assert 'data-group="v-lesions"' in html and 'name="v-lesions-__prefix__-organ"' in html


@pytest.mark.django_db  # the adverse-event forms offer the CTCAE terms loaded in the database
@pytest.mark.parametrize("path", shipped_protocol_files(), ids=lambda p: p.stem)
def test_every_shipped_crf_builds_renders_and_takes_an_empty_draft(path):
    for crf in localise(read_protocol_file(path), "fr")["crfs"]:
        assert render(build_crf_form(crf, today=TODAY))
        form = build_crf_form(crf, data=post({}), today=TODAY)
        assert form.is_valid(), (crf["code"], form.errors)
        assert missing_required(crf, form_to_data(form)) == missing_required(crf, {})
