"""Participants through the API: the same isolation and the same rules as the pages."""
from __future__ import annotations

import datetime as dt

from django.urls import reverse
from django.utils import timezone

from patients.models import Participant


def url(name, **kwargs):
    return reverse(name, kwargs=kwargs)


def test_a_site_user_lists_only_their_sites_participants(places, make_user, api):
    user = make_user("investigator", places.trial, places.own.site)
    response = api(user).get(url("api_participants", slug=places.trial.slug))
    assert response.status_code == 200
    ids = {row["study_id"] for row in response.json()["results"]}
    assert ids == {places.own.participant.study_id, places.own.screened.study_id}


def test_another_sites_participant_is_404_not_403(places, make_user, api):
    user = make_user("investigator", places.trial, places.own.site)
    for name in ("api_participant", "api_eligibility", "api_allocation", "api_visits",
                 "api_crfs"):
        response = api(user).get(url(name, slug=places.trial.slug,
                                      study_id=places.other.participant.study_id))
        assert response.status_code == 404, name
        assert response["Content-Type"] == "application/json"


def test_lists_filter_by_status_and_site_and_refuse_bad_filters(places, make_user, api):
    user = make_user("data_manager", places.trial)
    client = api(user)
    rows = client.get(url("api_participants", slug=places.trial.slug),
                      {"status": "screened", "site": places.other.site.code}).json()["results"]
    assert [r["study_id"] for r in rows] == [places.other.screened.study_id]
    response = client.get(url("api_participants", slug=places.trial.slug), {"status": "asleep"})
    assert response.status_code == 400 and "status" in response.json()


def test_lists_come_in_pages(places, make_user, api):
    user = make_user("data_manager", places.trial)
    body = api(user).get(url("api_participants", slug=places.trial.slug),
                         {"page_size": 3}).json()
    assert body["count"] == 4 and len(body["results"]) == 3 and body["next"]
    response = api(user).get(url("api_participants", slug=places.trial.slug), {"page": 99})
    assert response.status_code == 404


def test_the_coordinator_registers_and_records_consent(places, make_user, api):
    user = make_user("coordinator", places.trial, places.own.site)
    client = api(user)
    response = client.post(url("api_participants", slug=places.trial.slug),
                           {"site": places.own.site.code})
    assert response.status_code == 201, response.json()
    study_id = response.json()["study_id"]
    assert response.json()["status"] == "screened"
    consent = url("api_consent", slug=places.trial.slug, study_id=study_id)
    future = (timezone.localdate() + dt.timedelta(days=3)).isoformat()
    response = client.post(consent, {"consent_date": future, "consent_version": "1.0"})
    assert response.status_code == 400
    assert "future" in response.json()["consent_date"][0]
    response = client.post(consent, {"consent_date": timezone.localdate().isoformat(),
                                     "consent_version": "1.0"})
    assert response.status_code == 200 and response.json()["consent_version"] == "1.0"


def test_nobody_screens_at_another_site(places, make_user, api):
    user = make_user("coordinator", places.trial, places.own.site)
    before = Participant.objects.count()
    response = api(user).post(url("api_participants", slug=places.trial.slug),
                              {"site": places.other.site.code})
    assert response.status_code == 400 and "site" in response.json()
    assert Participant.objects.count() == before


def test_an_investigator_may_read_but_not_screen(places, make_user, api):
    user = make_user("investigator", places.trial, places.own.site)
    response = api(user).post(url("api_participants", slug=places.trial.slug),
                              {"site": places.own.site.code})
    assert response.status_code == 403


def test_eligibility_is_read_from_the_eligibility_crf(places, make_user, api):
    user = make_user("investigator", places.trial, places.own.site)
    body = api(user).get(url("api_eligibility", slug=places.trial.slug,
                             study_id=places.own.participant.study_id)).json()
    assert body["eligible"] is True and body["unanswered"] == []
    body = api(user).get(url("api_eligibility", slug=places.trial.slug,
                             study_id=places.own.screened.study_id)).json()
    assert body["complete"] is False and body["unanswered"]


def test_odd_characters_in_the_url_are_a_404_not_a_500(places, make_user, api):
    user = make_user("data_manager", places.trial)
    for study_id in ("%00", "a%00b", "%C3%A9%F0%9F%98%80", "x" * 300):
        response = api(user).get(f"/api/v1/trials/{places.trial.slug}/participants/{study_id}/")
        assert response.status_code == 404, study_id
        assert response["Content-Type"] == "application/json"
