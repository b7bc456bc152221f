"""The supply API: stock, kits, shipments and their receipt, excursions, returns, resupply
requests, a participant's kits, the accountability log and the statistician's kit lists.

Every role sees what its pages show: kit numbers and counts for all, arms for the roles
unblinded to the kits only; another site's objects are 404; the rectal trial (no kits) a 404
saying so; bad input a 400 saying what and where, nothing written."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from api.serializers import AccountabilitySerializer
from randomisation import kitlist, services as randomisation
from supply import services as supply
from supply.models import (Excursion, Kit, KitAssignment, KitEvent, KitList, KitStatus,
                           ResupplyRequest, Shipment, ShipmentStatus)
from scheduling.services import save_crf_and_replan
from supply.selectors import ACCOUNTABILITY_COLUMNS
from tests import factories
from tests.api import world
from tests.randomisation.test_blinding import assert_no_arm
from tests.routes import url_patterns

BLINDED = ["investigator", "coordinator", "data_manager", "sponsor"]
SITE_ROLES = {"investigator", "coordinator"}


@pytest.fixture
def sp(places):
    """The API world (REMINET, two stocked sites) with each site's supply objects."""
    world.with_supply(places.own)
    world.with_supply(places.other)
    return places


@pytest.fixture
def manager(sp):
    return factories.supply_manager(sp.trial)


def url(name, trial, *args):
    return reverse(name, args=[trial.slug, *args])


def member(make_user, role, places):
    return make_user(role, places.trial, places.own.site if role in SITE_ROLES else None)


def injected(participant):
    """The first injection given with the kit assigned at randomisation, recorded on the
    injection form: the 28-day injection visits are then planned from it."""
    visit = participant.visits.get(code="first_injection")
    save_crf_and_replan(participant, "injection", {
        "injection_date": visit.target_date.isoformat(), "dose_given": True,
        "kit_code": supply.current_assignment(visit).kit.number},
        by=factories.site_pharmacist(participant.trial, participant.site), complete=True,
        visit=visit)
    return participant


def injection_visit(participant):
    """The participant's next injection visit without a kit (the first injection given)."""
    if not participant.visits.filter(code="injection").exists():
        injected(participant)
    return (participant.visits.filter(code="injection", kit_assignments__isnull=True)
            .order_by("target_date").first())


def empty_arm_of(participant):
    """Take every usable kit of the participant's arm off the site's shelf (a stock-out)."""
    arm = participant.allocation.arm
    Kit.objects.filter(site=participant.site, arm=arm, status=KitStatus.AVAILABLE).update(
        status=KitStatus.DESTROYED)


# --------------------------------------------------------------------------- stock and kits


@pytest.mark.parametrize("role", BLINDED)
def test_stock_is_counts_without_arms_for_a_blinded_role(sp, make_user, api, role):
    response = api(member(make_user, role, sp)).get(url("api_supply_stock", sp.trial))
    assert response.status_code == 200, response.content
    rows = {row["site"]: row for row in response.json()}
    if role in SITE_ROLES:
        assert set(rows) == {sp.own.site.code}
    else:
        assert {sp.own.site.code, sp.other.site.code} <= set(rows)
    own = rows[sp.own.site.code]
    assert own["by_arm"] is None
    usable = Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE,
                                expires_on__gt=timezone.localdate()).count()
    assert own["available"] == usable and own["quarantined"] == 1 and own["assigned"] == 1
    assert_no_arm(sp.trial, response.content.decode(), f"stock for {role}")


@pytest.mark.parametrize("role", ["statistician", "supply_manager"])
def test_stock_per_arm_for_the_roles_unblinded_to_kits(sp, make_user, api, manager, role):
    user = manager if role == "supply_manager" else member(make_user, role, sp)
    response = api(user).get(url("api_supply_stock", sp.trial))
    assert response.status_code == 200
    own = {row["site"]: row for row in response.json()}[sp.own.site.code]
    expected = {arm.code: Kit.objects.filter(site=sp.own.site, arm=arm,
                                             status=KitStatus.AVAILABLE).count()
                for arm in sp.trial.arms.all()}
    assert own["by_arm"] == expected and sum(expected.values()) == own["available"]


def test_kits_at_a_site_have_numbers_lots_expiry_and_state_never_an_arm(sp, make_user, api):
    client = api(member(make_user, "coordinator", sp))
    response = client.get(url("api_site_kits", sp.trial, sp.own.site.code), {"page_size": 200})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == Kit.objects.filter(site=sp.own.site).count()
    assert set(body["results"][0]) == {"number", "lot", "expires_on", "status"}
    numbers = [k["number"] for k in body["results"]]
    assert numbers == sorted(numbers)
    assert_no_arm(sp.trial, response.content.decode(), "kits at the site")
    quarantined = client.get(url("api_site_kits", sp.trial, sp.own.site.code),
                             {"status": "quarantined"}).json()
    assert [k["number"] for k in quarantined["results"]] == [
        sp.own.excursion.kits.get().number]
    bad = client.get(url("api_site_kits", sp.trial, sp.own.site.code), {"status": "lost"})
    assert bad.status_code == 400 and "status" in bad.json()


