"""The freeze and lock pages: the data manager's form at each level, the state shown to every
member on the trial's and the participant's pages."""
from __future__ import annotations

from django.urls import reverse

from patients.models import Participant
from tests.conftest import PASSWORD
from trials.models import DataState, Site, Trial


def test_the_data_manager_freezes_a_casebook_and_everyone_sees_it(
        participant, data_manager, coordinator, client_for):
    url = reverse("casebook_data_lock", args=[participant.trial.slug, participant.study_id])
    detail = reverse("participant_detail", args=[participant.trial.slug, participant.study_id])
    assert url in client_for(data_manager).get(detail).content.decode()
    assert url not in client_for(coordinator).get(detail).content.decode()
    assert client_for(coordinator).get(url).status_code == 403

    page = client_for(data_manager).get(url)
    assert page.status_code == 200 and "Freeze" in page.content.decode()
    wrong = client_for(data_manager).post(url, {"step": "freeze", "reason": "Review done.",
                                                "password": "wrong"})
    assert wrong.status_code == 400 and "The password is not correct." in wrong.content.decode()
    assert Participant.objects.get(pk=participant.pk).data_state == DataState.OPEN
    done = client_for(data_manager).post(url, {"step": "freeze", "reason": "Review done.",
                                               "password": PASSWORD})
    assert done.status_code == 302 and done.url == detail
    assert Participant.objects.get(pk=participant.pk).data_state == DataState.FROZEN

    shown = client_for(coordinator).get(detail).content.decode()
    assert "This casebook: frozen on" in shown and data_manager.username in shown
    # A step that does not follow from the state is not offered, and refused if sent.
    refused = client_for(data_manager).post(url, {"step": "freeze", "reason": "x",
                                                  "password": PASSWORD})
    assert refused.status_code == 400


def test_a_site_and_the_trial_are_frozen_and_locked_from_the_trial_page(
        participant, data_manager, coordinator, client_for, sites):
    trial = participant.trial
    overview = reverse("trial_detail", args=[trial.slug])
    site_url = reverse("site_data_lock", args=[trial.slug, sites[0].code])
    trial_url = reverse("trial_data_lock", args=[trial.slug])
    page = client_for(data_manager).get(overview).content.decode()
    assert site_url in page and trial_url in page
    assert trial_url not in client_for(coordinator).get(overview).content.decode()
    assert client_for(coordinator).post(trial_url, {}).status_code == 403

    for step in ("freeze", "lock"):
        response = client_for(data_manager).post(site_url, {
            "step": step, "reason": "Site closed.", "password": PASSWORD})
        assert response.status_code == 302
    assert Site.objects.get(pk=sites[0].pk).is_locked
    client_for(data_manager).post(trial_url, {"step": "freeze", "reason": "Last visit.",
                                              "password": PASSWORD})
    assert Trial.objects.get(pk=trial.pk).is_frozen
    shown = client_for(coordinator).get(overview).content.decode()
    assert "The trial: frozen on" in shown and "Locked" in shown
    detail = client_for(coordinator).get(
        reverse("participant_detail", args=[trial.slug, participant.study_id])).content.decode()
    assert f"Site {sites[0].code}: locked on" in detail


def test_a_crf_page_save_in_a_frozen_casebook_says_why_and_writes_nothing(
        participant, baseline, investigator, data_manager, client_for):
    from tests.crf_world import demographics
    from crfs.models import CRFRecord
    from patients import locks

    locks.step_casebook(participant, "freeze", by=data_manager, reason="x", password=PASSWORD)
    url = reverse("visit_crf_edit", args=[participant.trial.slug, participant.study_id,
                                          baseline.pk, "demographics"])
    answers = {k: v for k, v in demographics(participant).items() if v is not None}
    response = client_for(investigator).post(url, {**answers, "complete": "on"})
    assert response.status_code in (200, 400)
    assert "is frozen" in response.content.decode()
    assert not CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()
