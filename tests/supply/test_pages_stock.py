"""A site's stock page: its kits by number, lot, expiry and state (expired ones flagged, no arm
for the blinded); the site reports a temperature excursion and returns; the supply manager
decides the excursion and records destruction. Every refusal next to its field, nothing
written; another site's stock is not found."""
from __future__ import annotations

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from supply.models import Excursion, Kit, KitEvent, KitStatus
from supply.services import receive_shipment, report_excursion
from tests.randomisation.test_blinding import assert_no_arm
from tests.supply.pages_world import logged_in, supply_world  # noqa: F401 (fixture)


def site_url(w, name="supply_site", site=None):
    return reverse(name, args=[w.trial.slug, (site or w.site).code])


def shelf(w, n=3, site=None):
    return list(Kit.objects.filter(site=site or w.site, status=KitStatus.AVAILABLE)
                .order_by("number").values_list("number", flat=True)[:n])


def test_the_stock_page_lists_kits_flags_the_expired_and_shows_no_arm(supply_world):
    w = supply_world
    expired = shelf(w, 1)[0]
    Kit.objects.filter(number=expired).update(expires_on=timezone.localdate() - dt.timedelta(1))
    client = logged_in(w.coordinator)
    page = client.get(site_url(w))
    text = page.content.decode()
    assert page.status_code == 200
    assert_no_arm(w.trial, text, "site stock page for a coordinator")
    row = text.split(f'data-kit="{expired}"')[1].split("</tr>")[0]
    assert "expired" in row
    assert '<dd data-testid="stock-available">79</dd>' in text
    assert '<dd data-testid="stock-expired">1</dd>' in text
    assert text.count("data-kit=") == 80
    for form in ("excursion-form", "returns-form", "accountability-form"):
        assert f'data-testid="{form}"' in text
    assert 'data-testid="destroy-form"' not in text
    # The investigator reads; the monitor (blinded, every site) reads both sites.
    text = logged_in(w.investigator).get(site_url(w)).content.decode()
    assert 'data-testid="excursion-form"' not in text and 'data-testid="returns-form"' not in text
    monitor = logged_in(w.monitor)
    assert monitor.get(site_url(w, site=w.other)).status_code == 200
    assert_no_arm(w.trial, monitor.get(site_url(w)).content.decode(), "stock for a monitor")
    # The supply manager sees the arms' counts, and may record destruction.
    text = logged_in(w.manager).get(site_url(w)).content.decode()
    assert "LAN · " in text and 'data-testid="destroy-form"' in text


def test_another_sites_stock_and_actions_are_not_found(supply_world):
    w = supply_world
    client = logged_in(w.coordinator)
    assert client.get(site_url(w, site=w.other)).status_code == 404
    assert client.get(reverse("supply_site", args=[w.trial.slug, "NOWHERE"])).status_code == 404
    for name in ("supply_excursion", "supply_returns", "supply_destruction"):
        assert client.post(site_url(w, name, site=w.other), {}).status_code == 404, name
    for name in ("supply_accountability_csv", "supply_accountability_pdf"):
        assert client.get(site_url(w, name, site=w.other)).status_code == 404, name


def test_an_excursion_quarantines_kits_until_the_supply_manager_decides(supply_world):
    w = supply_world
    kits = shelf(w, 2)
    client = logged_in(w.coordinator)
    url = site_url(w, "supply_excursion")
    missing = client.post(url, {"kits": kits, "description": " "})
    assert missing.status_code == 400
    assert missing.context["excursion_form"].errors["description"]
    unknown = client.post(url, {"kits": ["ZZZZ99"], "description": "Fridge at 12 °C"})
    assert unknown.status_code == 400 and "Select a valid choice" in unknown.content.decode()
    assert not Excursion.objects.exists()
    response = client.post(url, {"kits": kits, "description": "Fridge at 12 °C for 3 h"})
    assert response.status_code == 302
    excursion = Excursion.objects.get()
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.QUARANTINED}
    text = client.get(site_url(w)).content.decode()
    assert "Quarantined until the supply manager decides." in text
    assert '<dd data-testid="stock-quarantined">2</dd>' in text
    decide = reverse("supply_decide", args=[w.trial.slug, excursion.pk])
    assert client.post(decide, {f"e{excursion.pk}-decision": "release",
                                f"e{excursion.pk}-reason": "ok"}).status_code == 403
    manager = logged_in(w.manager)
    no_reason = manager.post(decide, {f"e{excursion.pk}-decision": "release",
                                      f"e{excursion.pk}-reason": ""})
    assert no_reason.status_code == 400 and "This field is required." in \
        no_reason.content.decode()
    assert manager.post(decide, {f"e{excursion.pk}-decision": "release",
                                 f"e{excursion.pk}-reason": "Stability data: 24 h at 25 °C "
                                 "allowed."}).status_code == 302
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.AVAILABLE}
    again = manager.post(decide, {f"e{excursion.pk}-decision": "destroy",
                                  f"e{excursion.pk}-reason": "changed my mind"})
    assert again.status_code == 400 and "already decided" in again.content.decode()
    # The coordinator of the first site cannot reach the second site's excursions.
    theirs = Excursion.objects.create(trial=w.trial, site=w.other, reported_at=timezone.now(),
                                      reported_by=w.manager, description="x")
    assert logged_in(w.coordinator).post(reverse("supply_decide", args=[
        w.trial.slug, theirs.pk]), {}).status_code == 404


