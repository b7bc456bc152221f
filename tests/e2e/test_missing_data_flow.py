"""An investigator whose interface is in French answers a required question "Inconnu" (UNK) with
a reason and a diagnosis date known to the month, saves the form as complete, and sees it
complete, in a real browser."""
from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Profile
from crfs.missing_data import MISSING_KEY
from crfs.models import CRFRecord, CRFStatus
from patients.models import Visit
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_french_investigator_answers_unknown_with_a_reason_and_completes_the_form(
        page, protocols, make_user, request):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site),
                                       days_ago=20)
    user = make_user("investigator", trial, site, username="ines", first_name="Inès",
                     last_name="Durand")
    baseline = Visit.objects.get(participant=participant, code="baseline")

    login(page, "ines", PASSWORD)
    Profile.objects.update_or_create(user=user, defaults={"language": "fr"})
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, baseline.pk,
                                              "demographics"]))
    page.check("input[name='sex'][value='female']")
    page.fill("input[name='year_of_birth']", "1950")
    page.check("input[name='ecog'][value='1']")
    page.fill("input[name='height_cm']", "164")
    page.fill("input[name='weight_kg']", "58,5")
    page.check("input[name='primary_location'][value='mid_rectum']")
    page.check("input[name='metastatic_sites'][value='liver']")
    page.select_option("select[name='diagnosis_date_month']", label="mars")
    page.fill("input[name='diagnosis_date_year']", "2026")
    # The distance is required; the MRI report is not available: "Inconnu", with the reason.
    page.select_option("select[name='distance_anal_verge_cm__code']", label="Inconnu (UNK)")
    page.click("button:has-text('Enregistrer comme complet')")

    error = page.locator("#distance_anal_verge_cm-field .errorlist")
    assert error.inner_text() == "Donnez la raison de « Inconnu »."
    assert not CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()
    page.fill("input[name='distance_anal_verge_cm__reason']", "Compte rendu d’IRM non disponible")
    page.click("button:has-text('Enregistrer comme complet')")
    page.wait_for_selector("text=enregistré (Complet)")

    record = CRFRecord.objects.get(participant=participant, crf_code="demographics")
    assert record.status == CRFStatus.COMPLETE
    assert record.data["distance_anal_verge_cm"] is None
    assert record.data[MISSING_KEY] == {"distance_anal_verge_cm": {
        "code": "UNK", "reason": "Compte rendu d’IRM non disponible"}}
    assert record.data["diagnosis_date"] == "2026-03"
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, baseline.pk,
                                              "demographics"]))
    assert page.inner_text("[data-testid=crf-status]") == "Complet"
    assert page.input_value("select[name='distance_anal_verge_cm__code']") == "UNK"
    screenshot(page, f"crf-unknown-fr-{request.node.callspec.id}")