def test_another_sites_supply_is_404_for_a_site_member(sp, make_user, api):
    client = api(member(make_user, "coordinator", sp))
    other = sp.other.supply
    for name, args in [("api_site_kits", [sp.other.site.code]),
                       ("api_site_accountability", [sp.other.site.code]),
                       ("api_shipment", [other.shipment.number])]:
        assert client.get(url(name, sp.trial, *args)).status_code == 404, name
    assert client.post(url("api_shipment_receipt", sp.trial, other.shipment.number),
                       {"kits": {}}).status_code == 404
    assert client.post(url("api_site_kit_records", sp.trial, sp.other.site.code),
                       {"kind": "returned", "kits": ["X"]}).status_code == 404
    listed = client.get(url("api_shipments", sp.trial)).json()["results"]
    assert {s["site"] for s in listed} == {sp.own.site.code}


# --------------------------------------------------------------------------- shipments


def test_the_supply_manager_dispatches_and_the_site_receives(sp, make_user, api, manager):
    response = api(manager).post(url("api_shipments", sp.trial), {
        "site": sp.own.site.code, "quantities": {"LAN": 3, "PBO": 2}, "note": "Monthly"})
    assert response.status_code == 201, response.content
    shipment = response.json()
    assert shipment["status"] == "dispatched" and shipment["kit_count"] == 5
    assert len(shipment["kits"]) == 5 and "arm" not in shipment["kits"][0]
    numbers = [k["number"] for k in shipment["kits"]]
    assert numbers == sorted(numbers)  # by number: the order tells nothing
    coordinator = api(member(make_user, "coordinator", sp))
    seen = coordinator.get(url("api_shipment", sp.trial, shipment["number"]))
    assert seen.status_code == 200
    assert_no_arm(sp.trial, seen.content.decode(), "a shipment seen by the site")
    received = coordinator.post(url("api_shipment_receipt", sp.trial, shipment["number"]), {
        "kits": {numbers[0]: "damaged", numbers[1].lower(): "missing"}})
    assert received.status_code == 200, received.content
    outcomes = {k["number"]: k["outcome"] for k in received.json()["kits"]}
    assert outcomes[numbers[0]] == "damaged" and outcomes[numbers[1]] == "missing"
    assert {outcomes[n] for n in numbers[2:]} == {"received"}
    statuses = dict(Kit.objects.filter(number__in=numbers).values_list("number", "status"))
    assert statuses[numbers[0]] == KitStatus.DAMAGED and statuses[numbers[2]] == "available"
    again = coordinator.post(url("api_shipment_receipt", sp.trial, shipment["number"]),
                             {"kits": {}})
    assert again.status_code == 400 and "already received" in again.json()["detail"][0]


@pytest.mark.parametrize("body, field, words", [
    ({"site": "REMINET-01", "quantities": {"LAN": -1}}, "quantities", "greater than"),
    ({"site": "REMINET-01", "quantities": {"LAN": "many"}}, "quantities", "valid integer"),
    ({"site": "REMINET-01", "quantities": {"XYZ": 2}}, "quantities", "unknown arm 'XYZ'"),
    ({"site": "REMINET-01", "quantities": {"LAN": 0, "PBO": 0}}, "quantities", "at least one"),
    ({"site": "REMINET-01", "quantities": {"LAN": 90000}}, "quantities", "depot has"),
    ({"site": "NOWHERE", "quantities": {"LAN": 1}}, "site", "NOWHERE"),
    ({"site": "REMINET-01", "quantities": {"LAN": 1}, "depot": "MOON"}, "depot", "MOON"),
    ({"site": "REMINET-01", "quantities": {"LAN": 1}, "request": 999}, "request", "No such"),
    ({"quantities": {"LAN": 1}}, "site", "required"),
])
def test_a_bad_dispatch_says_what_and_where_and_ships_nothing(sp, api, manager, body, field,
                                                              words):
    body = {**body, "site": sp.own.site.code} if body.get("site") == "REMINET-01" else body
    before = (Shipment.objects.count(), Kit.objects.filter(status=KitStatus.IN_TRANSIT).count())
    response = api(manager).post(url("api_shipments", sp.trial), body)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert words in str(response.json()[field]), response.json()
    assert (Shipment.objects.count(),
            Kit.objects.filter(status=KitStatus.IN_TRANSIT).count()) == before


