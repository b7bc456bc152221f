"""The monitor verifies a form against the source; the investigator changes a verified value;
the mark goes and the page says so. A coordinator opens a missing form from the subject matrix
and goes on to the visit's next form with "save and go to the next form". In a real browser."""
from __future__ import annotations

import pytest

from crfs.models import SourceVerification
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.crf_world import demographics
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORT = {"width": 1280, "height": 800}


@pytest.fixture
def world(protocols, make_user):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, site, username="claire")
    investigator = make_user("investigator", trial, site, username="irene")
    make_user("monitor", trial, site, username="maxime", first_name="Maxime",
              last_name="Moniteur")
    return trial, site, coordinator, investigator


def _page(browser, live_server):
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return context, page


def test_a_change_to_a_verified_value_removes_the_mark_and_says_so(browser, live_server,
                                                                   world):
    trial, site, coordinator, investigator = world
    p = factories.randomised(trial, site, by=coordinator, days_ago=30)
    baseline = Visit.objects.get(participant=p, code="baseline")
    record = save_crf(p, "demographics", demographics(p), by=investigator, complete=True,
                      visit=baseline)
    url = f"/trials/{trial.slug}/participants/{p.study_id}/visits/{baseline.pk}/crf/demographics/"

    context, page = _page(browser, live_server)
    try:
        login(page, "maxime", PASSWORD)
        page.goto(url)
        assert page.is_visible("[data-testid=sdv-none]")
        page.click("text=Verify against source…")
        page.check("input[name='scope'][value='form']")
        page.click("[data-testid=verify-form] button[type=submit]")
        page.wait_for_selector("text=Verified against the source: the whole form.")
        assert "Maxime Moniteur" in page.inner_text("[data-testid=sdv-mark]")
        screenshot(page, "sdv-verified")
    finally:
        context.close()
    assert SourceVerification.objects.filter(record=record, voided_at__isnull=True).count() == 1

    context, page = _page(browser, live_server)
    try:
        login(page, "irene", PASSWORD)
        page.goto(url)
        assert "Maxime Moniteur" in page.inner_text("[data-testid=sdv-mark]")  # everyone sees it
        page.fill("input[name='weight_kg']", "77.5")
        page.fill("#id_reason", "Weighed again at the visit")
        page.click("button[name=action][value=complete]")
        page.wait_for_selector("text=their verification was removed")
        page.goto(url)
        assert page.is_visible("[data-testid=sdv-none]")
        assert page.locator("[data-testid=sdv-mark]").count() == 0
        screenshot(page, "sdv-voided")
    finally:
        context.close()
    mark = SourceVerification.objects.get(record=record)
    assert mark.voided_at is not None and "Weighed again" in mark.void_reason


def test_a_coordinator_fills_a_missing_form_from_the_matrix_and_goes_to_the_next(
        browser, live_server, world):
    trial, site, coordinator, investigator = world
    late = factories.randomised(trial, site, by=coordinator, days_ago=40)
    baseline = Visit.objects.get(participant=late, code="baseline")
    first, second = baseline.crfs[0], baseline.crfs[1]

    context, page = _page(browser, live_server)
    try:
        login(page, "claire", PASSWORD)
        page.goto(f"/trials/{trial.slug}/")
        page.click("text=Subject matrix")
        page.select_option("#id_state", "missing")
        page.click("button:has-text('Filter')")
        row = page.locator(f"tr:has(th:has-text('{late.study_id}'))")
        row.locator(f"a[href$='/visits/{baseline.pk}/crf/{first}/']").click()
        page.wait_for_url(f"**/visits/{baseline.pk}/crf/{first}/")
        # Saved with an error first: the summary at the top links to the field.
        page.check("input[name='sex'][value='female']")
        page.fill("input[name='year_of_birth']", "1850")
        page.check("input[name='ecog'][value='1']")
        page.fill("input[name='height_cm']", "164")
        page.fill("input[name='weight_kg']", "58,5")
        page.check("input[name='primary_location'][value='mid_rectum']")
        page.fill("input[name='distance_anal_verge_cm']", "7")
        page.check("input[name='metastatic_sites'][value='liver']")
        page.click("[data-testid=save-next]")
        summary = page.locator("[data-testid=error-summary]")
        summary.wait_for()
        assert summary.get_attribute("role") == "alert"
        assert page.evaluate("document.activeElement.dataset.testid") == "error-summary"
        summary.locator("a").first.click()
        assert page.evaluate("document.activeElement.name") == "year_of_birth"
        screenshot(page, "error-summary")
        page.fill("input[name='year_of_birth']", "1950")
        page.click("[data-testid=save-next]")
        page.wait_for_url(f"**/visits/{baseline.pk}/crf/{second}/")
        assert page.is_visible("text=saved (Complete)")
        assert page.is_visible("text=Not entered yet")
    finally:
        context.close()
