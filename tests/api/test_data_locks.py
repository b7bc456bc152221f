"""The API's writes refused while the data are frozen or locked: a 400 whose ``detail`` names
the level and the state, nothing written."""
from __future__ import annotations

from django.urls import reverse

from crfs.models import CRFRecord
from tests.conftest import PASSWORD
from trials import locks


def test_a_crf_input_at_a_frozen_site_is_a_400_saying_so(places, make_user, api):
    trial, record = places.trial, places.own.record
    investigator = make_user("investigator", trial, places.own.site)
    locks.step_site(places.own.site, "freeze", by=places.data_manager, reason="Site closing.",
                    password=PASSWORD)
    before = CRFRecord.history.filter(id=record.pk).count()
    url = reverse("api_crf", args=[trial.slug, places.own.participant.study_id, record.pk])
    response = api(investigator).put(url, {"data": record.data, "complete": True,
                                           "reason": "Corrected."})
    assert response.status_code == 400
    assert f"Site {places.own.site.code} is frozen" in response.json()["detail"][0]
    assert CRFRecord.history.filter(id=record.pk).count() == before


def test_randomising_in_a_locked_trial_is_a_400(places, make_user, api):
    trial = places.trial
    for step in ("freeze", "lock"):
        locks.step_trial(trial, step, by=places.data_manager, reason="End.", password=PASSWORD)
    screened = places.own.screened
    url = reverse("api_randomise", args=[trial.slug, screened.study_id])
    response = api(places.staff).post(url, {})
    assert response.status_code == 400
    assert "The trial is locked" in response.json()["detail"][0]
    assert not type(screened).objects.get(pk=screened.pk).is_randomised