@pytest.mark.parametrize("role", BLINDED + ["statistician"])
def test_only_the_supply_manager_dispatches(sp, make_user, api, role):
    response = api(member(make_user, role, sp)).post(url("api_shipments", sp.trial), {
        "site": sp.own.site.code, "quantities": {"LAN": 1}})
    assert response.status_code == 403


def test_a_receipt_naming_a_kit_not_in_the_shipment_is_refused_whole(sp, make_user, api,
                                                                      manager):
    shipment = supply.dispatch_shipment(sp.trial, site=sp.own.site, quantities={"LAN": 2},
                                        by=manager)
    kit = shipment.items.first().kit.number
    stranger = Kit.objects.filter(site=sp.own.site).first().number
    response = api(member(make_user, "coordinator", sp)).post(
        url("api_shipment_receipt", sp.trial, shipment.number),
        {"kits": {kit: "damaged", stranger: "missing"}})
    assert response.status_code == 400
    assert stranger in response.json()["kits"][0] and "Nothing was recorded" in \
        response.json()["kits"][0]
    shipment.refresh_from_db()
    assert shipment.status == ShipmentStatus.DISPATCHED
    assert set(Kit.objects.filter(shipment_items__shipment=shipment)
               .values_list("status", flat=True)) == {KitStatus.IN_TRANSIT}
    bad = api(member(make_user, "coordinator", sp)).post(
        url("api_shipment_receipt", sp.trial, shipment.number), {"kits": {kit: "fine"}})
    assert bad.status_code == 400 and kit in bad.json()["kits"]
    assert api(member(make_user, "coordinator", sp)).post(
        url("api_shipment_receipt", sp.trial, shipment.number), {}).status_code == 400


def test_sponsor_and_investigator_may_not_receive(sp, make_user, api):
    for role in ("sponsor", "investigator"):
        response = api(member(make_user, role, sp)).post(
            url("api_shipment_receipt", sp.trial, sp.own.supply.shipment.number), {"kits": {}})
        assert response.status_code == 403, role


# --------------------------------------------------------------------------- excursions, returns


def test_an_excursion_quarantines_then_the_supply_manager_decides(sp, make_user, api, manager):
    coordinator = api(member(make_user, "coordinator", sp))
    kits = list(Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE)
                .order_by("number").values_list("number", flat=True)[:2])
    response = coordinator.post(url("api_excursions", sp.trial), {
        "site": sp.own.site.code, "kits": kits, "description": "Fridge at 12 °C overnight."})
    assert response.status_code == 201, response.content
    excursion = response.json()
    assert excursion["kit_count"] == 2 and excursion["decision"] == ""
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.QUARANTINED}
    decide = url("api_excursion_decision", sp.trial, excursion["id"])
    assert coordinator.post(decide, {"decision": "release", "reason": "ok"}).status_code == 403
    no_reason = api(manager).post(decide, {"decision": "release", "reason": " "})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    done = api(manager).post(decide, {"decision": "release", "reason": "Stability data: fine."})
    assert done.status_code == 200 and done.json()["decision"] == "release"
    assert set(Kit.objects.filter(number__in=kits).values_list("status", flat=True)) == {
        KitStatus.AVAILABLE}
    twice = api(manager).post(decide, {"decision": "destroy", "reason": "No."})
    assert twice.status_code == 400 and "already decided" in twice.json()["detail"][0]
    listed = coordinator.get(url("api_excursions", sp.trial)).json()["results"]
    assert excursion["id"] in [e["id"] for e in listed]


def test_an_excursion_on_kits_not_at_the_site_quarantines_nothing(sp, make_user, api):
    coordinator = api(member(make_user, "coordinator", sp))
    elsewhere = Kit.objects.filter(site=sp.other.site, status=KitStatus.AVAILABLE).first()
    here = Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE).first()
    before = Excursion.objects.count()
    response = coordinator.post(url("api_excursions", sp.trial), {
        "site": sp.own.site.code, "kits": [here.number, elsewhere.number, "ZZZZZZ"],
        "description": "Power cut."})
    assert response.status_code == 400
    assert elsewhere.number in response.json()["kits"][0] and "ZZZZZZ" in \
        response.json()["kits"][0]
    assert Excursion.objects.count() == before
    assert Kit.objects.get(pk=here.pk).status == KitStatus.AVAILABLE
    other_site = coordinator.post(url("api_excursions", sp.trial), {
        "site": sp.other.site.code, "kits": [elsewhere.number], "description": "x"})
    assert other_site.status_code == 400 and "site" in other_site.json()


