"""The trial's supply overview and the dispatch of a shipment: counts for everyone who may see
the supply, per-arm stock, resupply levels and requests for the unblinded only; the supply
manager dispatches (from a resupply request, which the shipment answers), every mistake said
next to its field and nothing written."""
from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from supply import resupply
from supply.models import Kit, KitRelease, KitStatus, ReleaseKind, ResupplyRequest, Shipment
from trials.models import Site
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm
from tests.supply.pages_world import logged_in, supply_world  # noqa: F401 (fixture)


def overview(world, user):
    return logged_in(user).get(reverse("supply_overview", args=[world.trial.slug]))


def test_a_blinded_coordinator_sees_their_sites_counts_and_no_arm(supply_world):
    w = supply_world
    shipment = w.dispatch(w.site)
    response = overview(w, w.coordinator)
    assert response.status_code == 200
    text = response.content.decode()
    assert_no_arm(w.trial, text, "supply overview for a coordinator")
    assert f'data-site="{w.site.code}"' in text and w.other.code not in text
    assert 'data-testid="supply-by-arm"' not in text
    assert reverse("supply_shipment", args=[w.trial.slug, shipment.number]) in text
    row = text.split(f'data-site="{w.site.code}"')[1].split("</tr>")[0]
    assert "<td>80</td>" in row and "<td>4</td>" in row  # 80 available, 4 in transit


def test_the_supply_manager_sees_stock_per_arm_levels_and_open_requests(supply_world):
    w = supply_world
    request = resupply.raise_request(w.other, stock_out=True)
    text = overview(w, w.manager).content.decode()
    assert 'data-testid="supply-by-arm"' in text
    assert "LAN · " in text and "PBO · " in text
    levels = {level.arm: level for level in resupply.levels(w.site)}
    assert f"{levels['LAN'].usable} / {levels['LAN'].due} / {levels['LAN'].trigger}" in text
    dispatch = reverse("supply_dispatch", args=[w.trial.slug]) + f"?site={w.other.code}"
    assert dispatch in text and f"LAN: {request.quantities['LAN']}" in text
    # The monitor (blinded, every site) sees both sites' counts, not the arms.
    monitor = overview(w, w.monitor).content.decode()
    assert w.site.code in monitor and w.other.code in monitor
    assert_no_arm(w.trial, monitor, "supply overview for a monitor")
    assert dispatch not in monitor


def test_the_trial_page_links_to_the_supply_only_where_there_are_kits(supply_world, rectal,
                                                                      make_user):
    w = supply_world
    link = reverse("supply_overview", args=[w.trial.slug])
    page = logged_in(w.coordinator).get(reverse("trial_detail", args=[w.trial.slug]))
    assert link in page.content.decode()
    officer = make_user("safety_officer", w.trial)  # no Perm.VIEW_SUPPLY
    page = logged_in(officer).get(reverse("trial_detail", args=[w.trial.slug]))
    assert link not in page.content.decode()
    rectal_coordinator = make_user("coordinator", rectal, rectal.sites.first())
    page = logged_in(rectal_coordinator).get(reverse("trial_detail", args=[rectal.slug]))
    assert "/supply/" not in page.content.decode()


def test_the_rectal_trial_says_it_dispenses_no_kits(rectal, make_user):
    site = rectal.sites.order_by("code").first()
    client = logged_in(make_user("coordinator", rectal, site))
    for name, kwargs in [("supply_overview", {}), ("supply_site", {"site_code": site.code}),
                         ("supply_shipment", {"shipment_number": 1}),
                         ("supply_accountability_csv", {"site_code": site.code}),
                         ("supply_accountability_pdf", {"site_code": site.code})]:
        response = client.get(reverse(name, kwargs={"slug": rectal.slug, **kwargs}))
        assert response.status_code == 404, name
        assert "dispenses no kits" in response.content.decode(), name
    response = client.post(reverse("supply_excursion", args=[rectal.slug, site.code]),
                           {"description": "hot"})
    assert response.status_code == 404
    manager = logged_in(make_user("supply_manager", rectal))
    response = manager.post(reverse("supply_dispatch", args=[rectal.slug]), {})
    assert response.status_code == 404 and "dispenses no kits" in response.content.decode()


def test_the_overview_reads_a_fixed_number_of_queries(supply_world, django_assert_num_queries):
    w = supply_world
    client = logged_in(w.manager)
    url = reverse("supply_overview", args=[w.trial.slug])
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for _ in range(3):  # more shipments, kits and an excursion
        w.dispatch(w.site, LAN=5, PBO=5)
        w.dispatch(w.other, LAN=5, PBO=5)
    resupply.raise_request(w.other, stock_out=True)
    with django_assert_num_queries(len(few.captured_queries) + 0):
        client.get(url)


