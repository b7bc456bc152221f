"""A coordinator screens a participant, an investigator of the site confirms their eligibility
(password typed again), and the coordinator randomises them, in a real browser."""
from __future__ import annotations

import pytest
from django.utils import timezone

from randomisation.models import Allocation
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_screens_and_randomises_a_participant(page, protocols, make_user, request):
    trial = protocols["reminet"]
    statistician = make_user("statistician", trial)
    factories.sealed_list(trial, by=statistician, slots_per_stratum=8)
    site = trial.sites.order_by("code").first()
    make_user("coordinator", trial, site, username="camille")
    make_user("investigator", trial, site, username="irene", first_name="Irène",
              last_name="Curie")

    login(page, "camille", PASSWORD)
    page.click(f"text={trial.short_title}")
    page.click("text=Participants")
    page.click("text=Register a participant")
    page.click("button:has-text('Register')")
    page.wait_for_selector("h1:has-text('-0001')")
    study_id = page.inner_text("h1").split()[0]

    page.click("text=record consent")
    # Consent on the screening day (not before it), to a version the protocol declares.
    page.fill("#id_consent_date", timezone.localdate().isoformat())
    page.select_option("#id_consent_version", "1.0")
    page.click("button:has-text('Record consent')")
    page.wait_for_selector("text=Consent recorded.")

    page.click("text=eligibility form")
    for criterion in trial.definition["eligibility"]:
        value = "true" if criterion["kind"] == "inclusion" else "false"
        page.check(f"input[name='{criterion['code']}'][value='{value}']")
    page.fill("input[name='screening_date']", "2026-11-20")
    page.check("input[name='tumour_grade'][value='G2']")
    page.check("input[name='l1_response'][value='stable_disease']")
    page.fill("input[name='l1_duration_months']", "4,5")  # French decimal comma is accepted
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=eligible")

    # The coordinator cannot randomise yet: the worklist and the page say who is awaited.
    assert page.is_visible("[data-testid=awaiting-confirmation]")
    assert not page.is_visible("text=Randomise…")
    page.goto(f"/trials/{trial.slug}/visits/")
    row = page.locator(f"[data-testid=to-randomise] tr:has-text('{study_id}')")
    assert "awaiting investigator's confirmation" in row.inner_text()
    page.click("form[action$='/logout/'] button")

    # The investigator of the site confirms, with the password typed again.
    login(page, "irene", PASSWORD)
    page.goto(f"/trials/{trial.slug}/participants/{study_id}/")
    page.click("text=Confirm eligibility…")
    page.fill("#id_password", "not-my-password")
    page.click("button:has-text('Confirm eligibility')")
    page.wait_for_selector("text=The password is not correct.")
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm eligibility')")
    page.wait_for_selector(f"text=Eligibility of {study_id} confirmed.")
    assert "Irène Curie" in page.inner_text("[data-testid=eligibility-confirmation]")
    screenshot(page, f"eligibility-confirmed-{request.node.callspec.id}")
    page.click("form[action$='/logout/'] button")

    # Now the coordinator randomises.
    login(page, "camille", PASSWORD)
    page.goto(f"/trials/{trial.slug}/visits/")
    row = page.locator(f"[data-testid=to-randomise] tr:has-text('{study_id}')")
    assert "ready to randomise" in row.inner_text()
    page.goto(f"/trials/{trial.slug}/participants/{study_id}/")
    page.click("text=Randomise…")
    assert page.is_visible("text=Grade 2") and page.is_visible("text=Stable disease")
    page.click("button:has-text('Confirm and randomise')")
    page.wait_for_selector("text=Participant randomised.")

    allocation = Allocation.objects.get(participant__study_id=study_id)
    treatment = page.inner_text("[data-testid=treatment]")
    assert treatment == f"Kit {allocation.kit_code}"
    for arm in trial.arms.all():
        assert arm.label not in page.content()
    screenshot(page, f"randomised-{request.node.callspec.id}")
