"""A coordinator receives a shipment in a real browser: from the trial's page to the supply
overview, the shipment dispatched to their site, one kit marked damaged, the receipt confirmed;
the site's stock counts go up by the kits received in good condition, and no arm is shown."""
from __future__ import annotations

import pytest

from supply.models import KitStatus
from supply.services import dispatch_shipment
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot
from tests.randomisation.test_blinding import assert_no_arm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_coordinator_receives_a_shipment_with_a_damaged_kit(page, protocols, make_user, request):
    trial = protocols["reminet"]
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    site = trial.sites.order_by("code").first()
    make_user("coordinator", trial, site, username="camille")
    shipment = dispatch_shipment(trial, site=site, by=factories.supply_manager(trial),
                                 quantities={"LAN": 3, "PBO": 3})
    numbers = sorted(shipment.items.values_list("kit__number", flat=True))
    before = site.kits.filter(status=KitStatus.AVAILABLE).count()

    login(page, "camille", PASSWORD)
    page.click(f"text={trial.short_title}")
    page.click("main a:has-text('Supply')")
    row = page.locator(f"[data-testid=supply-stock] tr[data-site='{site.code}']")
    assert row.locator("td").nth(1).inner_text() == str(before)
    assert row.locator("td").nth(5).inner_text() == "6"  # in transit
    page.click(f"[data-testid=supply-shipments] a[href$='/shipments/{shipment.number}/']")

    page.wait_for_selector("[data-testid=receipt-form]")
    assert page.locator("[data-testid=receipt-form] tr[data-kit]").count() == 6
    assert_no_arm(trial, page.content(), "shipment page in the browser")
    page.select_option(f"select[name='kit_{numbers[0]}']", "damaged")
    page.click("button:has-text('Confirm the receipt')")

    page.wait_for_selector(f"text=Receipt of shipment {shipment.number} recorded.")
    assert page.inner_text("[data-testid=stock-available]") == str(before + 5)
    assert page.inner_text("[data-testid=stock-in-transit]") == "0"
    assert page.locator(f"[data-testid=site-kits] tr[data-kit='{numbers[0]}']").count() == 1
    assert "Damaged" in page.inner_text(f"[data-testid=site-kits] tr[data-kit='{numbers[0]}']")
    assert_no_arm(trial, page.content(), "site stock page in the browser")
    screenshot(page, f"supply-receipt-{request.node.callspec.id}")

    shipment.refresh_from_db()
    assert shipment.status == "received"
    assert dict(shipment.items.values_list("kit__number", "outcome"))[numbers[0]] == "damaged"