def test_an_excursion_description_or_decision_reason_over_its_limit_is_refused(sp, make_user,
                                                                              api, manager):
    coordinator = api(member(make_user, "coordinator", sp))
    kit = Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE).first()
    before = Excursion.objects.count()
    response = coordinator.post(url("api_excursions", sp.trial), {
        "site": sp.own.site.code, "kits": [kit.number], "description": "d" * 2_001})
    assert response.status_code == 400
    assert response.json()["description"] == [
        "The description is 2,001 characters; at most 2,000 are allowed."]
    assert Excursion.objects.count() == before
    assert Kit.objects.get(pk=kit.pk).status == KitStatus.AVAILABLE
    excursion = coordinator.post(url("api_excursions", sp.trial), {
        "site": sp.own.site.code, "kits": [kit.number], "description": "Fridge at 12 °C."}).json()
    decide = url("api_excursion_decision", sp.trial, excursion["id"])
    response = api(manager).post(decide, {"decision": "release", "reason": "r" * 1_001})
    assert response.status_code == 400
    assert response.json()["reason"] == [
        "The reason is 1,001 characters; at most 1,000 are allowed."]
    assert Excursion.objects.get(pk=excursion["id"]).decision == ""


def test_returns_by_the_site_and_destruction_by_the_supply_manager(sp, make_user, api,
                                                                   manager):
    coordinator = api(member(make_user, "coordinator", sp))
    records = url("api_site_kit_records", sp.trial, sp.own.site.code)
    kit = Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE).first()
    unknown = coordinator.post(records, {"kind": "returned", "kits": [kit.number, "QQQQQQ"],
                                         "reason": "Study stopped at the site"})
    assert unknown.status_code == 400 and "QQQQQQ" in unknown.json()["kits"][0]
    assert Kit.objects.get(pk=kit.pk).status == KitStatus.AVAILABLE
    returned = coordinator.post(records, {"kind": "returned", "kits": [kit.number],
                                          "reason": "Unused"})
    assert returned.status_code == 200 and returned.json()["kits"] == 1
    assert coordinator.post(records, {"kind": "destroyed", "kits": [kit.number]}
                            ).status_code == 403
    assert api(member(make_user, "sponsor", sp)).post(
        records, {"kind": "returned", "kits": [kit.number]}).status_code == 403
    destroyed = api(manager).post(records, {"kind": "destroyed", "kits": [kit.number],
                                            "reason": "Incinerated by the depot"})
    assert destroyed.status_code == 200
    assert Kit.objects.get(pk=kit.pk).status == KitStatus.DESTROYED
    bad_kind = coordinator.post(records, {"kind": "lost", "kits": [kit.number]})
    assert bad_kind.status_code == 400 and "kind" in bad_kind.json()


# --------------------------------------------------------------------------- resupply


@pytest.mark.parametrize("role", BLINDED)
def test_resupply_requests_are_refused_to_blinded_roles(sp, make_user, api, role):
    ResupplyRequest.objects.create(trial=sp.trial, site=sp.own.site, raised_at=timezone.now(),
                                   quantities={"LAN": 5, "PBO": 0})
    response = api(member(make_user, role, sp)).get(url("api_resupply_requests", sp.trial))
    assert response.status_code == 403
    assert_no_arm(sp.trial, response.content.decode(), f"resupply requests for {role}")


@pytest.mark.parametrize("role", ["statistician", "supply_manager"])
def test_open_resupply_requests_for_the_unblinded(sp, make_user, api, manager, role):
    ResupplyRequest.objects.create(trial=sp.trial, site=sp.own.site, raised_at=timezone.now(),
                                   quantities={"LAN": 5, "PBO": 0})
    ResupplyRequest.objects.create(trial=sp.trial, site=sp.other.site, raised_at=timezone.now(),
                                   quantities={"LAN": 1, "PBO": 1}, closed_at=timezone.now())
    user = manager if role == "supply_manager" else member(make_user, role, sp)
    response = api(user).get(url("api_resupply_requests", sp.trial))
    assert response.status_code == 200
    assert [(r["site"], r["quantities"]) for r in response.json()] == [
        (sp.own.site.code, {"LAN": 5, "PBO": 0})]


# --------------------------------------------------------------------------- a participant's kits


def test_a_participants_kits_and_the_kit_assigned_at_an_injection(sp, make_user, api):
    participant = sp.own.participant
    client = api(member(make_user, "investigator", sp))
    kits = url("api_participant_kits", sp.trial, participant.study_id)
    first = client.get(kits)
    assert first.status_code == 200
    assert [a["kit"] for a in first.json()] == [participant.allocation.kit_code]
    assert first.json()[0]["current"] is True and first.json()[0]["release"] is None
    visit = injection_visit(participant)
    response = client.post(kits, {"visit": visit.pk})
    assert response.status_code == 201, response.content
    given = response.json()
    kit = Kit.objects.get(number=given["kit"])
    assert kit.arm == participant.allocation.arm and kit.site == participant.site
    assert given["visit"] == visit.pk and given["kit_status"] == KitStatus.ASSIGNED
    assert_no_arm(sp.trial, response.content.decode(), "a kit assigned")
    again = client.post(kits, {"visit": visit.pk})  # the visit keeps its kit
    assert again.status_code == 201 and again.json()["kit"] == given["kit"]
    assert len(client.get(kits).json()) == 2