# --- dispatch --------------------------------------------------------------------------------

def test_a_resupply_request_fills_the_dispatch_in_and_the_shipment_answers_it(supply_world):
    w = supply_world
    request = resupply.raise_request(w.other, stock_out=True)
    client = logged_in(w.manager)
    url = reverse("supply_dispatch", args=[w.trial.slug])
    page = client.get(url, {"site": w.other.code})
    assert page.status_code == 200
    form = page.context["form"]
    assert form.initial["qty_LAN"] == request.quantities["LAN"]
    assert 'data-testid="dispatch-request"' in page.content.decode()
    response = client.post(url, {"site": w.other.code, "depot": "DEPOT-FR",
                                 "qty_LAN": 3, "qty_PBO": 2, "note": "urgent"})
    shipment = Shipment.objects.get(trial=w.trial, site=w.other, status="dispatched")
    assert response.status_code == 302
    assert response["Location"] == reverse("supply_shipment", args=[w.trial.slug,
                                                                    shipment.number])
    assert shipment.request_id == request.pk and shipment.items.count() == 5
    assert ResupplyRequest.objects.get(pk=request.pk).closed_at is not None


def test_dispatch_mistakes_are_said_next_to_their_field_and_nothing_is_written(supply_world):
    w = supply_world
    client = logged_in(w.manager)
    url = reverse("supply_dispatch", args=[w.trial.slug])
    before = Shipment.objects.count(), Kit.objects.filter(status=KitStatus.AT_DEPOT).count()
    good = {"site": w.site.code, "depot": "DEPOT-FR", "qty_LAN": 1, "qty_PBO": 1}
    cases = [
        ({"qty_LAN": -1}, "qty_LAN", "greater than or equal to 0"),
        ({"qty_PBO": "two"}, "qty_PBO", "Enter a whole number"),
        ({"site": "NOWHERE"}, "site", "Select a valid choice"),
        ({"depot": "DEPOT-XX"}, "depot", "Select a valid choice"),
        ({"qty_LAN": 0, "qty_PBO": 0}, "__all__", "A shipment needs at least one kit."),
        ({"qty_PBO": 5000}, "qty_PBO", "The depot has"),
    ]
    for change, field, message in cases:
        response = client.post(url, {**good, **change})
        assert response.status_code == 400, change
        errors = response.context["form"].errors
        assert field in errors and message in " ".join(errors[field]), (change, errors)
        assert escape(message) in response.content.decode()
    assert (Shipment.objects.count(),
            Kit.objects.filter(status=KitStatus.AT_DEPOT).count()) == before


def test_only_the_supply_manager_dispatches(supply_world):
    w = supply_world
    url = reverse("supply_dispatch", args=[w.trial.slug])
    for user in (w.coordinator, w.monitor, w.statistician):
        assert logged_in(user).get(url).status_code == 403
        assert logged_in(user).post(url, {"site": w.site.code, "depot": "DEPOT-FR",
                                          "qty_LAN": 1, "qty_PBO": 1}).status_code == 403


def test_the_levels_of_all_sites_at_once_are_each_sites_levels(supply_world):
    w = supply_world
    for site in (w.site, w.site, w.other):
        # The first injection's kit not given (back to stock): that visit is due again.
        by = factories.site_pharmacist(w.trial, site)
        participant = factories.randomised(w.trial, site, by=by)
        KitRelease.objects.create(assignment=participant.kit_assignments.get(), by=by,
                                  kind=ReleaseKind.NOT_GIVEN, reason="postponed",
                                  at=timezone.now())
    together = resupply.levels_at(w.trial, [w.site, w.other])
    assert together == {site.pk: resupply.levels(site) for site in (w.site, w.other)}
    assert sum(level.due for level in together[w.site.pk]) == 2
    assert sum(level.due for level in together[w.other.pk]) == 1


def test_the_overview_reads_a_fixed_number_of_queries_whatever_the_sites(
        supply_world, django_assert_num_queries):
    w = supply_world
    client = logged_in(w.manager)
    url = reverse("supply_overview", args=[w.trial.slug])
    client.get(url)
    with CaptureQueriesContext(connection) as two_sites:
        client.get(url)
    for n in (3, 4, 5):
        Site.objects.create(trial=w.trial, code=f"REMINET-0{n}", name=f"Site {n}")
    with django_assert_num_queries(len(two_sites.captured_queries)):
        text = client.get(url).content.decode()
    assert 'data-site="REMINET-05"' in text
