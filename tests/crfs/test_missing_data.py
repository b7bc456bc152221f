"""Missing-data codes (ND, NA, UNK) and partial dates: what the protocol may declare, what the
form accepts and refuses next to the answer, how a coded answer is stored (None, with the code
beside it), that it completes the form, shows in the history, and makes a derivation that needs
it not evaluable with the reason."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import reverse

from crfs.derivations import NOTES_KEY, derive_fields
from crfs.forms import build_crf_form, form_to_data, missing_required
from crfs.missing_data import MISSING_KEY, impute, precision_of
from crfs.models import CRFRecord, CRFStatus
from crfs.selectors import crf_history
from patients.windows import as_date
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.crf_world import demographics
from trials.protocol import parse_protocol, validate_definition
from trials.services import shipped_protocol_files

from .test_rederivation import assessment_visits, tumour

TODAY = dt.date(2024, 6, 15)

LABS = {
    "code": "labs",
    "label": "Labs",
    "fields": [
        {"code": "ki67", "label": "Ki-67", "type": "decimal", "unit": "%", "required": True,
         "missing": {"codes": ["ND", "UNK"], "reason": "required"}},
        {"code": "cea", "label": "CEA", "type": "decimal",
         "missing": {"codes": ["ND", "UNK"]}},
        {"code": "weight", "label": "Weight", "type": "decimal", "required": True},
        {"code": "diagnosis_date", "label": "Diagnosis", "type": "date", "not_in_future": True,
         "partial": {"precision": "month", "impute": "middle"}},
        {"code": "first_symptom", "label": "First symptom", "type": "date",
         "partial": {"precision": "year"}},
        {"code": "lesions", "label": "Lesions", "type": "group", "fields": [
            {"code": "diameter_mm", "label": "Diameter", "type": "decimal", "required": True,
             "missing": {"codes": ["ND"], "reason": "required"}},
        ]},
    ],
}


def post(**answers) -> QueryDict:
    data = QueryDict(mutable=True)
    data.update({"weight": "70", "lesions-TOTAL": "0", **answers})
    return data


def clean(mode="complete", **answers):
    form = build_crf_form(LABS, mode=mode, data=post(**answers), today=TODAY)
    return form, (form_to_data(form) if form.is_valid() else None)


# --- the protocol -------------------------------------------------------------------------------

def shipped_text(name: str) -> str:
    return next(p for p in shipped_protocol_files() if p.name == name).read_text()


def problems_of(definition: dict) -> dict[str, str]:
    return {p.path: p.message for p in validate_definition(definition)}


def test_the_shipped_protocols_allow_codes_and_partial_dates_where_sites_may_not_know():
    rectal = parse_protocol(shipped_text("rectal-resection.yaml"))
    reminet = parse_protocol(shipped_text("reminet.yaml"))
    fields = {(d["trial"]["slug"], c["code"], f["code"]): f
              for d in (rectal, reminet) for c in d["crfs"] for f in c["fields"]}
    for slug in ("rectal-resection", "reminet"):
        diagnosis = fields[(slug, "demographics", "diagnosis_date")]
        assert diagnosis["partial"] == {"precision": "month", "impute": "middle"}
        lesions = fields[(slug, "tumour_assessment", "target_lesions")]["fields"]
        diameter = next(f for f in lesions if f["code"] == "diameter_mm")
        assert diameter["missing"] == {"codes": ["ND"], "reason": "required"}
    assert fields[("reminet", "demographics", "ki67_percent")]["missing"]["reason"] == "required"
    assert fields[("rectal-resection", "demographics", "cea_ng_ml")]["missing"]["codes"] == [
        "ND", "UNK"]
    assert fields[("rectal-resection", "demographics", "distance_anal_verge_cm")]["required"]


@pytest.mark.parametrize("change, path, message", [
    (lambda f: f.update(missing={"codes": ["ND", "NK"]}),
     "crfs[{crf}].fields[{field}].missing.codes[1]", "unknown missing-data code 'NK'"),
    (lambda f: f.update(partial={"precision": "month"}),
     "crfs[{crf}].fields[{field}].partial", "partial given for a field of type choice"),
])
def test_a_bad_declaration_is_refused_at_load_with_its_path(change, path, message):
    definition = parse_protocol(shipped_text("rectal-resection.yaml"))
    crf = next(i for i, c in enumerate(definition["crfs"]) if c["code"] == "demographics")
    field = next(i for i, f in enumerate(definition["crfs"][crf]["fields"])
                 if f["code"] == "sex")
    change(definition["crfs"][crf]["fields"][field])
    found = problems_of(definition)
    where = path.format(crf=crf, field=field)
    assert where in found and message in found[where], found


def test_codes_on_a_group_or_an_unknown_reason_rule_are_refused():
    definition = parse_protocol(shipped_text("rectal-resection.yaml"))
    crf = next(i for i, c in enumerate(definition["crfs"]) if c["code"] == "tumour_assessment")
    fields = definition["crfs"][crf]["fields"]
    group = next(i for i, f in enumerate(fields) if f["type"] == "group")
    bad = copy.deepcopy(definition)
    bad["crfs"][crf]["fields"][group]["missing"] = {"codes": ["ND"]}
    found = problems_of(bad)
    assert "missing-data codes make no sense on a group" in found[
        f"crfs[{crf}].fields[{group}].missing"]
    bad = copy.deepcopy(definition)
    bad["crfs"][crf]["fields"][group]["fields"][0]["missing"] = {"codes": ["ND"],
                                                                 "reason": "sometimes"}
    assert any(p.startswith(f"crfs[{crf}].fields[{group}].fields[0].missing")
               for p in problems_of(bad))


# --- entry ---------------------------------------------------------------------------------------

def test_a_coded_answer_is_stored_as_none_with_its_code_beside_it():
    form, data = clean(**{"ki67__code": "UNK", "ki67__reason": "the lab did not report it",
                          "cea__code": "ND", "lesions-TOTAL": "1",
                          "lesions-0-diameter_mm__code": "ND",
                          "lesions-0-diameter_mm__reason": "lesion outside the field"})
    assert data is not None, form.errors
    assert data["ki67"] is None and data["cea"] is None
    assert data[MISSING_KEY] == {"ki67": {"code": "UNK", "reason": "the lab did not report it"},
                                 "cea": {"code": "ND"}}
    assert data["lesions"] == [{"diameter_mm": None, MISSING_KEY: {"diameter_mm": {
        "code": "ND", "reason": "lesion outside the field"}}}]
    assert missing_required(LABS, data) == []  # a code answers a required question


def test_answers_without_codes_are_stored_as_before():
    form, data = clean(ki67="12,5")
    assert data == {"ki67": "12.5", "cea": None, "weight": "70", "diagnosis_date": None,
                    "first_symptom": None, "lesions": []}


@pytest.mark.parametrize("answers, name, message", [
    ({"ki67": "12", "ki67__code": "UNK", "ki67__reason": "x"}, "ki67",
     "Give either a value or a missing-data code, not both."),
    ({"ki67__code": "NA", "ki67__reason": "x"}, "ki67",
     "“NA” is not a missing-data code this answer allows (ND, UNK)."),
    ({"ki67__code": "UNK"}, "ki67", "Give the reason for “Unknown”."),
    ({"ki67": "3", "weight__code": "UNK"}, "weight", "This answer allows no missing-data code."),
    ({"ki67__code": "UNK", "ki67__reason": "x" * 501}, "ki67",
     "Ensure this value has at most 500 characters (it has 501)."),
    ({"ki67": "3", "lesions-TOTAL": "1", "lesions-0-diameter_mm__code": "ND"},
     "lesions-0-diameter_mm", "Give the reason for “Not done”."),
    ({"ki67": "3", "lesions-TOTAL": "1", "lesions-0-diameter_mm": "12",
      "lesions-0-diameter_mm__code": "ND", "lesions-0-diameter_mm__reason": "r"},
     "lesions-0-diameter_mm", "Give either a value or a missing-data code, not both."),
])
def test_bad_codes_are_refused_next_to_the_answer(answers, name, message):
    for mode in ("draft", "complete"):
        form, data = clean(mode, **answers)
        assert data is None
        assert form.errors[name] == [message]


def test_a_required_answer_with_neither_value_nor_code_is_still_missing():
    form, data = clean()
    assert form.errors["ki67"] == ["This field is required to complete the form."]


@pytest.mark.parametrize("parts, stored", [
    ({"diagnosis_date_day": "12", "diagnosis_date_month": "3", "diagnosis_date_year": "2019"},
     "2019-03-12"),
    ({"diagnosis_date_month": "3", "diagnosis_date_year": "2019"}, "2019-03"),
    ({"first_symptom_year": "2018"}, None),
    ({"diagnosis_date": "2019-03"}, "2019-03"),  # one text, as the API sends it
])
def test_partial_dates_are_stored_in_iso_8601_reduced_precision(parts, stored):
    form, data = clean(ki67="3", **parts)
    assert data is not None, form.errors
    assert data["diagnosis_date"] == stored
    if "first_symptom_year" in parts:
        assert data["first_symptom"] == "2018"


@pytest.mark.parametrize("parts, name, message", [
    ({"diagnosis_date_day": "12", "diagnosis_date_year": "2019"}, "diagnosis_date",
     "A day needs its month: give the month, or leave the day blank."),
    ({"diagnosis_date_month": "3"}, "diagnosis_date", "A day or a month needs its year."),
    ({"diagnosis_date_year": "2019"}, "diagnosis_date",
     "This date needs at least its month and year."),
    ({"diagnosis_date_day": "30", "diagnosis_date_month": "2", "diagnosis_date_year": "2019"},
     "diagnosis_date", "There is no day 30 in that month."),
    ({"diagnosis_date_month": "7", "diagnosis_date_year": "2024"}, "diagnosis_date",
     "This date is in the future."),
    ({"diagnosis_date_month": "13", "diagnosis_date_year": "2019"}, "diagnosis_date",
     "Choose a month from the list."),
    ({"diagnosis_date": "2019-3"}, "diagnosis_date",
     "Enter the year with 4 digits, e.g. 2019."),
])
def test_bad_partial_dates_are_refused_next_to_the_field(parts, name, message):
    form, data = clean(ki67="3", **parts)
    assert data is None and form.errors[name] == [message]


def test_a_stored_code_and_partial_date_are_shown_again_in_the_form():
    stored = {"ki67": None, MISSING_KEY: {"ki67": {"code": "UNK", "reason": "not sent"}},
              "diagnosis_date": "2019-03",
              "lesions": [{"diameter_mm": None, MISSING_KEY: {"diameter_mm": {"code": "ND",
                                                                              "reason": "r"}}}]}
    form = build_crf_form(LABS, initial=stored, today=TODAY)
    html = "".join(str(form[name]) for name in (
        "ki67__code", "ki67__reason", "diagnosis_date", "lesions-0-diameter_mm__code"))
    assert '<option value="UNK" selected>' in html and 'value="not sent"' in html
    assert '<option value="3" selected>' in html and 'value="2019"' in html
    assert '<option value="ND" selected>' in html


def test_imputation_follows_only_the_rule_given():
    assert impute("2019-03", "middle") == dt.date(2019, 3, 15)
    assert impute("2019", "middle") == dt.date(2019, 7, 1)
    assert impute("2019-02", "last_day") == dt.date(2019, 2, 28)
    assert impute("2019", "first_day") == dt.date(2019, 1, 1)
    assert impute("2019-03", None) is None  # no rule: unknown to the analysis
    assert impute("2019-03-12", None) == dt.date(2019, 3, 12)
    assert [precision_of(t) for t in ("2019", "2019-03", "2019-03-12", "03/2019")] == [
        "year", "month", "day", None]


# --- saved, completed, in the history and the page ------------------------------------------------

def test_a_required_answer_coded_unknown_completes_the_form_and_shows_in_the_history(
        participant, baseline, investigator):
    answers = demographics(participant, distance_anal_verge_cm=None)
    answers[MISSING_KEY] = {"distance_anal_verge_cm": {"code": "UNK",
                                                       "reason": "MRI report not available"}}
    record = save_crf(participant, "demographics", answers, by=investigator, complete=True,
                      visit=baseline)
    assert record.status == CRFStatus.COMPLETE
    changed = dict(record.data, distance_anal_verge_cm="6.5")
    changed.pop(MISSING_KEY)
    with pytest.raises(ValidationError):  # a completed CRF changes with a reason only
        save_crf(participant, "demographics", changed, by=investigator, complete=True,
                 record=record)
    save_crf(participant, "demographics", changed, by=investigator, complete=True,
             record=record, reason="report found")
    versions = crf_history(CRFRecord.objects.get(pk=record.pk))
    first = {c.path: c.new for c in versions[0].changes}
    assert first["distance_anal_verge_cm"] == "Unknown (UNK): MRI report not available"
    last = {c.path: (c.old, c.new) for c in versions[-1].changes}
    assert last["distance_anal_verge_cm"] == ("Unknown (UNK): MRI report not available",
                                              "6.5 cm")


def test_the_page_offers_the_code_and_refuses_a_crafted_one_writing_nothing(
        participant, baseline, investigator, client, client_for):
    client_for(investigator)
    url = reverse("visit_crf_edit", args=[participant.trial.slug, participant.study_id,
                                          baseline.pk, "demographics"])
    html = client.get(url).content.decode()
    assert 'name="distance_anal_verge_cm__code"' in html
    assert 'name="distance_anal_verge_cm__reason"' in html
    assert 'name="diagnosis_date_month"' in html and 'name="diagnosis_date_year"' in html
    answers = {"sex": "male", "year_of_birth": "1958", "ecog": "0", "height_cm": "172",
               "weight_kg": "71", "primary_location": "low_rectum", "metastatic_sites": "liver",
               "action": "complete"}
    crafted = client.post(url, {**answers, "distance_anal_verge_cm__code": "NA",
                                "distance_anal_verge_cm__reason": "x",
                                "weight_kg__code": "UNK"})
    assert crafted.status_code == 400
    errors = crafted.context["form"].errors
    assert errors["distance_anal_verge_cm"] == [
        "“NA” is not a missing-data code this answer allows (ND, UNK)."]
    assert errors["weight_kg"] == ["This answer allows no missing-data code."]
    assert not CRFRecord.objects.filter(participant=participant).exclude(
        crf_code="eligibility").exists()
    saved = client.post(url, {**answers, "distance_anal_verge_cm__code": "UNK",
                              "distance_anal_verge_cm__reason": "MRI report not available",
                              "diagnosis_date_month": "3", "diagnosis_date_year": "2019"})
    assert saved.status_code == 302, saved.context["form"].errors
    record = CRFRecord.objects.get(participant=participant, crf_code="demographics")
    assert record.status == CRFStatus.COMPLETE
    assert record.data["distance_anal_verge_cm"] is None
    assert record.data["diagnosis_date"] == "2019-03"
    assert record.data[MISSING_KEY]["distance_anal_verge_cm"]["code"] == "UNK"


# --- derivations --------------------------------------------------------------------------------

def test_a_diameter_not_done_makes_the_sum_and_response_not_evaluable_with_the_reason(
        rectal, coordinator, investigator):
    p = factories.randomised(rectal, by=coordinator, days_ago=400)
    base_visit, month_3 = assessment_visits(p)[:2]
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "40", "30"),
             by=investigator, complete=True, visit=base_visit)
    answers = tumour(p, month_3.target_date, "38", None)
    answers["target_lesions"][1][MISSING_KEY] = {"diameter_mm": {
        "code": "ND", "reason": "liver not in the field of view"}}
    scan = save_crf(p, "tumour_assessment", answers, by=investigator, complete=True,
                    visit=month_3)
    data = CRFRecord.objects.get(pk=scan.pk).data
    assert data["target_lesions"][1][MISSING_KEY]["diameter_mm"]["code"] == "ND"
    assert data["sum_of_diameters"] is None  # 38 + a code is never 38
    assert data["overall_response"] == "ne"
    assert data[NOTES_KEY]["overall_response"] == (
        "lesion 2 diameter: not done (RECIST 1.1 4.4.2: not evaluable)")
    form = build_crf_form(scan.definition, initial=data)
    shown = next(c for c in form.layout if not getattr(c, "is_group", False)
                 and c.definition["code"] == "overall_response")
    assert "lesion 2 diameter: not done" in shown.display
    changes = {c.path: c.new for c in crf_history(scan)[0].changes}
    assert changes["target_lesions[1].diameter_mm"] == (
        "Not done (ND): liver not in the field of view")


def test_an_anchor_cannot_be_a_partial_date_and_readers_of_dates_see_none():
    definition = parse_protocol(shipped_text("rectal-resection.yaml"))
    anchor = next(i for i, a in enumerate(definition["anchors"]) if a["code"] == "surgery")
    source = definition["anchors"][anchor]["source"]
    crf = next(c for c in definition["crfs"] if c["code"] == source["crf"])
    next(f for f in crf["fields"] if f["code"] == source["field"])["partial"] = {
        "precision": "month"}
    assert problems_of(definition)[f"anchors[{anchor}].source.field"] == (
        "an anchor plans visits from its day: its source cannot be a partial date")
    assert [as_date(t) for t in ("2019-03", "2019", "2019-03-12")] == [
        None, None, dt.date(2019, 3, 12)]


def test_a_baseline_diameter_not_done_leaves_the_baseline_sum_unknown_with_the_reason():
    fields = [{"code": "sum_of_diameters", "derived": "recist_sum_of_diameters"},
              {"code": "overall_response", "derived": "recist_overall_response"}]
    baseline = {"target_lesions": [
        {"lesion_number": 1, "diameter_mm": "40"},
        {"lesion_number": 2, "diameter_mm": None, MISSING_KEY: {"diameter_mm": {"code": "ND"}}}]}
    values, notes = derive_fields(fields, baseline, {"baseline": None})
    assert values["sum_of_diameters"] is None
    assert notes["sum_of_diameters"] == "lesion 2 diameter: not done"
    later = {"target_lesions": [{"lesion_number": 1, "diameter_mm": "30"},
                                {"lesion_number": 2, "diameter_mm": "10"}],
             "new_lesions": False, "non_target_status": "present"}
    values, notes = derive_fields(fields, later, {"baseline": baseline, "previous": []})
    assert values["overall_response"] == "ne"
    assert notes["overall_response"] == "the baseline sum is unknown: lesion 2 diameter: not done"


def test_group_rows_offer_the_code_in_each_row_and_in_the_row_template(
        participant, baseline, investigator, client, client_for):
    client_for(investigator)
    html = client.get(reverse("visit_crf_edit", args=[
        participant.trial.slug, participant.study_id, baseline.pk, "tumour_assessment"])
    ).content.decode()
    assert 'name="target_lesions-0-diameter_mm__code"' in html
    assert 'name="target_lesions-0-diameter_mm__reason"' in html
    assert 'name="target_lesions-__prefix__-diameter_mm__code"' in html  # rows added by crf.js


def test_a_hidden_answer_loses_its_code_as_it_loses_its_value():
    definition = {"code": "x", "label": "X", "fields": [
        {"code": "smoker", "label": "Smoker", "type": "yesno"},
        {"code": "packs", "label": "Packs", "type": "decimal", "required": True,
         "show_if": "smoker = yes",
         "missing": {"codes": ["UNK"], "reason": "required"}}]}
    data = QueryDict(mutable=True)
    data.update({"smoker": "false", "packs__code": "UNK", "packs__reason": "x" * 600})
    form = build_crf_form(definition, mode="complete", data=data, today=TODAY)
    assert form.is_valid(), form.errors
    assert form_to_data(form) == {"smoker": False, "packs": None}
