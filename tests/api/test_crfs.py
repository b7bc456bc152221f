"""CRF records through the API: judged by the page's own form, errors by answer path, and a
reason for every change once a CRF was completed."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from crfs import services as crfs
from crfs.models import CRFRecord
from demo.data import crf_answers
from trials.models import crf_of


def demographics(trial, **overrides):
    """Complete, valid demographics (the demo's answers), with ``overrides``."""
    crf = crf_of(trial.current_version_id, "demographics")
    return crf_answers(crf, on=timezone.localdate(), **{
        "year_of_birth": 1960, "height_cm": "165", "weight_kg": "61.5", **overrides})


@pytest.fixture
def entry(places, make_user, api):
    """An investigator of the first site, and the URLs of its randomised participant's CRFs."""
    trial, participant = places.trial, places.own.participant
    user = make_user("investigator", trial, places.own.site)
    baseline = participant.visits.get(code="baseline")
    return {"client": api(user), "user": user, "baseline": baseline,
            "list": reverse("api_crfs", args=[trial.slug, participant.study_id]),
            "one": lambda pk: reverse("api_crf", args=[trial.slug, participant.study_id, pk])}


def test_a_crf_is_entered_completed_and_changed_with_a_reason(places, entry):
    data = demographics(places.trial)
    response = entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk, "data": data,
        "complete": True})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "complete" and body["data"]["weight_kg"] == "61.5"
    changed = dict(body["data"], weight_kg="62")
    response = entry["client"].put(entry["one"](body["id"]), {"data": changed,
                                                              "complete": True})
    assert response.status_code == 400
    assert response.json()["reason"] == ["Give the reason for changing a completed CRF."]
    response = entry["client"].put(entry["one"](body["id"]), {
        "data": changed, "complete": True, "reason": "Typo at entry"})
    assert response.status_code == 200 and response.json()["data"]["weight_kg"] == "62.0"
    record = CRFRecord.objects.get(pk=body["id"])
    assert record.history.first().history_change_reason == "Typo at entry"


def test_errors_name_the_answer(places, entry):
    future = (timezone.localdate() + dt.timedelta(days=10)).isoformat()
    response = entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk,
        "data": demographics(places.trial, weight_kg="400", height_cm="abc",
                             sex=True, colour="blue"),
        "complete": False})
    assert response.status_code == 400
    errors = response.json()["data"]
    assert set(errors) == {"sex", "colour"}  # shapes are checked before values
    response = entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk,
        "data": demographics(places.trial, weight_kg="400", height_cm="abc"),
        "complete": False})
    errors = response.json()["data"]
    assert "at most" in errors["weight_kg"][0] and "number" in errors["height_cm"][0]
    response = entry["client"].post(entry["list"], {
        "crf_code": "progression", "data": {"progression_date": future}, "complete": False})
    assert response.status_code == 400
    assert "future" in response.json()["data"]["progression_date"][0]
    assert not CRFRecord.objects.filter(crf_code__in=["demographics", "progression"]).exists()


def test_group_rows_are_named_by_index(places, make_user, api, entry):
    trial, participant = places.trial, places.own.participant
    coordinator = make_user("coordinator", trial, places.own.site)
    response = api(coordinator).post(reverse("api_visits", args=[trial.slug, participant.study_id]),
                                     {"on": timezone.localdate().isoformat(),
                                      "reason": "Patient called", "crfs": ["adverse_events"]})
    assert response.status_code == 201, response.json()
    response = entry["client"].post(entry["list"], {
        "crf_code": "adverse_events", "visit": response.json()["id"],
        "data": {"any_event": True, "events": [{"term": "Nausea"}, {"grade": 9}]},
        "complete": False})
    assert response.status_code == 400
    paths = set(response.json()["data"])
    assert any(p.startswith("events[1].") for p in paths), paths


def test_a_form_already_entered_is_updated_not_entered_twice(places, entry):
    response = entry["client"].post(entry["list"], {
        "crf_code": "eligibility", "data": {}, "complete": False})
    assert response.status_code == 400
    assert f"record {places.own.record.pk}" in response.json()["crf_code"][0]


def test_a_crf_at_a_visit_that_does_not_expect_it_is_refused(places, entry):
    response = entry["client"].post(entry["list"], {
        "crf_code": "death", "visit": entry["baseline"].pk, "data": {}, "complete": False})
    assert response.status_code == 400 and "visit" in response.json()


def test_a_locked_crf_cannot_change(places, entry):
    record = places.own.record
    crfs.close_query(places.own.query, by=places.data_manager)
    crfs.lock_crf(record, by=places.data_manager)
    response = entry["client"].put(entry["one"](record.pk), {
        "data": record.data, "complete": True, "reason": "x"})
    assert response.status_code == 400 and "locked" in response.json()["detail"][0]


def test_a_sponsor_reads_crfs_but_cannot_write(places, make_user, api):
    trial, participant = places.trial, places.other.participant
    client = api(make_user("sponsor", trial))
    url = reverse("api_crfs", args=[trial.slug, participant.study_id])
    assert client.get(url).json()["results"][0]["crf_code"] == "eligibility"
    response = client.put(reverse("api_crf", args=[trial.slug, participant.study_id,
                                                   places.other.record.pk]),
                          {"data": {}, "reason": "x"})
    assert response.status_code == 403


@pytest.mark.parametrize("data", [[], "x", {"screening_date": {"a": 1}},
                                  {"INC1": "yes"}, {"screening_date": "31/02/2024"},
                                  {"screening_date": 20240101}, {"INC1": None}])
def test_no_input_is_a_server_error(places, entry, data):
    response = entry["client"].put(entry["one"](places.own.record.pk), {
        "data": data, "complete": True, "reason": "fuzz"})
    assert response.status_code in (200, 400), response.content


def test_a_failing_hard_edit_check_is_refused_next_to_the_answer(places, entry):
    """REMINET's baseline duration of first-line treatment must agree with the eligibility
    form's (a check across forms): refused by answer path, nothing written."""
    eligibility = CRFRecord.objects.get(participant=places.own.participant,
                                        crf_code="eligibility")
    months = eligibility.data["l1_duration_months"]
    response = entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk, "complete": True,
        "data": demographics(places.trial, l1_duration_months=str(float(months) + 1))})
    assert response.status_code == 400, response.json()
    assert "differs from the one on the eligibility form" in \
        response.json()["data"]["l1_duration_months"][0]
    assert not CRFRecord.objects.filter(crf_code="demographics",
                                        participant=places.own.participant).exists()
    response = entry["client"].post(entry["list"], {
        "crf_code": "demographics", "visit": entry["baseline"].pk, "complete": True,
        "data": demographics(places.trial, l1_duration_months=months)})
    assert response.status_code == 201, response.json()
