"""Consent history, re-consent and withdrawal levels through the API (issue 17, items 4-5):
the same rules and messages as the pages."""
from __future__ import annotations

import copy
import datetime as dt

from django.urls import reverse
from django.utils import timezone

from demo.data import demo_amendment
from patients.models import Participant, Withdrawal
from trials.services import store_protocol


def url(name, **kwargs):
    return reverse(name, kwargs=kwargs)


def test_the_consent_history_and_a_reconsent_after_an_amendment(places, make_user, api):
    trial, p = places.trial, places.own.participant
    client = api(make_user("coordinator", trial, places.own.site))
    consent = url("api_consent", slug=trial.slug, study_id=p.study_id)
    body = client.get(consent).json()
    assert body["reconsent_to"] is None
    assert [(r["kind"], r["version"]) for r in body["records"]] == [("first", "1.0")]

    store_protocol(demo_amendment(copy.deepcopy(trial.current_version.definition)),
                   source_file="test")
    trial.refresh_from_db()
    assert client.get(consent).json()["reconsent_to"] == "2.0"
    worklist = client.get(url("api_reconsent", slug=trial.slug)).json()["results"]
    assert [row["study_id"] for row in worklist] == [p.study_id]  # own site only

    today = timezone.localdate().isoformat()
    response = client.post(consent, {"consent_date": today, "consent_version": "1.0"})
    assert response.status_code == 400 and "not newer" in response.json()["consent_version"][0]
    response = client.post(consent, {"consent_date": today, "consent_version": "2.0",
                                     "answers": {"genome_sequencing": True}})
    assert response.status_code == 400 and "genome_sequencing" in response.json()["answers"][0]
    response = client.post(consent, {"consent_date": today, "consent_version": "2.0",
                                     "answers": {"qol_contact": True}})
    assert response.status_code == 200, response.json()
    body = client.get(consent).json()
    assert body["reconsent_to"] is None
    assert body["protocol_version"] == body["current_protocol_version"]
    assert body["records"][-1]["answers"] == {"qol_contact": True}
    assert Participant.objects.get(pk=p.pk).protocol_version_id == trial.current_version_id


def test_a_withdrawal_is_recorded_and_its_errors_named(places, make_user, api):
    trial, p = places.trial, places.own.participant
    client = api(make_user("coordinator", trial, places.own.site))
    withdrawals = url("api_withdrawals", slug=trial.slug, study_id=p.study_id)
    before_consent = (p.consent_date - dt.timedelta(days=1)).isoformat()
    response = client.post(withdrawals, {"level": "consent", "withdrawn_on": before_consent,
                                         "reason": "x"})
    assert response.status_code == 400
    assert "before the consent" in response.json()["withdrawn_on"][0]
    response = client.post(withdrawals, {"level": "sometimes", "withdrawn_on": before_consent,
                                         "reason": "x"})
    assert response.status_code == 400 and "level" in response.json()
    assert not Withdrawal.objects.exists()
    response = client.post(withdrawals, {"level": "visits", "reason": "moved away",
                                         "withdrawn_on": timezone.localdate().isoformat()})
    assert response.status_code == 201, response.json()
    assert [w["level"] for w in client.get(withdrawals).json()] == ["visits"]
    # Another site's participant: not found.
    other = url("api_withdrawals", slug=trial.slug, study_id=places.other.participant.study_id)
    assert client.post(other, {"level": "visits", "reason": "x",
                               "withdrawn_on": timezone.localdate().isoformat()}
                       ).status_code == 404