def test_returns_and_destruction_all_or_nothing(supply_world):
    w = supply_world
    kits = shelf(w, 2)
    client = logged_in(w.coordinator)
    events = KitEvent.objects.count()
    wrong = client.post(site_url(w, "supply_returns"),
                        {"returns-numbers": f"{kits[0]}\nZZZZ99", "returns-reason": "unused"})
    assert wrong.status_code == 400
    assert escape("Nothing was recorded.") in wrong.content.decode()
    assert "ZZZZ99" in " ".join(wrong.context["returns_form"].errors["numbers"])
    assert KitEvent.objects.count() == events
    empty = client.post(site_url(w, "supply_returns"), {"returns-numbers": ""})
    assert empty.status_code == 400 and empty.context["returns_form"].errors["numbers"]
    assert client.post(site_url(w, "supply_returns"),
                       {"returns-numbers": f"{kits[0]}, {kits[1].lower()}",
                        "returns-reason": "sent back unused"}).status_code == 302
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.RETURNED}
    destroy = site_url(w, "supply_destruction")
    assert client.post(destroy, {"destroy-numbers": kits[0]}).status_code == 403
    manager = logged_in(w.manager)
    assert manager.post(destroy, {"destroy-numbers": " ".join(kits),
                                  "destroy-reason": "incinerated"}).status_code == 302
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.DESTROYED}


def test_the_stock_page_reads_a_fixed_number_of_queries(supply_world, django_assert_num_queries):
    w = supply_world
    client = logged_in(w.manager)
    client.get(site_url(w))
    with CaptureQueriesContext(connection) as few:
        client.get(site_url(w))
    for _ in range(2):
        shipment = w.dispatch(LAN=10, PBO=10)
        receive_shipment(shipment, by=w.coordinator, outcomes={})
    report_excursion(w.site, numbers=shelf(w, 1), description="warm", by=w.coordinator)
    report_excursion(w.site, numbers=shelf(w, 1), description="warm again", by=w.coordinator)
    with django_assert_num_queries(len(few.captured_queries)):
        # 40 kits more, two excursions to decide: no query per kit or excursion.
        client.get(site_url(w))


def test_a_monitor_of_one_site_reconciles_its_supply_and_sees_no_other_site(supply_world,
                                                                            make_user):
    w = supply_world
    shipment, theirs = w.dispatch(w.site), w.dispatch(w.other)
    client = logged_in(make_user("monitor", w.trial, w.site))
    pages = [reverse("supply_overview", args=[w.trial.slug]), site_url(w),
             reverse("supply_shipment", args=[w.trial.slug, shipment.number]),
             site_url(w, "supply_accountability_pdf")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_arm(w.trial, response.content.decode("latin-1"), f"{url} for a monitor")
    text = client.get(pages[0]).content.decode()
    assert f'data-site="{w.site.code}"' in text and w.other.code not in text
    assert client.get(site_url(w, site=w.other)).status_code == 404
    assert client.get(reverse("supply_shipment", args=[w.trial.slug,
                                                       theirs.number])).status_code == 404
    csv = b"".join(client.get(site_url(w, "supply_accountability_csv")).streaming_content)
    assert_no_arm(w.trial, csv.decode("utf-8-sig"), "accountability CSV for a monitor")
    # Reading is all: no receipt, no excursion.
    assert client.post(reverse("supply_receive", args=[w.trial.slug, shipment.number]),
                       {}).status_code == 403
    assert client.post(site_url(w, "supply_excursion"), {}).status_code == 403
