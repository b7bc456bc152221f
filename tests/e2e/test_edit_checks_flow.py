"""Edit checks on the CRF page, in a real browser: the page's evaluator (static/js/checks.js)
gives the shared vectors' values, and a French-speaking investigator meets REMINET's check
across forms before sending the baseline form (message next to the field, no reload, the submit
blocked), corrects the answer and saves."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from accounts.models import Profile
from crfs.models import CRFRecord
from patients.models import Visit
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CHECKS_JS = ROOT / "static" / "js" / "checks.js"
VECTORS = json.loads((ROOT / "tests" / "crfs" / "check_vectors.json").read_text(encoding="utf-8"))
# The check's message as the protocol file gives it in French (the reader's language).
MESSAGE = ("La durée du traitement de première ligne diffère de celle du formulaire "
           "d'éligibilité : corrigez celle qui est fausse.")


def test_the_page_evaluator_gives_each_vectors_expected_value(browser):
    page = browser.new_page()
    try:
        page.set_content("<!doctype html><html><body></body></html>")
        page.add_script_tag(path=str(CHECKS_JS))
        got = page.evaluate("""vectors => vectors.map(v =>
            window.CTMSChecks.evaluate(v.ast, window.CTMSChecks.valuesEnv(v.env)))""",
                            VECTORS["vectors"])
    finally:
        page.close()
    wrong = [(v["expression"], v["env"], v["expected"], g)
             for v, g in zip(VECTORS["vectors"], got) if g != v["expected"]]
    assert wrong == []


def test_a_cross_form_check_fails_before_submit_and_passes_after_correction_in_french(
        page, protocols, make_user, request):
    trial = protocols["reminet"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site),
                                       l1_duration_months="4.6")
    investigator = make_user("investigator", trial, site, username="ines")
    Profile.objects.update_or_create(user=investigator, defaults={"language": "fr"})
    baseline = Visit.objects.get(participant=participant, code="baseline")

    login(page, "ines", PASSWORD)
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, baseline.pk,
                                              "demographics"]))
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.is_visible("button[value=draft]:has-text('Enregistrer le brouillon')")
    page.check("input[name='sex'][value='female']")
    page.fill("input[name='year_of_birth']", "1960")
    page.evaluate("window.__notReloaded = true")

    page.fill("input[name='l1_duration_months']", "3,5")  # typed the French way
    message = page.locator("#l1_duration_months-field [data-check-message]")
    message.wait_for()
    assert message.inner_text() == MESSAGE
    assert message.get_attribute("data-severity") == "hard"
    url = page.url
    page.click("button[value=draft]")
    assert page.url == url and page.evaluate("window.__notReloaded") is True
    assert page.locator("#l1_duration_months-field [data-check-message]").count() == 1
    assert not CRFRecord.objects.filter(participant=participant, crf_code="demographics").exists()
    screenshot(page, f"edit-check-failing-fr-{request.node.callspec.id}")

    page.fill("input[name='l1_duration_months']", "4,6")
    assert page.locator("[data-check-message]").count() == 0
    page.click("button[value=draft]")
    page.wait_for_url(f"**/participants/{participant.study_id}/")
    record = CRFRecord.objects.get(participant=participant, crf_code="demographics")
    assert record.data["l1_duration_months"] == "4.6" and record.status == "draft"


def test_other_metastatic_sites_is_shown_and_required_only_when_other_is_ticked(
        page, protocols, make_user):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site))
    make_user("investigator", trial, site, username="irene")
    baseline = Visit.objects.get(participant=participant, code="baseline")

    login(page, "irene", PASSWORD)
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, baseline.pk,
                                              "demographics"]))
    other = page.locator("#metastatic_sites_other-field")
    assert other.is_hidden()
    page.check("input[name='metastatic_sites'][value='liver']")
    assert other.is_hidden()
    page.check("input[name='metastatic_sites'][value='other']")
    assert other.is_visible()
    assert other.locator("[data-required-mark]").is_visible()
    page.uncheck("input[name='metastatic_sites'][value='other']")
    assert other.is_hidden()


def test_a_soft_check_on_a_groups_rows_warns_on_the_row_without_blocking(
        page, protocols, make_user):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site))
    make_user("investigator", trial, site, username="irene")
    baseline = Visit.objects.get(participant=participant, code="baseline")

    login(page, "irene", PASSWORD)
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, baseline.pk,
                                              "tumour_assessment"]))
    page.fill("input[name='target_lesions-0-diameter_mm']", "3")
    warning = page.locator("tr[data-row] [data-check-message='lesion_diameter_plausible']")
    warning.wait_for()
    assert warning.count() == 1 and warning.get_attribute("data-severity") == "soft"
    assert page.locator("input[name='target_lesions-0-diameter_mm']").locator(
        "xpath=ancestor::tr").locator("[data-check-message]").count() == 1
    page.fill("input[name='target_lesions-0-diameter_mm']", "0")
    assert page.locator("[data-check-message]").count() == 0
    page.fill("input[name='target_lesions-0-diameter_mm']", "3")
    page.click("button[value=draft]")  # a soft check does not block: the server saves and warns
    page.wait_for_url(f"**/participants/{participant.study_id}/")
    assert page.is_visible("text=A target lesion's diameter should be 0 mm (gone) or between 5 and "
                           "300 mm")
