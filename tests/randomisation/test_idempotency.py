"""A randomisation request carries a key; a retry with it answers the allocation already made.

The page's form carries a fresh key (shown with the strata); the API takes an
``Idempotency-Key`` header or a ``key`` field. The key is stored with the allocation, unique in
the trial. A retry by the same user answers the same allocation (with its kit), nothing new is
written; another user's key, or the key of another participant, is refused with a clear
message. (The connection lost during COMMIT: ``tests/randomisation/test_commit_faults.py``.)
"""
from __future__ import annotations

import re

import pytest
from django.urls import reverse

from core.models import AuditEvent
from randomisation import services
from randomisation.models import Allocation
from tests import factories

STRATA = {"stratum_grade": "G2", "stratum_l1_response": "stable_disease"}


def _participant(trial, coordinator):
    return factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                          l1_response="stable_disease")


def test_a_retry_with_the_same_key_answers_the_allocation_already_made(reminet_ready):
    trial, coordinator = reminet_ready
    p = _participant(trial, coordinator)
    first = services.randomise(p, by=coordinator, key="k-1")
    assert first.replayed is False and first.idempotency_key == "k-1"
    again = services.randomise(p, by=coordinator, key="k-1")
    assert again.replayed is True
    assert again.pk == first.pk and again.kit_code == first.kit_code
    assert Allocation.objects.count() == 1
    assert AuditEvent.objects.filter(action="participant.randomised").count() == 1


def test_another_users_key_is_refused(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    other = make_user("coordinator", trial, coordinator.memberships.get().site)
    p = _participant(trial, coordinator)
    services.randomise(p, by=coordinator, key="k-2")
    with pytest.raises(services.RandomisationError) as info:
        services.randomise(p, by=other, key="k-2")
    assert info.value.code == "key_other_user"
    assert "another user" in info.value.messages[0]


def test_the_same_key_for_another_participant_is_refused_and_allocates_nothing(reminet_ready):
    trial, coordinator = reminet_ready
    p, q = _participant(trial, coordinator), _participant(trial, coordinator)
    services.randomise(p, by=coordinator, key="k-3")
    with pytest.raises(services.RandomisationError) as info:
        services.randomise(q, by=coordinator, key="k-3")
    assert info.value.code == "key_other_participant"
    assert "another participant" in info.value.messages[0]
    assert not Allocation.objects.filter(participant=q).exists()


def test_without_a_key_a_second_randomisation_is_refused_as_before(reminet_ready):
    trial, coordinator = reminet_ready
    p = _participant(trial, coordinator)
    services.randomise(p, by=coordinator, key="k-4")
    with pytest.raises(services.RandomisationError) as info:
        services.randomise(p, by=coordinator)
    assert info.value.code == "already_randomised"
    with pytest.raises(services.RandomisationError) as info:
        services.randomise(p, by=coordinator, key="a-new-key")
    assert info.value.code == "already_randomised"


@pytest.mark.parametrize("key", ["x" * 65, "with space", "é"])
def test_a_malformed_key_is_refused_naming_the_field(reminet_ready, key):
    trial, coordinator = reminet_ready
    p = _participant(trial, coordinator)
    with pytest.raises(services.RandomisationError) as info:
        services.randomise(p, by=coordinator, key=key)
    assert "key" in info.value.message_dict
    assert not Allocation.objects.exists()


def test_the_form_carries_a_fresh_key_and_a_resubmission_shows_the_same_allocation(
        reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = _participant(trial, coordinator)
    client_for(coordinator)
    url = reverse("randomise", args=[trial.slug, p.study_id])
    page = client.get(url).content.decode()
    key = re.search(r'name="key" value="([0-9a-f]{32})"', page).group(1)
    assert key not in client.get(url).content.decode()  # each page its own key
    first = client.post(url, {**STRATA, "key": key})
    assert first.status_code == 302
    allocation = Allocation.objects.get()
    assert allocation.idempotency_key == key
    again = client.post(url, {**STRATA, "key": key})  # the browser's retry
    assert again.status_code == 302 and again.url == first.url
    detail = client.get(again.url).content.decode()
    assert allocation.kit_code in detail
    assert Allocation.objects.count() == 1


def test_the_form_refuses_another_users_key_with_409(reminet_ready, client, client_for,
                                                     make_user):
    trial, coordinator = reminet_ready
    other = make_user("coordinator", trial, coordinator.memberships.get().site)
    p = _participant(trial, coordinator)
    services.randomise(p, by=coordinator, key="k-5")
    client_for(other)
    response = client.post(reverse("randomise", args=[trial.slug, p.study_id]),
                           {**STRATA, "key": "k-5"})
    assert response.status_code == 409
    assert "another user" in response.content.decode()


def test_the_api_takes_the_key_as_a_header_or_a_field(reminet_ready, client, client_for,
                                                      make_user):
    trial, coordinator = reminet_ready
    p, q = _participant(trial, coordinator), _participant(trial, coordinator)
    client_for(coordinator)
    url = reverse("api_randomise", args=[trial.slug, p.study_id])
    first = client.post(url, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert first.status_code == 201, first.json()
    again = client.post(url, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true" and first.json()["kit_code"]
    by_field = client.post(url, {"key": "api-1"}, content_type="application/json")
    assert by_field.json() == first.json()
    other = client.post(reverse("api_randomise", args=[trial.slug, q.study_id]), {},
                        content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert other.status_code == 409 and "another participant" in other.json()["key"][0]
    differ = client.post(url, {"key": "api-2"}, content_type="application/json",
                         HTTP_IDEMPOTENCY_KEY="api-1")
    assert differ.status_code == 400 and "differ" in differ.json()["key"][0]
    bad = client.post(reverse("api_randomise", args=[trial.slug, q.study_id]), {},
                      content_type="application/json", HTTP_IDEMPOTENCY_KEY="a b")
    assert bad.status_code == 400 and "key" in bad.json()
    client.logout()
    client_for(make_user("coordinator", trial, coordinator.memberships.get().site))
    stolen = client.post(url, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY="api-1")
    assert stolen.status_code == 409 and "another user" in stolen.json()["key"][0]
    assert Allocation.objects.count() == 1
