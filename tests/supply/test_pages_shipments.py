"""A shipment's page and its receipt: kits listed by number (no arm for anyone blinded), each
received, damaged or missing; a kit number not in the shipment refuses the whole receipt."""
from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from supply.models import KitEvent, KitStatus, ShipmentStatus
from tests.randomisation.test_blinding import assert_no_arm
from tests.supply.pages_world import logged_in, supply_world  # noqa: F401 (fixture)


def receipt_data(shipment, **outcomes):
    data = {f"kit_{i.kit.number}": "received" for i in shipment.items.select_related("kit")}
    data.update({f"kit_{n}": o for n, o in outcomes.items()})
    return data


def test_the_coordinator_receives_a_shipment_kit_by_kit(supply_world):
    w = supply_world
    shipment = w.dispatch()
    numbers = sorted(shipment.items.values_list("kit__number", flat=True))
    client = logged_in(w.coordinator)
    url = reverse("supply_shipment", args=[w.trial.slug, shipment.number])
    page = client.get(url)
    text = page.content.decode()
    assert page.status_code == 200 and 'data-testid="receipt-form"' in text
    assert_no_arm(w.trial, text, "shipment page")
    assert [n for n in numbers if n in text] == numbers
    assert text.index(numbers[0]) < text.index(numbers[-1])  # by number, whatever the arm
    response = client.post(reverse("supply_receive", args=[w.trial.slug, shipment.number]),
                           receipt_data(shipment, **{numbers[0]: "damaged"}))
    assert response.status_code == 302
    assert response["Location"] == reverse("supply_site", args=[w.trial.slug, w.site.code])
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.RECEIVED and shipment.received_by == w.coordinator
    statuses = dict(shipment.items.values_list("kit__number", "kit__status"))
    assert statuses[numbers[0]] == KitStatus.DAMAGED
    assert all(statuses[n] == KitStatus.AVAILABLE for n in numbers[1:])
    stock = client.get(response["Location"]).content.decode()
    assert '<dd data-testid="stock-available">83</dd>' in stock
    # Received: the page lists the outcomes, the form is gone, a second receipt is refused.
    text = client.get(url).content.decode()
    assert 'data-testid="receipt-form"' not in text and "Damaged" in text
    again = client.post(reverse("supply_receive", args=[w.trial.slug, shipment.number]),
                        receipt_data(shipment))
    assert again.status_code == 400 and "already received" in again.content.decode()


def test_scanned_numbers_count_and_an_unknown_one_refuses_the_whole_receipt(supply_world):
    w = supply_world
    shipment = w.dispatch()
    numbers = sorted(shipment.items.values_list("kit__number", flat=True))
    client = logged_in(w.coordinator)
    url = reverse("supply_receive", args=[w.trial.slug, shipment.number])
    events = KitEvent.objects.count()
    stranger = "ZZZZ99"
    response = client.post(url, {**receipt_data(shipment),
                                 "scanned": f"{numbers[1]} missing\n{stranger}"})
    assert response.status_code == 400
    assert escape(f"kit(s) {stranger} are not in shipment {shipment.number}") in \
        response.content.decode()
    assert "Nothing was recorded." in response.content.decode()
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.DISPATCHED and KitEvent.objects.count() == events
    assert set(shipment.items.values_list("kit__status", flat=True)) == {KitStatus.IN_TRANSIT}
    bad_word = client.post(url, {**receipt_data(shipment), "scanned": f"{numbers[1]} broken"})
    assert bad_word.status_code == 400 and "the outcome must be received" in \
        bad_word.content.decode()
    bad_choice = client.post(url, receipt_data(shipment, **{numbers[0]: "stolen"}))
    assert bad_choice.status_code == 400 and "Select a valid choice" in \
        bad_choice.content.decode()
    # The scanned line counts over the choice above it.
    assert client.post(url, {**receipt_data(shipment),
                             "scanned": f" {numbers[1].lower()}  missing \n"}).status_code == 302
    assert dict(shipment.items.values_list("kit__number", "outcome"))[numbers[1]] == "missing"


def test_another_sites_shipment_is_not_found_and_readers_cannot_receive(supply_world):
    w = supply_world
    theirs = w.dispatch(w.other)
    ours = w.dispatch(w.site)
    coordinator = logged_in(w.coordinator)
    for name in ("supply_shipment", "supply_receive"):
        url = reverse(name, args=[w.trial.slug, theirs.number])
        response = coordinator.post(url, {}) if name == "supply_receive" else coordinator.get(url)
        assert response.status_code == 404, name
    investigator = logged_in(w.investigator)
    page = investigator.get(reverse("supply_shipment", args=[w.trial.slug, ours.number]))
    assert page.status_code == 200 and 'data-testid="receipt-form"' not in page.content.decode()
    assert investigator.post(reverse("supply_receive", args=[w.trial.slug, ours.number]),
                             receipt_data(ours)).status_code == 403
    assert logged_in(w.monitor).get(reverse("supply_shipment", args=[
        w.trial.slug, theirs.number])).status_code == 200
    assert coordinator.get(reverse("supply_shipment", args=[w.trial.slug, 999])).status_code == 404


def test_the_shipment_page_reads_a_fixed_number_of_queries(supply_world,
                                                          django_assert_num_queries):
    w = supply_world
    client = logged_in(w.coordinator)
    small, large = w.dispatch(LAN=1, PBO=1), w.dispatch(LAN=15, PBO=15)
    counts = []
    for shipment in (small, large):
        url = reverse("supply_shipment", args=[w.trial.slug, shipment.number])
        client.get(url)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        counts.append(len(queries.captured_queries))
    assert counts[0] == counts[1]
    with django_assert_num_queries(counts[0]):
        client.get(reverse("supply_shipment", args=[w.trial.slug, large.number]))


def test_a_french_coordinator_reads_the_receipt_and_its_refusal_in_french(supply_world):
    from accounts.models import Profile

    w = supply_world
    Profile.objects.update_or_create(user=w.coordinator, defaults={"language": "fr"})
    shipment = w.dispatch()
    client = logged_in(w.coordinator)
    page = client.get(reverse("supply_shipment", args=[w.trial.slug, shipment.number]))
    text = page.content.decode()
    assert "Confirmer la réception" in text and "Numéro de kit" in text
    assert "Reçu en bon état" in text
    refused = client.post(reverse("supply_receive", args=[w.trial.slug, shipment.number]),
                          {**receipt_data(shipment), "scanned": "ZZZZ99"})
    assert refused.status_code == 400
    assert escape(f"Réception refusée\u00a0: le(s) kit(s) ZZZZ99 ne sont pas dans l'envoi "
                  f"{shipment.number}. Rien n'a été enregistré.") in refused.content.decode()