def test_a_kit_is_assigned_only_at_a_dispensing_visit_of_the_participant(sp, make_user, api):
    participant = sp.own.participant
    client = api(member(make_user, "coordinator", sp))
    kits = url("api_participant_kits", sp.trial, participant.study_id)
    baseline = participant.visits.get(code="baseline")
    response = client.post(kits, {"visit": baseline.pk})
    assert response.status_code == 400 and "No kit is dispensed" in response.json()["visit"][0]
    foreign = injection_visit(sp.other.participant)
    assert client.post(kits, {"visit": foreign.pk}).json()["visit"] == [
        "No such visit of this participant."]
    assert client.post(kits, {"visit": "x"}).status_code == 400
    assert api(member(make_user, "sponsor", sp)).post(
        kits, {"visit": injection_visit(participant).pk}).status_code == 403
    screened = url("api_participant_kits", sp.trial, sp.own.screened.study_id)
    refused = client.post(screened, {"visit": baseline.pk})
    assert refused.status_code == 400
    assert KitAssignment.objects.filter(participant=sp.own.screened).count() == 0


def test_a_stock_out_says_to_contact_the_supply_manager_and_alerts_them(
        sp, make_user, api, django_capture_on_commit_callbacks):
    participant = sp.own.participant
    empty_arm_of(participant)
    visit = injection_visit(participant)
    with django_capture_on_commit_callbacks(execute=True):
        response = api(member(make_user, "coordinator", sp)).post(
            url("api_participant_kits", sp.trial, participant.study_id), {"visit": visit.pk})
    assert response.status_code == 400
    message = response.json()["detail"][0]
    assert "supply manager" in message and participant.study_id in message
    assert_no_arm(sp.trial, response.content.decode(), "the stock-out message")
    assert not KitAssignment.objects.filter(visit=visit).exists()
    request = ResupplyRequest.objects.get(site=participant.site, closed_at__isnull=True)
    assert request.stock_out
    assert any("Resupply request" in m.subject for m in mail.outbox)


def test_a_damaged_kit_is_replaced_with_a_reason(sp, make_user, api):
    participant = sp.own.participant
    client = api(member(make_user, "coordinator", sp))
    old = sp.own.supply.assignment
    replace = url("api_replace_kit", sp.trial, participant.study_id, old.pk)
    assert client.post(replace, {"kind": "stolen", "reason": "x"}).status_code == 400
    no_reason = client.post(replace, {"kind": "damaged"})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    response = client.post(replace, {"kind": "damaged", "reason": "Vial cracked"})
    assert response.status_code == 201, response.content
    new = response.json()
    assert new["kit"] != old.kit.number and "Vial cracked" in new["reason"]
    assert Kit.objects.get(number=new["kit"]).arm == participant.allocation.arm
    assert Kit.objects.get(pk=old.kit_id).status == KitStatus.DAMAGED
    history = client.get(url("api_participant_kits", sp.trial, participant.study_id)).json()
    assert history[0]["release"]["kind"] == "damaged" and history[0]["current"] is False
    twice = client.post(replace, {"kind": "lost", "reason": "again"})
    assert twice.status_code == 400 and "no longer assigned" in twice.json()["detail"][0]
    other = url("api_replace_kit", sp.trial, participant.study_id,
                sp.other.supply.assignment.pk)
    assert client.post(other, {"kind": "lost", "reason": "x"}).status_code == 404


def test_a_replacement_at_a_stock_out_keeps_the_old_kit(sp, make_user, api):
    participant = sp.own.participant
    empty_arm_of(participant)
    old = sp.own.supply.assignment
    response = api(member(make_user, "coordinator", sp)).post(
        url("api_replace_kit", sp.trial, participant.study_id, old.pk),
        {"kind": "lost", "reason": "Dropped"})
    assert response.status_code == 400 and "supply manager" in response.json()["detail"][0]
    assert Kit.objects.get(pk=old.kit_id).status != KitStatus.MISSING
    assert not hasattr(KitAssignment.objects.get(pk=old.pk), "release")


def test_the_supply_manager_sees_no_participant(sp, api, manager):
    response = api(manager).get(url("api_participant_kits", sp.trial,
                                    sp.own.participant.study_id))
    assert response.status_code == 404


# --------------------------------------------------------------------------- accountability


