"""A coordinator opens the subject matrix, finds a participant's missing form and follows the
cell's link to it, in a real browser; screenshots of the matrix at laptop and tablet sizes."""
from __future__ import annotations

import shutil

import pytest

from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.crf_world import demographics
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SIZES = {"laptop": {"width": 1366, "height": 768}, "tablet": {"width": 820, "height": 1180}}


@pytest.mark.parametrize("size", SIZES)
def test_a_coordinator_finds_a_missing_form_in_the_matrix_and_opens_it(
        browser, live_server, protocols, make_user, size):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, site, username="claire")
    investigator = make_user("investigator", trial, site)
    made = [factories.randomised(trial, site, by=coordinator, days_ago=days)
            for days in (200, 120, 40, 5)]
    for p in made[:2]:  # their baseline demographics entered, the rest of the baseline not
        save_crf(p, "demographics", demographics(p), by=investigator, complete=True,
                 visit=Visit.objects.get(participant=p, code="baseline"))
    late = made[2]
    baseline = Visit.objects.get(participant=late, code="baseline")

    context = browser.new_context(viewport=SIZES[size], base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        login(page, "claire", PASSWORD)
        page.goto(f"/trials/{trial.slug}/")
        page.click("text=Subject matrix")
        page.wait_for_selector("[data-testid=matrix]")
        assert page.is_visible("[data-testid=legend]")
        shot = screenshot(page, f"subject-matrix-{size}")
        shutil.copy(shot, f"/tmp/subject-matrix-{size}.png")

        # Only those with a missing form, then the late participant's row.
        page.select_option("#id_state", "missing")
        page.click("button:has-text('Filter')")
        page.wait_for_selector("[data-testid=matrix]")
        row = page.locator(f"tr:has(th:has-text('{late.study_id}'))")
        cell = row.locator(f"a[href$='/visits/{baseline.pk}/crf/demographics/']")
        assert cell.get_attribute("title").endswith(": Missing")
        assert "Missing" in cell.inner_text()  # the state's name, not only its colour
        # By keyboard: the cell's link takes the focus and Enter follows it.
        cell.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"**/participants/{late.study_id}/visits/{baseline.pk}/crf/"
                          "demographics/")
        assert page.is_visible("text=Not entered yet")
        screenshot(page, f"subject-matrix-{size}-form")
    finally:
        context.close()
