"""Every free text the API takes has its limit (``core.limits``): over it, a 400 naming the
field with the one message ("The query text is 20,000 characters; at most 2,000 are
allowed."), and nothing written."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from crfs.models import DataQuery, MonitoringVisit, QueryMessage
from patients.models import ScreeningLogEntry, Visit

LONG = "x" * 20_000


def test_a_query_of_20000_characters_is_refused_and_not_raised(places, make_user, api):
    trial, own = places.trial, places.own
    before = DataQuery.objects.count()
    response = api(make_user("data_manager", trial)).post(reverse("api_record_queries", args=[
        trial.slug, own.participant.study_id, own.record.pk]), {"field_path": "INC1",
                                                                 "text": LONG})
    assert response.status_code == 400
    assert response.json()["text"] == [
        "The query text is 20,000 characters; at most 2,000 are allowed."]
    assert DataQuery.objects.count() == before


def test_an_answer_over_the_limit_is_refused_and_the_query_stays_open(places, make_user, api):
    trial, own = places.trial, places.own
    before = QueryMessage.objects.count()
    response = api(make_user("investigator", trial, own.site)).post(
        reverse("api_query_answer", args=[trial.slug, own.query.pk]), {"text": "y" * 2_001})
    assert response.status_code == 400
    assert response.json()["text"] == [
        "The query text is 2,001 characters; at most 2,000 are allowed."]
    own.query.refresh_from_db()
    assert own.query.status == "open" and QueryMessage.objects.count() == before


def test_a_text_at_the_limit_is_accepted(places, make_user, api):
    trial, own = places.trial, places.own
    response = api(make_user("investigator", trial, own.site)).post(
        reverse("api_query_answer", args=[trial.slug, own.query.pk]), {"text": "y" * 2_000})
    assert response.status_code == 200, response.json()


def test_a_visit_reason_over_the_limit_is_refused(places, make_user, api):
    trial, participant, visit = places.trial, places.own.participant, places.own.visit
    response = api(make_user("coordinator", trial, places.own.site)).post(
        reverse("api_visit", args=[trial.slug, participant.study_id, visit.pk]),
        {"action": "missed", "reason": LONG})
    assert response.status_code == 400
    assert response.json()["reason"] == [
        "The reason is 20,000 characters; at most 1,000 are allowed."]
    assert Visit.objects.get(pk=visit.pk).status == visit.status


def test_a_crf_change_reason_over_the_limit_is_refused(places, make_user, api):
    trial, own = places.trial, places.own
    versions = own.record.history.count()
    response = api(make_user("investigator", trial, own.site)).put(
        reverse("api_crf", args=[trial.slug, own.participant.study_id, own.record.pk]),
        {"data": own.record.data, "complete": True, "reason": LONG})
    assert response.status_code == 400
    assert response.json()["reason"] == [
        "The reason is 20,000 characters; at most 1,000 are allowed."]
    assert own.record.history.count() == versions


def test_a_screening_log_note_over_the_limit_is_refused(places, make_user, api):
    trial, site = places.trial, places.own.site
    reason = trial.definition["screening"]["non_inclusion_reasons"][0]["code"]
    response = api(make_user("coordinator", trial, site)).post(
        reverse("api_screening_log", args=[trial.slug]),
        {"site": site.code, "reason": reason, "note": "n" * 501})
    assert response.status_code == 400
    assert response.json()["note"] == ["The note is 501 characters; at most 500 are allowed."]
    assert not ScreeningLogEntry.objects.exists()


def test_monitoring_findings_over_the_limit_are_refused(places, make_user, api):
    trial, own = places.trial, places.own
    response = api(make_user("monitor", trial, own.site)).post(
        reverse("api_monitoring_visits", args=[trial.slug]),
        {"site": own.site.code, "visited_on": timezone.localdate().isoformat(),
         "findings": "f" * 10_001})
    assert response.status_code == 400
    assert response.json()["findings"] == [
        "The findings text is 10,001 characters; at most 10,000 are allowed."]
    assert not MonitoringVisit.objects.exists()