def test_the_accountability_log_pages_with_the_export_columns(sp, make_user, api):
    client = api(member(make_user, "sponsor", sp))
    log = url("api_site_accountability", sp.trial, sp.own.site.code)
    response = client.get(log, {"page_size": 10})
    assert response.status_code == 200
    body = response.json()
    events = KitEvent.objects.filter(site=sp.own.site) | KitEvent.objects.filter(
        kit__site=sp.own.site)
    assert body["count"] == events.distinct().count() and len(body["results"]) == 10
    assert list(body["results"][0]) == ACCOUNTABILITY_COLUMNS
    assert body["next"]
    kinds, page = set(), log + "?page_size=200"
    while page:
        answer = client.get(page).json()
        kinds |= {row["event"] for row in answer["results"]}
        page = answer["next"]
    assert kinds >= {"Made (kit list sealed)", "Shipped", "Received", "Assigned",
                     "Quarantined"}
    assert_no_arm(sp.trial, response.content.decode(), "accountability")
    tomorrow = (timezone.localdate() + dt.timedelta(days=1)).isoformat()
    assert client.get(log, {"start": tomorrow}).json()["count"] == 0
    bad = client.get(log, {"end": "yesterday"})
    assert bad.status_code == 400 and "end" in bad.json()


def test_the_serializer_has_the_accountability_columns():
    assert list(AccountabilitySerializer().fields) == ACCOUNTABILITY_COLUMNS


# --------------------------------------------------------------------------- kit lists


def test_the_statistician_generates_seals_and_verifies_a_kit_list(sp, api, statistician):
    client = api(statistician)
    expiry = (timezone.localdate() + dt.timedelta(days=700)).isoformat()
    response = client.post(url("api_kit_lists", sp.trial), {
        "kits": 40, "lot_size": 20, "expires_on": expiry, "seed": "batch-2"})
    assert response.status_code == 201, response.content
    made = response.json()
    assert made["status"] == "draft" and made["kit_count"] == 40 and made["seed"] == "batch-2"
    draft = client.get(url("api_kit_list_verify", sp.trial, made["number"])).json()
    assert draft["verified"] is False
    sealed = client.post(url("api_kit_list_seal", sp.trial, made["number"]))
    assert sealed.status_code == 200 and sealed.json()["status"] == "sealed"
    assert len(sealed.json()["digest"]) == 64
    verified = client.get(url("api_kit_list_verify", sp.trial, made["number"])).json()
    assert verified == {"number": made["number"], "status": "sealed",
                        "digest": sealed.json()["digest"], "verified": True}
    again = client.post(url("api_kit_list_seal", sp.trial, made["number"]))
    assert again.status_code == 400 and "already sealed" in again.json()["detail"][0]
    # A kit changed behind the seal's back is seen.
    Kit.objects.filter(kit_list__number=made["number"], trial=sp.trial).update(lot="FORGED")
    assert client.get(url("api_kit_list_verify", sp.trial, made["number"])).json()[
        "verified"] is False
    listed = client.get(url("api_kit_lists", sp.trial)).json()["results"]
    assert [k["number"] for k in listed] == [made["number"], made["number"] - 1]
    assert client.get(url("api_kit_list_verify", sp.trial, 99)).status_code == 404


@pytest.mark.parametrize("body, field, words", [
    ({"kits": 40, "lot_size": 20, "expires_on": "2020-01-01"}, "expires_on", "after today"),
    ({"kits": 41, "lot_size": 20, "expires_on": "2099-01-01"}, "kits", "multiple of 2"),
    ({"kits": 40, "lot_size": 3, "expires_on": "2099-01-01"}, "lot_size", "multiple of 2"),
    ({"kits": 0, "lot_size": 2, "expires_on": "2099-01-01"}, "kits", "greater than"),
    ({"kits": 40, "lot_size": 20, "expires_on": "soon"}, "expires_on", "wrong format"),
])
def test_a_bad_kit_list_generation_says_what_and_writes_nothing(sp, api, statistician, body,
                                                                field, words):
    before = (KitList.objects.count(), Kit.objects.count())
    response = api(statistician).post(url("api_kit_lists", sp.trial), body)
    assert response.status_code == 400
    assert words in str(response.json()[field]), response.json()
    assert (KitList.objects.count(), Kit.objects.count()) == before


def _table(*rows):
    return "kit_number,arm,lot,expires_on\n" + "\n".join(rows) + "\n"


def test_the_statistician_imports_a_kit_list(sp, api, statistician):
    table = _table("ACE347,LAN,LX1,2099-01-01", "ACE349,PBO,LX1,2099-01-01")
    response = api(statistician).post(url("api_kit_list_import", sp.trial), {"csv": table})
    assert response.status_code == 201, response.content
    assert response.json()["source"] == "imported" and response.json()["kit_count"] == 2


