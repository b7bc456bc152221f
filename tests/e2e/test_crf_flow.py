"""An investigator fills a CRF at a visit, meets a validation error, corrects it, completes it
and signs it with their password, in a real browser."""
from __future__ import annotations

import pytest

from crfs.models import CRFRecord, CRFSignature
from patients.models import Visit
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_investigator_fills_corrects_completes_and_signs_a_crf(page, protocols, make_user,
                                                                request):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site),
                                       days_ago=20)
    make_user("investigator", trial, site, username="irene", first_name="Irène",
              last_name="Curie")
    baseline = Visit.objects.get(participant=participant, code="baseline")

    login(page, "irene", PASSWORD)
    page.goto(f"/trials/{trial.slug}/participants/{participant.study_id}/")
    page.click("text=Visit timeline")
    page.click(f"#visit-{baseline.pk} >> text=Demographics and baseline disease")
    page.check("input[name='sex'][value='female']")
    page.fill("input[name='year_of_birth']", "1850")  # before the protocol's 1900
    page.check("input[name='ecog'][value='1']")
    page.fill("input[name='height_cm']", "164")
    page.fill("input[name='weight_kg']", "58,5")
    page.check("input[name='primary_location'][value='mid_rectum']")
    page.fill("input[name='distance_anal_verge_cm']", "7")
    page.check("input[name='metastatic_sites'][value='liver']")
    page.click("button:has-text('Save as complete')")

    error = page.locator("#year_of_birth-field .errorlist")
    assert error.inner_text() == "Must be at least 1900."
    assert not CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()
    assert page.input_value("input[name='weight_kg']") == "58,5", "answers are kept"
    page.fill("input[name='year_of_birth']", "1950")
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=Demographics and baseline disease saved (Complete).")

    page.click("[data-testid=forms] >> text=Demographics and baseline disease")
    page.click("text=Sign…")
    assert page.is_visible("text=58.5 kg")  # what is signed, as stored
    page.fill("input[name='password']", "not-my-password")
    page.click("button:has-text('Sign')")
    assert page.inner_text(".errorlist") == "The password is not correct."
    page.fill("input[name='password']", PASSWORD)
    page.click("button:has-text('Sign')")
    page.wait_for_selector("[data-testid=signature-valid]")

    assert page.inner_text("[data-testid=crf-status]") == "Signed"
    signature = page.inner_text("[data-testid=signature-valid]")
    assert "Irène Curie" in signature
    assert "I confirm these data are accurate and complete" in signature
    stored = CRFSignature.objects.exclude(meaning="eligibility").get()  # not the confirmation
    assert stored.record.data["year_of_birth"] == 1950 and stored.voided_at is None
    screenshot(page, f"crf-signed-{request.node.callspec.id}")
