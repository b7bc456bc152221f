"""The API's CRF input takes missing-data codes (``_missing`` beside the answers, per record and
per group row) and partial dates (ISO text), and refuses what the page refuses, by path.
REMINET's demographics: Ki-67 may be ND or UNK with a reason, the diagnosis date partial or
UNK."""
from __future__ import annotations

from crfs.missing_data import MISSING_KEY
from crfs.models import CRFRecord

from .test_crfs import demographics, entry  # noqa: F401  (fixture)


def post(places, entry, data, complete=True):
    return entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk, "data": data,
        "complete": complete})


def test_a_code_and_a_partial_date_are_entered_through_the_api(places, entry):
    data = demographics(places.trial, ki67_percent=None, diagnosis_date="2019-03")
    data[MISSING_KEY] = {"ki67_percent": {"code": "UNK", "reason": "biopsy sent elsewhere"}}
    response = post(places, entry, data)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "complete"
    assert body["data"]["diagnosis_date"] == "2019-03"
    assert body["data"][MISSING_KEY] == {
        "ki67_percent": {"code": "UNK", "reason": "biopsy sent elsewhere"}}
    assert body["data"]["ki67_percent"] is None


def test_bad_codes_and_partial_dates_are_refused_by_path_and_nothing_written(places, entry):
    data = demographics(places.trial, ki67_percent="5", diagnosis_date="2019-13")
    data[MISSING_KEY] = {"ki67_percent": {"code": "UNK", "reason": "x"}}
    response = post(places, entry, data)
    assert response.status_code == 400
    assert response.json()["data"] == {
        "ki67_percent": ["Give either a value or a missing-data code, not both."],
        "diagnosis_date": ["Choose a month from the list."]}
    data = demographics(places.trial, ki67_percent=None)
    data[MISSING_KEY] = {"ki67_percent": {"code": "NA", "reason": "x"}}
    assert post(places, entry, data).json()["data"] == {
        "ki67_percent": ["“NA” is not a missing-data code this answer allows (ND, UNK)."]}
    data = demographics(places.trial)
    data[MISSING_KEY] = {"weight_kg": {"code": "UNK"}, "colour": {"code": "UNK"},
                         "ki67_percent": "UNK"}
    errors = post(places, entry, data).json()["data"]
    assert errors["weight_kg"] == ["This answer allows no missing-data code."]
    assert errors["colour"] == ["This CRF has no such field."]
    assert "Expected" in errors["ki67_percent"][0]
    data = demographics(places.trial, ki67_percent=None)
    data[MISSING_KEY] = {"ki67_percent": {"code": "ND"}}
    errors = post(places, entry, data).json()["data"]
    assert errors == {"ki67_percent": ["Give the reason for “Not done”."]}
    assert not CRFRecord.objects.filter(crf_code="demographics").exists()