@pytest.mark.parametrize("rows, words", [
    (["ACE347,LAN,LX1,2099-01-01", "ACE347,PBO,LX1,2099-01-01"],
     ["row 3: kit number ACE347 repeats row 2"]),
    (["ACE347,LAN,LX1,2099-01-01", "ACE349,XYZ,LX1,2099-01-01"],
     ["row 3: unknown arm 'XYZ'"]),
    (["ACE347,LAN,LX1,2020-01-01", "ACE349,PBO,LX1,2020-01-01"],
     ["row 2: expires_on 2020-01-01 is not after today",
      "row 3: expires_on 2020-01-01 is not after today"]),
])
def test_a_bad_kit_table_is_refused_whole_with_its_rows(sp, api, statistician, rows, words):
    before = (KitList.objects.count(), Kit.objects.count())
    response = api(statistician).post(url("api_kit_list_import", sp.trial),
                                      {"csv": _table(*rows)})
    assert response.status_code == 400
    messages = response.json()["csv"]
    for expected in words:
        assert any(m.startswith(expected) for m in messages), messages
    assert (KitList.objects.count(), Kit.objects.count()) == before


def test_a_kit_number_already_in_the_trial_is_refused(sp, api, statistician):
    taken = Kit.objects.filter(trial=sp.trial).first().number
    response = api(statistician).post(url("api_kit_list_import", sp.trial), {
        "csv": _table(f"{taken},LAN,LX1,2099-01-01", "ACE349,PBO,LX1,2099-01-01")})
    assert response.status_code == 400
    assert response.json()["csv"] == [f"row 2: kit number {taken} is already in this trial"]


@pytest.mark.parametrize("role", BLINDED)
def test_kit_lists_are_the_statisticians(sp, make_user, api, manager, role):
    for user in (member(make_user, role, sp), manager):
        client = api(user)
        assert client.get(url("api_kit_lists", sp.trial)).status_code == 403
        assert client.post(url("api_kit_list_import", sp.trial),
                           {"csv": _table("ACE347,LAN,LX1,2099-01-01")}).status_code == 403
        assert client.get(url("api_kit_list_verify", sp.trial,
                              sp.own.supply.kit_list.number)).status_code == 403


# --------------------------------------------------------------------------- a trial without kits


def test_the_rectal_trial_has_no_supply_a_clear_404(rectal_ready, make_user, api):
    trial, coordinator = rectal_ready
    participant = factories.randomised(trial, by=coordinator)
    site = participant.site
    statistician = make_user("statistician", trial)
    superuser = make_user(is_superuser=True, is_staff=True)
    gets = [url("api_supply_stock", trial), url("api_site_kits", trial, site.code),
            url("api_shipments", trial), url("api_shipment", trial, 1),
            url("api_excursions", trial), url("api_resupply_requests", trial),
            url("api_site_accountability", trial, site.code), url("api_kit_lists", trial),
            url("api_kit_list_verify", trial, 1),
            url("api_participant_kits", trial, participant.study_id)]
    posts = [(url("api_shipments", trial), {"site": site.code, "quantities": {"A": 1}}),
             (url("api_shipment_receipt", trial, 1), {"kits": {}}),
             (url("api_excursions", trial), {"site": site.code, "kits": ["X"],
                                             "description": "x"}),
             (url("api_excursion_decision", trial, 1), {"decision": "release", "reason": "x"}),
             (url("api_site_kit_records", trial, site.code), {"kind": "returned",
                                                              "kits": ["X"]}),
             (url("api_participant_kits", trial, participant.study_id),
              {"visit": participant.visits.first().pk}),
             (url("api_replace_kit", trial, participant.study_id, 1),
              {"kind": "lost", "reason": "x"}),
             (url("api_kit_lists", trial), {"kits": 2, "lot_size": 2,
                                            "expires_on": "2099-01-01"}),
             (url("api_kit_list_import", trial), {"csv": _table("ACE347,A,L,2099-01-01")}),
             (url("api_kit_list_seal", trial, 1), {})]
    for user in (coordinator, statistician, superuser):
        client = api(user)
        for target in gets:
            response = client.get(target)
            assert response.status_code == 404, (target, response.content)
            assert "dispenses no kits" in response.json()["detail"], target
        for target, body in posts:
            response = client.post(target, body)
            assert response.status_code == 404, (target, response.content)
            assert "dispenses no kits" in response.json()["detail"], target
    assert not KitList.objects.filter(trial=trial).exists()


# --------------------------------------------------------------------------- blinding, queries


