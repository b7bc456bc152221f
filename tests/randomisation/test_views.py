"""The randomisation pages, end to end through the test client."""
from __future__ import annotations

import pytest
from django.urls import reverse

from patients.models import Participant
from randomisation.models import Allocation, AllocationList, ListStatus
from tests import factories


def test_coordinator_screens_consents_checks_eligibility_and_randomises(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    site = trial.sites.order_by("code").first()
    client_for(coordinator)

    response = client.post(reverse("screen_participant", args=[trial.slug]),
                           {"site": site.pk, "screened_on": "2026-11-20"})
    participant = Participant.objects.get()
    assert response.url == reverse("participant_detail", args=[trial.slug, participant.study_id])

    # Randomising too early says why.
    page = client.get(reverse("randomise", args=[trial.slug, participant.study_id]))
    assert "no recorded informed consent" in page.content.decode()

    response = client.post(reverse("record_consent", args=[trial.slug, participant.study_id]),
                           {"consent_date": "2026-11-20", "consent_version": "1.0"})
    assert response.status_code == 302

    answers = factories.eligibility_answers(trial, tumour_grade="G2", l1_response="stable_disease")
    post = {k: ("true" if v is True else "false" if v is False else v) for k, v in answers.items()
            if v is not None}
    post["action"] = "complete"
    url = reverse("crf_edit", args=[trial.slug, participant.study_id, "eligibility"])
    response = client.post(url, post)
    assert response.status_code == 302, response.content.decode()[:3000]

    # The coordinator alone cannot randomise: an investigator of the site confirms first.
    page = client.get(reverse("randomise", args=[trial.slug, participant.study_id]))
    assert "awaiting an investigator&#x27;s confirmation" in page.content.decode()
    factories.confirm_eligibility(participant)

    page = client.get(reverse("randomise", args=[trial.slug, participant.study_id]))
    html = page.content.decode()
    assert "Grade 2" in html and "Stable disease" in html
    response = client.post(reverse("randomise", args=[trial.slug, participant.study_id]),
                           {"stratum_grade": "G2", "stratum_l1_response": "stable_disease"})
    assert response.status_code == 302
    allocation = Allocation.objects.get(participant=participant)
    page = client.get(response.url).content.decode()
    assert allocation.kit_code in page


def test_randomise_page_for_an_ineligible_participant_explains(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, EXC1=True)
    client_for(coordinator)
    response = client.post(reverse("randomise", args=[trial.slug, p.study_id]), {})
    assert response.status_code == 200 or response.status_code == 400
    html = response.content.decode()
    assert "is a screen failure" in html and "EXC1" in html  # the failed criterion, named
    assert not Allocation.objects.exists()


def test_randomising_another_sites_participant_is_404(reminet_ready, coordinator_factory, client, client_for):
    trial, coordinator = reminet_ready
    other = trial.sites.order_by("code").last()
    p = factories.eligible_participant(trial, other, by=coordinator_factory(trial, other))
    client_for(coordinator)
    assert client.post(reverse("randomise", args=[trial.slug, p.study_id])).status_code == 404
    assert not Allocation.objects.exists()


def test_consent_in_the_future_is_refused_on_the_form(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    client_for(coordinator)
    response = client.post(reverse("record_consent", args=[trial.slug, p.study_id]),
                           {"consent_date": "2999-01-01", "consent_version": "1.0"})
    assert response.status_code == 400
    assert "cannot be in the future" in response.content.decode()


def test_screening_in_the_future_is_refused(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    client_for(coordinator)
    response = client.post(reverse("screen_participant", args=[trial.slug]),
                           {"site": trial.sites.first().pk, "screened_on": "2999-01-01"})
    assert response.status_code == 400 and not Participant.objects.exists()


@pytest.mark.parametrize("role", ["investigator", "coordinator", "data_manager", "sponsor"])
def test_allocation_lists_are_404_for_everyone_but_the_statistician(reminet, make_user, client,
                                                                    role, client_for):
    client_for(make_user(role, reminet))
    assert client.get(reverse("allocation_lists", args=[reminet.slug])).status_code == 404
    assert client.get(reverse("allocation_balance", args=[reminet.slug])).status_code == 404


def test_statistician_generates_seals_and_verifies_in_the_browser(reminet, statistician, client, client_for):
    client_for(statistician)
    url = reverse("allocation_lists", args=[reminet.slug])
    client.post(url, {"action": "generate", "seed": "browser-seed", "slots_per_stratum": 6})
    alist = AllocationList.objects.get()
    assert alist.status == ListStatus.DRAFT and alist.seed == "browser-seed"
    response = client.post(url, {"action": "seal", "list": alist.pk}, follow=True)
    alist.refresh_from_db()
    assert alist.status == ListStatus.ACTIVE
    assert alist.digest in response.content.decode()
    response = client.post(url, {"action": "verify", "list": alist.pk}, follow=True)
    assert "matches its seal" in response.content.decode()
    page = client.get(url).content.decode()
    assert "Block sizes" in page


def test_a_refused_import_lists_its_rows_on_the_page(reminet, statistician, client, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile

    client_for(statistician)
    upload = SimpleUploadedFile("list.csv", b"stratum,sequence,arm,kit_code\nnope,1,LAN,ACE347\n",
                                content_type="text/csv")
    response = client.post(reverse("allocation_lists", args=[reminet.slug]),
                           {"action": "import", "file": upload})
    assert response.status_code == 400
    assert "row 2: unknown stratum" in response.content.decode()
    assert not AllocationList.objects.exists()


def test_generate_form_refuses_bad_numbers(reminet, statistician, client, client_for):
    client_for(statistician)
    response = client.post(reverse("allocation_lists", args=[reminet.slug]),
                           {"action": "generate", "slots_per_stratum": "-3"})
    assert "greater than or equal to 1" in response.content.decode()
    assert not AllocationList.objects.exists()


def test_seal_with_an_unknown_list_is_404(reminet, statistician, client, client_for):
    client_for(statistician)
    response = client.post(reverse("allocation_lists", args=[reminet.slug]),
                           {"action": "seal", "list": "abc"})
    assert response.status_code == 404


def test_balance_report_counts_arms_per_stratum(reminet_ready, statistician, client, client_for):
    trial, coordinator = reminet_ready
    for _ in range(4):
        from randomisation.services import randomise
        randomise(factories.eligible_participant(trial, by=coordinator, tumour_grade="G1",
                                                 l1_response="stable_disease"), by=coordinator)
    client_for(statistician)
    response = client.get(reverse("allocation_balance", args=[trial.slug]))
    rows = response.context["rows"]
    assert [r.stratum for r in rows] == ["grade=G1;l1_response=stable_disease"]
    assert sum(rows[0].counts.values()) == 4
    assert response.context["largest"] == rows[0].imbalance <= 2
