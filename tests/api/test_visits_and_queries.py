"""Visits and data queries through the API."""
from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from crfs.models import QueryStatus


def test_the_worklist_filters_by_state_site_and_due_dates(places, make_user, api):
    trial = places.trial
    client = api(make_user("data_manager", trial))
    url = reverse("api_trial_visits", args=[trial.slug])
    everything = client.get(url, {"page_size": 200}).json()
    assert everything["count"] == places.own.participant.visits.count() * 2
    today = timezone.localdate()
    overdue = client.get(url, {"state": "overdue", "site": places.own.site.code}).json()
    assert overdue["results"], "30 days after randomisation, a visit is overdue"
    for row in overdue["results"]:
        assert row["state"] == "overdue" and row["site"] == places.own.site.code
        assert dt.date.fromisoformat(row["window_closes"]) < today
    soon = client.get(url, {"due_after": today.isoformat(),
                            "due_before": (today + dt.timedelta(days=40)).isoformat()}).json()
    for row in soon["results"]:
        assert today <= dt.date.fromisoformat(row["window_closes"]) <= today + dt.timedelta(40)
    bad = client.get(url, {"due_after": "tomorrow"})
    assert bad.status_code == 400 and "due_after" in bad.json()


def test_the_coordinator_records_a_visit_and_a_future_date_is_refused(places, make_user, api):
    trial, participant, visit = places.trial, places.own.participant, places.own.visit
    client = api(make_user("coordinator", trial, places.own.site))
    url = reverse("api_visit", args=[trial.slug, participant.study_id, visit.pk])
    future = (timezone.localdate() + dt.timedelta(days=2)).isoformat()
    response = client.post(url, {"action": "done", "done_on": future})
    assert response.status_code == 400 and "done_on" in response.json()
    response = client.post(url, {"action": "done"})
    assert response.status_code == 400 and "done_on" in response.json()
    response = client.post(url, {"action": "done",
                                 "done_on": timezone.localdate().isoformat()})
    assert response.status_code == 200 and response.json()["status"] == "done"


def test_an_investigator_cannot_change_visits(places, make_user, api):
    trial, participant, visit = places.trial, places.own.participant, places.own.visit
    client = api(make_user("investigator", trial, places.own.site))
    response = client.post(reverse("api_visit", args=[trial.slug, participant.study_id,
                                                      visit.pk]), {"action": "missed",
                                                                   "reason": "x"})
    assert response.status_code == 403


def test_a_query_is_raised_answered_and_closed(places, make_user, api):
    trial, own = places.trial, places.own
    data_manager = api(make_user("data_manager", trial))
    investigator = api(make_user("investigator", trial, own.site))
    raised = data_manager.post(reverse("api_record_queries", args=[
        trial.slug, own.participant.study_id, own.record.pk]),
        {"field_path": "INC1", "text": "Source document?"})
    assert raised.status_code == 201, raised.json()
    query = raised.json()
    assert query["status"] == "open" and query["messages"][0]["text"] == "Source document?"
    answer = reverse("api_query_answer", args=[trial.slug, query["id"]])
    assert investigator.post(answer, {"text": ""}).status_code == 400
    response = investigator.post(answer, {"text": "Checked: correct."})
    assert response.status_code == 200 and response.json()["status"] == "answered"
    assert investigator.post(reverse("api_query_close", args=[trial.slug, query["id"]]),
                             {}).status_code == 403
    closed = data_manager.post(reverse("api_query_close", args=[trial.slug, query["id"]]), {})
    assert closed.json()["status"] == QueryStatus.CLOSED
    assert [m["kind"] for m in closed.json()["messages"]] == ["raised", "answered", "closed"]


def test_a_query_on_a_field_the_crf_lacks_is_refused_by_name(places, make_user, api):
    trial, own = places.trial, places.own
    response = api(make_user("data_manager", trial)).post(reverse("api_record_queries", args=[
        trial.slug, own.participant.study_id, own.record.pk]),
        {"field_path": "nope", "text": "?"})
    assert response.status_code == 400 and "field_path" in response.json()


def test_an_answer_may_correct_the_value(places, make_user, api):
    trial, own = places.trial, places.own
    investigator = api(make_user("investigator", trial, own.site))
    corrected = dict(own.record.data, screening_date=(timezone.localdate()
                                                      - dt.timedelta(days=40)).isoformat())
    response = investigator.post(reverse("api_query_answer", args=[trial.slug, own.query.pk]),
                                 {"text": "Date corrected from the source.",
                                  "correction": corrected})
    assert response.status_code == 200, response.json()
    assert response.json()["messages"][-1]["kind"] == "corrected"
    own.record.refresh_from_db()
    assert own.record.data["screening_date"] == corrected["screening_date"]


def test_another_sites_queries_are_invisible(places, make_user, api):
    trial = places.trial
    client = api(make_user("investigator", trial, places.own.site))
    rows = client.get(reverse("api_queries", args=[trial.slug])).json()["results"]
    assert [r["id"] for r in rows] == [places.own.query.pk]
    for name in ("api_query", "api_query_answer"):
        response = (client.get if name == "api_query" else client.post)(
            reverse(name, args=[trial.slug, places.other.query.pk]))
        assert response.status_code == 404, name
