"""A coordinator meets a screen failure, in a real browser (issue 17): the eligibility form is
completed with a criterion not met; the participant page says "screen failure", names the
criterion, and offers no "Randomise…". Then the coordinator writes the screening log."""
from __future__ import annotations

import pytest
from django.utils import timezone

from patients.models import Participant, ScreeningLogEntry, Status
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_meets_a_screen_failure(page, protocols, make_user):
    trial = protocols["reminet"]
    site = trial.sites.order_by("code").first()
    make_user("coordinator", trial, site, username="camille")
    today = timezone.localdate().isoformat()

    login(page, "camille", PASSWORD)
    page.click(f"text={trial.short_title}")
    page.click("text=Participants")
    page.click("text=Register a participant")
    page.click("button:has-text('Register')")
    page.wait_for_selector("h1:has-text('-0001')")
    study_id = page.inner_text("h1").split()[0]

    page.click("text=record consent")
    page.fill("#id_consent_date", today)
    page.select_option("#id_consent_version", "1.0")
    page.click("button:has-text('Record consent')")
    page.wait_for_selector("text=Consent recorded.")

    page.click("text=eligibility form")
    for criterion in trial.definition["eligibility"]:
        value = "true" if criterion["kind"] == "inclusion" else "false"
        if criterion["code"] == "INC5":
            value = "false"  # less than 2 months of first-line treatment
        page.check(f"input[name='{criterion['code']}'][value='{value}']")
    page.fill("input[name='screening_date']", today)
    page.check("input[name='tumour_grade'][value='G2']")
    page.check("input[name='l1_response'][value='stable_disease']")
    page.fill("input[name='l1_duration_months']", "1,5")
    page.click("button:has-text('Save as complete')")

    page.wait_for_url(f"**/participants/{study_id}/")
    page.wait_for_selector("[data-testid=screen-failure]")
    failed = page.inner_text("[data-testid=failed-criteria]")
    assert "INC5" in failed and "At least 2 months of first-line treatment" in failed
    assert page.locator("text=Randomise…").count() == 0
    assert "Screen failure" in page.inner_text("h1")
    assert Participant.objects.get(study_id=study_id).status == Status.SCREEN_FAILED
    screenshot(page, "screen-failure")

    # The screening log: a person assessed and not registered; a name in the note is refused.
    page.goto(page.url.split("/participants/")[0] + "/screening-log/")
    page.select_option("#id_reason", "declined")
    page.fill("#id_note", "Jean Dupont")
    page.click("button:has-text('Add to the screening log')")
    page.wait_for_selector("text=must not identify anyone")
    page.fill("#id_note", "")
    page.click("button:has-text('Add to the screening log')")
    page.wait_for_selector("text=Screening log entry recorded.")
    assert "Declined to participate" in page.inner_text("[data-testid=screening-log]")
    assert ScreeningLogEntry.objects.filter(site=site, reason="declined").count() == 1