@pytest.mark.parametrize("role", BLINDED)
def test_no_supply_endpoint_shows_an_arm_to_a_blinded_role(sp, make_user, api, manager, role,
                                                           django_capture_on_commit_callbacks):
    participant = sp.own.participant
    # Everything that can happen to kits at the site: a replacement, a return, a stock-out
    # and its resupply request, a shipment in transit.
    pharmacist = factories.site_pharmacist(sp.trial, sp.own.site)
    randomisation.replace_kit(sp.own.supply.assignment, kind="damaged", reason="Cracked",
                              by=pharmacist)
    supply.dispatch_shipment(sp.trial, site=sp.own.site, quantities={"LAN": 1, "PBO": 3},
                             by=manager)
    empty_arm_of(participant)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(supply.SupplyError):
            randomisation.assign_kit(injection_visit(participant), by=pharmacist)
    client = api(member(make_user, role, sp))
    kwargs = sp.own.kwargs()
    answered = 0
    for name in ("api_supply_stock", "api_site_kits", "api_site_accountability",
                 "api_shipments", "api_shipment", "api_excursions", "api_resupply_requests",
                 "api_participant_kits", "api_kit_lists", "api_kit_list_verify"):
        target = reverse(name, kwargs={k: kwargs[k] for k in _params(name)})
        response = client.get(target, {"page_size": 200})
        assert response.status_code in (200, 403), (name, response.status_code)
        answered += response.status_code == 200
        assert_no_arm(sp.trial, response.content.decode(), f"{name} for {role}")
    assert answered >= 7
    for message in mail.outbox:
        if set(message.to) & {u.email for u in [client.user] if u.email}:
            assert_no_arm(sp.trial, message.subject + message.body, f"e-mail to {role}")


def _params(name: str) -> list[str]:
    for _route, pattern in url_patterns():
        if pattern.name == name:
            return list(pattern.pattern.regex.groupindex)
    raise LookupError(name)


@pytest.mark.parametrize("name, args", [
    ("api_supply_stock", []), ("api_site_kits", ["site"]), ("api_shipments", []),
    ("api_shipment", ["shipment"]), ("api_excursions", []),
    ("api_site_accountability", ["site"]), ("api_participant_kits", ["participant"]),
    ("api_kit_lists", []), ("api_resupply_requests", [])])
def test_supply_lists_do_not_grow_with_rows(sp, make_user, api, manager, statistician, name,
                                            args):
    user = statistician  # sees every supply list, arms included
    values = {"site": sp.own.site.code, "shipment": sp.own.supply.shipment.number,
              "participant": sp.own.participant.study_id}
    target = url(name, sp.trial, *[values[a] for a in args])
    client = api(user)
    client.get(target)  # warm the per-process protocol cache

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(target, {"page_size": 200})
        assert response.status_code == 200, response.content
        return len(ctx.captured_queries)

    injected(sp.own.participant)
    before = count()
    # More of everything: shipments, kits, excursions, events, assignments, kit lists,
    # resupply requests.
    for _ in range(2):
        supply.dispatch_shipment(sp.trial, site=sp.own.site, quantities={"LAN": 2, "PBO": 2},
                                 by=manager)
    kits = Kit.objects.filter(site=sp.own.site, status=KitStatus.AVAILABLE)[:3]
    supply.report_excursion(sp.own.site, numbers=[k.number for k in kits],
                            description="Warm", by=factories.site_pharmacist(sp.trial,
                                                                             sp.own.site))
    for visit in sp.own.participant.visits.filter(code="injection").order_by(
            "target_date")[:2]:
        randomisation.assign_kit(visit, by=factories.site_pharmacist(sp.trial, sp.own.site))
    kitlist.generate(sp.trial, by=statistician, kits=4, lot_size=2,
                     expires_on=timezone.localdate() + dt.timedelta(days=400))
    for site in (sp.own.site, sp.other.site):
        ResupplyRequest.objects.filter(site=site).update(closed_at=timezone.now())
        ResupplyRequest.objects.create(trial=sp.trial, site=site, raised_at=timezone.now(),
                                       quantities={"LAN": 1, "PBO": 1})
    assert count() == before, name


def test_a_table_that_is_not_csv_is_refused_with_its_row(sp, api, statistician):
    # A lone carriage return ends a row (old spreadsheets); a field of 140,000 characters
    # (past the csv module's limit) is no kit table.
    ok = api(statistician).post(url("api_kit_list_import", sp.trial), {
        "csv": "kit_number,arm,lot,expires_on\rACE347,LAN,LX1,2099-01-01\r"
               "ACE349,PBO,LX1,2099-01-01\r"})
    assert ok.status_code == 201, ok.content
    before = KitList.objects.count()
    response = api(statistician).post(url("api_kit_list_import", sp.trial), {
        "csv": "kit_number,arm,lot,expires_on\n" + "A" * 140_000 + ",LAN,LX1,2099-01-01\n"})
    assert response.status_code == 400, response.content
    assert response.json()["csv"] == [
        "row 2: not a CSV table: field larger than field limit (131072)"]
    assert KitList.objects.count() == before
