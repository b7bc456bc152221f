"""Randomisation through the API: the same service, and the blind kept in every answer."""
from __future__ import annotations

from django.urls import reverse

from tests import factories
from tests.randomisation.test_blinding import assert_no_arm


def test_a_blinded_coordinator_randomises_and_gets_the_kit_never_the_arm(places, make_user,
                                                                       api):
    trial = places.trial
    user = make_user("coordinator", trial, places.own.site)
    participant = factories.eligible_participant(trial, places.own.site, by=user)
    response = api(user).post(reverse("api_randomise", args=[trial.slug, participant.study_id]))
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["arm"] is None and body["kit_code"]
    assert_no_arm(trial, response.content.decode(), "randomise answer")
    again = api(user).get(reverse("api_allocation", args=[trial.slug, participant.study_id]))
    assert again.json()["kit_code"] == body["kit_code"] and again.json()["arm"] is None


def test_the_statistician_sees_the_arm(places, make_user, api):
    trial = places.trial
    user = make_user("statistician", trial)
    body = api(user).get(reverse("api_allocation", args=[
        trial.slug, places.own.participant.study_id])).json()
    assert body["arm"]["code"] == places.own.participant.allocation.arm.code
    trial_body = api(user).get(reverse("api_trial", args=[trial.slug])).json()
    assert {a["code"] for a in trial_body["arms"]} == set(trial.arms.values_list("code", flat=True))


def test_a_participant_not_eligible_is_refused_with_the_reason(places, make_user, api):
    trial = places.trial
    user = make_user("coordinator", trial, places.own.site)
    response = api(user).post(reverse("api_randomise", args=[
        trial.slug, places.own.screened.study_id]))
    assert response.status_code == 400
    assert "informed consent" in response.json()["detail"][0]
    response = api(user).post(reverse("api_randomise", args=[
        trial.slug, places.own.participant.study_id]))
    assert response.status_code == 400 and "already randomised" in response.json()["detail"][0]


def test_strata_that_changed_since_confirmation_allocate_nothing(places, make_user, api):
    trial = places.trial
    user = make_user("coordinator", trial, places.own.site)
    participant = factories.eligible_participant(trial, places.own.site, by=user)
    response = api(user).post(reverse("api_randomise", args=[trial.slug, participant.study_id]),
                              {"strata": {"nonsense": "x"}})
    assert response.status_code == 400
    assert api(user).get(reverse("api_allocation", args=[
        trial.slug, participant.study_id])).status_code == 404


def test_randomising_waits_for_the_investigators_confirmation(places, make_user, api):
    """The API refuses as the page does; the confirmation itself is given on the page (the
    API has no signing endpoint), and the eligibility answer says where it stands."""
    from crfs.services import confirm_eligibility
    from tests.conftest import PASSWORD

    trial, site = places.trial, places.own.site
    coordinator = make_user("coordinator", trial, site)
    investigator = make_user("investigator", trial, site, first_name="Irène", last_name="Curie")
    p = factories.eligible_participant(trial, site, by=coordinator, confirmed=False)
    eligibility_url = reverse("api_eligibility", args=[trial.slug, p.study_id])
    body = api(coordinator).get(eligibility_url).json()
    assert body["confirmation_required"] is True and body["confirmed"] is False
    assert body["state"] == "awaiting_confirmation" and body["confirmed_by"] is None
    response = api(coordinator).post(reverse("api_randomise", args=[trial.slug, p.study_id]))
    assert response.status_code == 400
    assert "awaiting an investigator's confirmation" in response.json()["detail"][0]
    confirm_eligibility(p, by=investigator, password=PASSWORD)
    body = api(coordinator).get(eligibility_url).json()
    assert body["confirmed"] is True and body["confirmed_by"] == "Irène Curie"
    assert body["state"] == "ready" and body["confirmed_at"]
    response = api(coordinator).post(reverse("api_randomise", args=[trial.slug, p.study_id]))
    assert response.status_code == 201, response.json()
