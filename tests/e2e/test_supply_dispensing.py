"""A REMINET participant is randomised (the first kit shown), had their first injection; at the
next injection visit the coordinator assigns the kit, types a wrong kit number on the injection
form (refused next to the field, nothing saved), then the right one (saved, the kit dispensed),
in a real browser."""
from __future__ import annotations

import pytest
from django.utils import timezone

from crfs.models import CRFRecord
from patients.models import Visit
from randomisation.models import Allocation
from scheduling.services import save_crf_and_replan
from supply import selectors as supply
from supply.models import Kit, KitStatus
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_assigns_and_records_the_kit_of_an_injection_visit(page, protocols,
                                                                        make_user, request):
    trial = protocols["reminet"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, site, username="camille")
    participant = factories.randomised(trial, site, by=coordinator)
    study_id = participant.study_id
    first_kit = Allocation.objects.get(participant=participant).kit_code
    first = Visit.objects.get(participant=participant, code="first_injection")
    assert supply.visit_kit(first).kit.number == first_kit

    login(page, "camille", PASSWORD)
    # Randomised: the confirmation shows the first kit, never the arm.
    page.goto(f"/trials/{trial.slug}/participants/{study_id}/allocation/")
    assert page.inner_text("[data-testid=treatment]") == f"Kit {first_kit}"
    page.goto(f"/trials/{trial.slug}/participants/{study_id}/visits/")
    assert page.inner_text(f"#visit-{first.pk} [data-testid=kit-to-give]") == first_kit

    # The first injection is given with that kit: the 28-day injection visits follow.
    save_crf_and_replan(participant, "injection", {
        "injection_date": timezone.localdate().isoformat(), "dose_given": True,
        "kit_code": first_kit}, by=coordinator, complete=True, visit=first)
    visit = Visit.objects.filter(participant=participant, code="injection").order_by(
        "target_date").first()

    page.goto(f"/trials/{trial.slug}/participants/{study_id}/visits/")
    page.click(f"#visit-{visit.pk} button:has-text('Assign kit')")
    page.wait_for_selector("text=Kit to give at")
    kit = supply.visit_kit(visit).kit.number
    assert page.inner_text(f"#visit-{visit.pk} [data-testid=kit-to-give]") == kit
    screenshot(page, f"kit-assigned-{request.node.callspec.id}")
    wrong = Kit.objects.filter(site=site, status=KitStatus.AVAILABLE).exclude(
        number=kit).first().number

    page.click(f"#visit-{visit.pk} >> text=Study injection")
    assert page.inner_text("[data-testid=assigned-kit]") == f"Kit assigned at this visit: {kit}"
    page.fill("input[name='injection_date']", timezone.localdate().isoformat())
    page.check("input[name='dose_given'][value='true']")
    page.fill("input[name='kit_code']", wrong)
    page.click("button:has-text('Save as complete')")
    error = page.locator("#kit_code-field .errorlist")
    assert f"Kit {wrong} is not the kit assigned to {study_id}" in error.inner_text()
    assert not CRFRecord.objects.filter(participant=participant, visit=visit).exists()
    screenshot(page, f"dispensing-refused-{request.node.callspec.id}")

    page.fill("input[name='kit_code']", kit)
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=Study injection saved (Complete).")
    assert Kit.objects.get(number=kit, trial=trial).status == KitStatus.DISPENSED
    kits = page.inner_text("[data-testid=participant-kits]")
    assert first_kit in kits and kit in kits
    for arm in trial.arms.all():
        assert arm.label not in page.content()
    screenshot(page, f"dispensed-{request.node.callspec.id}")
