"""Source data verification and monitoring visits over the API: the monitor verifies a record
(whole or some answers), everyone who reads the participant lists its marks, monitoring visits
are recorded and listed, the report PDF downloaded; other sites are 404; bad input says which
field."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from crfs.models import MonitoringVisit, SourceVerification


@pytest.fixture
def monitor(places, make_user):
    return make_user("monitor", places.trial, places.own.site)


def _marks_url(place) -> str:
    return reverse("api_record_verifications", args=[place.trial.slug,
                                                     place.participant.study_id,
                                                     place.record.pk])


def test_the_monitor_verifies_and_everyone_reads_the_marks(places, monitor, make_user, api):
    own = places.own
    response = api(monitor).post(_marks_url(own), {"paths": ["screening_date"]})
    assert response.status_code == 201, response.content
    assert [(m["field_path"], m["in_force"]) for m in response.json()] == [
        ("screening_date", True)]
    response = api(monitor).post(_marks_url(own), {})
    assert [m["field_path"] for m in response.json()] == ["screening_date", ""]
    coordinator = make_user("coordinator", places.trial, own.site)
    body = api(coordinator).get(_marks_url(own)).json()
    assert [m["verified_by"] for m in body] == [monitor.username] * 2
    # The coordinator does not verify.
    assert api(coordinator).post(_marks_url(own), {}).status_code == 403


def test_bad_paths_and_other_sites(places, monitor, api):
    response = api(monitor).post(_marks_url(places.own), {"paths": ["nope"]})
    assert response.status_code == 400 and "paths" in response.json()
    assert api(monitor).post(_marks_url(places.own), {"paths": "x"}).status_code == 400
    assert api(monitor).post(_marks_url(places.other), {}).status_code == 404
    assert api(monitor).get(_marks_url(places.other)).status_code == 404
    assert not SourceVerification.objects.exists()


def _visits_url(trial) -> str:
    return reverse("api_monitoring_visits", args=[trial.slug])


def test_monitoring_visits_are_recorded_and_listed_site_by_site(places, monitor, make_user,
                                                                api):
    trial, own, other = places.trial, places.own, places.other
    today = timezone.localdate()
    response = api(monitor).post(_visits_url(trial), {
        "site": own.site.code, "visited_on": today.isoformat(), "findings": "All good."})
    assert response.status_code == 201, response.content
    assert response.json()["site"] == own.site.code
    other_monitor = make_user("monitor", trial, other.site)
    api(other_monitor).post(_visits_url(trial), {
        "site": other.site.code, "visited_on": today.isoformat(), "findings": "Other."})
    assert [v["findings"] for v in api(monitor).get(_visits_url(trial)).json()["results"]] == [
        "All good."]
    assert len(api(places.data_manager).get(_visits_url(trial)).json()["results"]) == 2
    # Another site's code: 404; the data manager records none (403).
    assert api(monitor).post(_visits_url(trial), {
        "site": other.site.code, "visited_on": today.isoformat(),
        "findings": "x"}).status_code == 404
    assert api(places.data_manager).post(_visits_url(trial), {
        "site": own.site.code, "visited_on": today.isoformat(),
        "findings": "x"}).status_code == 403
    assert MonitoringVisit.objects.count() == 2


@pytest.mark.parametrize("body, field", [
    ({"visited_on": "2026-01-01", "findings": "x"}, "site"),
    ({"site": "OWN", "visited_on": "soon", "findings": "x"}, "visited_on"),
    ({"site": "OWN", "visited_on": "2999-01-01", "findings": "x"}, "visited_on"),
    ({"site": "OWN", "visited_on": "2026-01-01", "findings": " "}, "findings"),
])
def test_a_bad_visit_names_the_field(places, monitor, api, body, field):
    body = {k: places.own.site.code if v == "OWN" else v for k, v in body.items()}
    response = api(monitor).post(_visits_url(places.trial), body)
    assert response.status_code == 400 and field in response.json(), response.content
    assert not MonitoringVisit.objects.exists()


def test_the_report_pdf_and_its_bad_dates(places, monitor, api):
    trial, own = places.trial, places.own
    url = reverse("api_monitoring_report", args=[trial.slug])
    today = timezone.localdate()
    week = (today - dt.timedelta(days=7)).isoformat()
    response = api(monitor).get(url, {"site": own.site.code, "start": week,
                                      "end": today.isoformat()})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    bad = api(monitor).get(url, {"site": own.site.code, "start": today.isoformat(),
                                 "end": week})
    assert bad.status_code == 400 and "end" in bad.json()
    assert api(monitor).get(url, {"site": own.site.code, "start": "x", "end": week}
                            ).status_code == 400
    assert api(monitor).get(url, {"site": places.other.site.code, "start": week,
                                  "end": today.isoformat()}).status_code == 404
