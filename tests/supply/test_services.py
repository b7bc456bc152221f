"""Investigational product supply: kit lists, shipments and receipt, the kit assigned at
randomisation and at each dispensing visit, the injection form checked against it, replacement,
quarantine, expiry, and resupply requests raised and e-mailed once. docs/supply.md."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from patients.models import Visit
from randomisation import kitlist
from randomisation import services as randomisation
from randomisation.models import Allocation
from scheduling.services import save_crf_and_replan
from supply import resupply, services
from supply.models import (
    Kit,
    KitAssignment,
    KitEvent,
    KitList,
    KitStatus,
    ResupplyRequest,
    Shipment,
)
from tests import factories
from trials.protocol import validate_definition

TODAY = timezone.localdate


@pytest.fixture
def reminet_bare(reminet, statistician, coordinator_factory):
    """REMINET with a sealed allocation list but no kits anywhere yet."""
    from randomisation.services import generate_list, seal_and_activate

    seal_and_activate(generate_list(reminet, by=statistician, seed="s"), by=statistician)
    return reminet, coordinator_factory(reminet)


def _kit_list(trial, statistician, kits=40, lot_size=10, expires_on=None, seed="k"):
    return kitlist.seal(kitlist.generate(
        trial, by=statistician, kits=kits, lot_size=lot_size, seed=seed,
        expires_on=expires_on or TODAY() + dt.timedelta(days=700)), by=statistician)


def _stock(trial, site, per_arm):
    shipment = services.dispatch_shipment(trial, site=site, by=factories.supply_manager(trial),
                                          quantities={a.code: per_arm
                                                      for a in trial.arms.all()})
    return services.receive_shipment(shipment, by=factories.site_pharmacist(trial, site),
                                     outcomes={})


def _injection(trial, p, visit, kit, given=True, by=None):
    day = min(visit.target_date, TODAY())
    data = {"injection_date": day.isoformat(), "dose_given": given}
    if given:
        data["kit_code"] = kit
    else:
        data["not_given_reason"] = "patient_decision"
    return save_crf_and_replan(p, "injection", data, by=by, complete=True, visit=visit)


# --- protocols -------------------------------------------------------------------------------

def test_the_rectal_trial_declares_no_kits_and_reminet_its_supply(rectal, reminet):
    assert rectal.definition["supply"] == {"kits": False}  # its note is for the author only
    assert services.settings_of(rectal) is None
    settings = services.settings_of(reminet)
    assert settings["dispensing"]["visits"] == ["first_injection", "injection"]
    assert "kit_code_length" not in reminet.definition["randomisation"]


@pytest.mark.parametrize("change, path", [
    (lambda d: d["supply"]["dispensing"].update(visits=["nowhere"]), "supply.dispensing.visits[0]"),
    (lambda d: d["supply"]["dispensing"].update(field="dose_given"), "supply.dispensing.field"),
    (lambda d: d["supply"]["dispensing"].update(crf="nothing"), "supply.dispensing.crf"),
    (lambda d: d["randomisation"].update(kit_code_length=6), "randomisation.kit_code_length"),
    (lambda d: d["supply"].pop("resupply"), "supply"),
])
def test_a_bad_supply_section_is_refused_with_its_path(reminet, change, path):
    import copy

    definition = copy.deepcopy(reminet.definition)
    change(definition)
    problems = validate_definition(definition)
    assert any(p.path == path for p in problems), problems


# --- kit lists ---------------------------------------------------------------------------------

def test_a_generated_kit_list_is_reproducible_and_every_lot_holds_every_arm(reminet, statistician):
    first = kitlist.generate(reminet, by=statistician, kits=40, lot_size=10, seed="same",
                             expires_on=TODAY() + dt.timedelta(days=400))
    rows = list(first.kits.order_by("pk").values_list("number", "arm__code", "lot"))
    assert len({r[0] for r in rows}) == 40
    for lot in {r[2] for r in rows}:
        arms = [r[1] for r in rows if r[2] == lot]
        assert sorted(set(arms)) == ["LAN", "PBO"] and arms.count("LAN") == arms.count("PBO")
    text = kitlist.canonical_text(first)
    Kit.objects.filter(kit_list=first).delete()
    first.delete()
    again = kitlist.generate(reminet, by=statistician, kits=40, lot_size=10, seed="same",
                             expires_on=TODAY() + dt.timedelta(days=400))
    assert kitlist.canonical_text(again).split("--\n")[1] == text.split("--\n")[1]


@pytest.mark.parametrize("kwargs, field", [
    (dict(kits=41), "kits"), (dict(kits=0), "kits"), (dict(lot_size=3), "lot_size"),
    (dict(expires_on=dt.date(2020, 1, 1)), "expires_on"),
])
def test_a_kit_list_with_bad_parameters_is_refused(reminet, statistician, kwargs, field):
    args = dict(kits=40, lot_size=10, expires_on=TODAY() + dt.timedelta(days=400))
    with pytest.raises(ValidationError) as info:
        kitlist.generate(reminet, by=statistician, **{**args, **kwargs})
    assert field in info.value.message_dict
    assert not KitList.objects.exists() and not Kit.objects.exists()


def test_an_imported_kit_list_is_refused_whole_with_its_rows(reminet, statistician):
    later = (TODAY() + dt.timedelta(days=300)).isoformat()
    text = "\n".join(["kit_number,arm,lot,expires_on",
                      f"3479AC,LAN,L1,{later}", f"3479AE,PBO,L1,{later}",
                      f"3479AC,PBO,L1,{later}",            # row 4: repeats row 2
                      f"3479AF,XYZ,L1,{later}",            # row 5: unknown arm
                      "3479AH,LAN,L2,2020-01-01",          # row 6: expired; L2 one arm
                      "34,LAN,L1,2030-13-01"])             # row 7: bad number and date
    with pytest.raises(kitlist.KitListImportError) as info:
        kitlist.import_list(reminet, text, by=statistician)
    rows = dict(info.value.rows)
    assert "repeats row 2" in rows[4]
    assert "unknown arm" in rows[5]
    assert "not after today" in " ".join(r for n, r in info.value.rows if n == 6)
    assert any("does not hold every arm" in r for _n, r in info.value.rows)
    assert any(n == 7 for n, _r in info.value.rows)
    assert not KitList.objects.exists() and not Kit.objects.exists()


def test_a_sealed_kit_list_is_verified_against_its_digest(reminet, statistician):
    kit_list = _kit_list(reminet, statistician)
    assert kit_list.digest and kitlist.verify(kit_list)
    assert KitEvent.objects.filter(kind="made").count() == 40
    kit = kit_list.kits.first()
    other = reminet.arms.exclude(pk=kit.arm_id).get()
    Kit.objects.filter(pk=kit.pk).update(arm=other)
    assert not kitlist.verify(kit_list)
    with pytest.raises(ValidationError, match="already sealed"):
        kitlist.seal(kit_list, by=statistician)


# --- shipments -----------------------------------------------------------------------------

def test_a_shipment_mixes_arms_and_its_receipt_records_damaged_and_missing_kits(
        reminet, statistician):
    _kit_list(reminet, statistician)
    site = reminet.sites.order_by("code").first()
    shipment = services.dispatch_shipment(reminet, site=site, by=factories.supply_manager(reminet),
                                          quantities={"LAN": 3, "PBO": 3})
    numbers = list(shipment.items.values_list("kit__number", flat=True))
    assert numbers == sorted(numbers) and len(numbers) == 6
    assert set(Kit.objects.filter(number__in=numbers).values_list("status", flat=True)) == {
        KitStatus.IN_TRANSIT}
    services.receive_shipment(shipment, by=factories.site_pharmacist(reminet, site),
                              outcomes={numbers[0].lower(): "damaged", numbers[1]: "missing"})
    status = dict(Kit.objects.filter(number__in=numbers).values_list("number", "status"))
    assert status[numbers[0]] == KitStatus.DAMAGED and status[numbers[1]] == KitStatus.MISSING
    assert [status[n] for n in numbers[2:]] == [KitStatus.AVAILABLE] * 4
    with pytest.raises(services.SupplyError, match="already received"):
        services.receive_shipment(shipment, by=factories.site_pharmacist(reminet, site),
                                  outcomes={})


def test_a_receipt_naming_a_kit_not_in_the_shipment_is_refused_whole(reminet, statistician):
    _kit_list(reminet, statistician)
    site = reminet.sites.order_by("code").first()
    shipment = services.dispatch_shipment(reminet, site=site, by=factories.supply_manager(reminet),
                                          quantities={"LAN": 2, "PBO": 2})
    with pytest.raises(services.SupplyError, match="XXXXXX are not in shipment 1"):
        services.receive_shipment(shipment, by=factories.site_pharmacist(reminet, site),
                                  outcomes={"XXXXXX": "received"})
    shipment.refresh_from_db()
    assert shipment.status == "dispatched"
    assert not Kit.objects.filter(status=KitStatus.AVAILABLE).exists()


@pytest.mark.parametrize("quantities, message", [
    ({"LAN": 2, "XYZ": 1}, "unknown arm 'XYZ'"), ({"LAN": -1}, "whole number"),
    ({"LAN": 0, "PBO": 0}, "at least one kit"), ({"LAN": 500}, "depot has 20 usable kits"),
])
def test_a_bad_shipment_is_refused_and_nothing_moves(reminet, statistician, quantities, message):
    _kit_list(reminet, statistician)
    with pytest.raises(services.SupplyError, match=message):
        services.dispatch_shipment(reminet, site=reminet.sites.first(),
                                   by=factories.supply_manager(reminet), quantities=quantities)
    assert not Shipment.objects.exists()
    assert set(Kit.objects.values_list("status", flat=True)) == {KitStatus.AT_DEPOT}


def test_a_site_receives_no_kit_expiring_within_the_delivery_time(reminet, statistician):
    _kit_list(reminet, statistician, expires_on=TODAY() + dt.timedelta(days=10))
    with pytest.raises(services.SupplyError, match="depot has 0 usable kits"):
        services.dispatch_shipment(reminet, site=reminet.sites.first(),
                                   by=factories.supply_manager(reminet), quantities={"LAN": 1})


# --- randomisation and dispensing ----------------------------------------------------------

def test_randomisation_assigns_the_first_kit_of_the_participants_arm(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator)
    allocation = randomisation.randomise(p, by=coordinator)
    assignment = KitAssignment.objects.get(participant=p)
    assert assignment.kit.number == allocation.kit_code
    assert assignment.kit.arm_id == allocation.arm_id
    assert assignment.visit.code == "first_injection"
    assert assignment.kit.status == KitStatus.ASSIGNED and assignment.kit.site_id == p.site_id


def test_no_randomisation_at_a_site_without_stock_of_every_arm(
        reminet_bare, statistician, django_capture_on_commit_callbacks):
    trial, coordinator = reminet_bare
    _kit_list(trial, statistician)
    site = trial.sites.order_by("code").first()
    shipment = services.dispatch_shipment(trial, site=site, by=factories.supply_manager(trial),
                                          quantities={"LAN": 3})
    services.receive_shipment(shipment, by=factories.site_pharmacist(trial, site), outcomes={})
    manager = factories.supply_manager(trial)
    manager.email = "supply@example.org"
    manager.save()
    mail.outbox.clear()
    p = factories.eligible_participant(trial, site, by=coordinator)
    with pytest.raises(randomisation.RandomisationError) as info, \
            django_capture_on_commit_callbacks(execute=True):
        randomisation.randomise(p, by=coordinator)
    assert info.value.code == "stock_out"
    assert "supply manager" in info.value.messages[0]
    assert "LAN" not in info.value.messages[0] and "PBO" not in info.value.messages[0]
    assert not Allocation.objects.exists() and not KitAssignment.objects.exists()
    request = ResupplyRequest.objects.get(site=site)
    assert request.stock_out and request.quantities["PBO"] > 0
    sent = [m for m in mail.outbox if "Resupply request" in m.subject]
    assert len(sent) == 1 and set(sent[0].to) == {"supply@example.org",
                                                  "depot.reminet@example.org"}
    with pytest.raises(randomisation.RandomisationError):
        randomisation.randomise(p, by=coordinator)
    assert ResupplyRequest.objects.count() == 1
    assert len([m for m in mail.outbox if "Resupply request" in m.subject]) == 1


def _next_injection(p, by) -> Visit:
    """The first 28-day injection visit: it follows the first injection, given here."""
    first = KitAssignment.objects.get(participant=p)
    _injection(p.trial, p, first.visit, first.kit.number, by=by)
    return Visit.objects.filter(participant=p, code="injection").order_by("target_date").first()


def test_an_injection_visit_gets_a_kit_of_the_arm_never_expiring_before_its_window_closes(
        reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    allocation = Allocation.objects.get(participant=p)
    visit = _next_injection(p, coordinator)
    # The earliest-expiring kits of the arm at the site expire before this visit's window closes.
    soon = list(Kit.objects.filter(site=p.site, arm=allocation.arm, status=KitStatus.AVAILABLE)
                .order_by("number")[:3])
    Kit.objects.filter(pk__in=[k.pk for k in soon]).update(
        expires_on=visit.window_closes - dt.timedelta(days=1))
    assignment = randomisation.assign_kit(visit, by=coordinator)
    assert assignment.kit.arm_id == allocation.arm_id
    assert assignment.kit.expires_on >= visit.window_closes
    assert assignment.kit.pk not in {k.pk for k in soon}
    assert randomisation.assign_kit(visit, by=coordinator).pk == assignment.pk  # kept


def test_quarantined_kits_are_never_assigned_and_a_stock_out_alerts(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    allocation = Allocation.objects.get(participant=p)
    numbers = list(Kit.objects.filter(site=p.site, arm=allocation.arm,
                                      status=KitStatus.AVAILABLE).values_list("number", flat=True))
    others = list(Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE)
                  .exclude(arm=allocation.arm).values_list("number", flat=True)[:2])
    services.report_excursion(p.site, numbers=numbers + others, description="fridge at 14 °C for 6 h",
                              by=factories.site_pharmacist(trial, p.site))
    visit = _next_injection(p, coordinator)
    with pytest.raises(services.SupplyError) as info:
        randomisation.assign_kit(visit, by=coordinator)
    assert info.value.code == "stock_out" and "supply manager" in info.value.messages[0]
    assert not KitAssignment.objects.filter(visit=visit).exists()
    assert ResupplyRequest.objects.filter(site=p.site, stock_out=True).count() == 1


def test_the_injection_form_accepts_the_assigned_kit_only(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    allocation = Allocation.objects.get(participant=p)
    first = KitAssignment.objects.get(participant=p)
    other_arm = Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE).exclude(
        arm=allocation.arm).first()
    same_arm = Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE,
                                  arm=allocation.arm).first()
    for wrong in (other_arm.number, same_arm.number, "XXXXXX"):
        with pytest.raises(ValidationError) as info:
            _injection(trial, p, first.visit, wrong, by=coordinator)
        assert "kit_code" in info.value.message_dict
        assert first.kit.number in info.value.message_dict["kit_code"][0]
    assert not p.crf_records.filter(crf_code="injection").exists()
    _injection(trial, p, first.visit, f" {first.kit.number.lower()} ", by=coordinator)
    first.kit.refresh_from_db()
    assert first.kit.status == KitStatus.DISPENSED
    assert KitEvent.objects.filter(kit=first.kit, kind="dispensed", participant=p).count() == 1


def test_an_injection_recorded_without_an_assigned_kit_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    visit = _next_injection(p, coordinator)
    kit = Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE).first()
    with pytest.raises(ValidationError, match="No kit is assigned"):
        _injection(trial, p, visit, kit.number, by=coordinator)


def test_an_injection_not_given_puts_the_kit_back_in_stock(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    first = KitAssignment.objects.get(participant=p)
    _injection(trial, p, first.visit, None, given=False, by=coordinator)
    first.kit.refresh_from_db()
    assert first.kit.status == KitStatus.AVAILABLE
    assert first.release.kind == "not_given"
    assert services.current_assignment(first.visit) is None


def test_a_damaged_kit_is_replaced_with_a_reason(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=2)
    first = KitAssignment.objects.get(participant=p)
    with pytest.raises(ValidationError):
        randomisation.replace_kit(first, kind="damaged", reason=" ", by=coordinator)
    new = randomisation.replace_kit(first, kind="damaged", reason="vial cracked", by=coordinator)
    first.kit.refresh_from_db()
    assert first.kit.status == KitStatus.DAMAGED
    assert new.kit.arm_id == first.kit.arm_id and new.visit_id == first.visit_id
    assert "vial cracked" in new.reason and first.kit.number in new.reason
    assert services.current_assignment(first.visit).pk == new.pk
    with pytest.raises(services.SupplyError, match="no longer assigned"):
        randomisation.replace_kit(first, kind="lost", reason="again", by=coordinator)


def test_the_rectal_trial_randomises_without_kits(rectal_ready):
    trial, coordinator = rectal_ready
    p = factories.randomised(trial, by=coordinator)
    assert Allocation.objects.get(participant=p).kit_code == ""
    assert not KitAssignment.objects.exists() and not Kit.objects.exists()
    with pytest.raises(services.SupplyError, match="dispenses no kits"):
        services.dispatch_shipment(trial, site=p.site, by=coordinator, quantities={"A": 1})


# --- resupply ----------------------------------------------------------------------------------

def test_resupply_is_raised_when_stock_covers_too_few_visits_and_e_mailed_once(
        reminet_bare, statistician, django_capture_on_commit_callbacks):
    trial, coordinator = reminet_bare
    _kit_list(trial, statistician)
    site = trial.sites.order_by("code").first()
    _stock(trial, site, per_arm=4)
    manager = factories.supply_manager(trial)
    manager.email = "supply@example.org"
    manager.save()
    levels = {level.arm: level for level in resupply.levels(site)}
    assert levels["LAN"].usable == 4 and levels["LAN"].due == 0 and not levels["LAN"].short
    mail.outbox.clear()
    # Randomising takes kits of one arm or the other: the stock of an arm soon covers no more
    # than the protocol's 2 visits.
    while not any(level.short for level in resupply.levels(site)):
        with django_capture_on_commit_callbacks(execute=True):
            randomisation.randomise(factories.eligible_participant(trial, site, by=coordinator),
                                    by=coordinator)
    assert ResupplyRequest.objects.filter(site=site).count() == 1
    request = ResupplyRequest.objects.get(site=site)
    assert not request.stock_out and sum(request.quantities.values()) > 0
    assert resupply.raise_request(site) is None
    assert not resupply.send(request.pk, token="another-worker")
    sent = [m for m in mail.outbox if "Resupply request" in m.subject]
    assert len(sent) == 1 and "supply@example.org" in sent[0].to
    # The resupply shipment closes the request.
    services.dispatch_shipment(trial, site=site, by=manager, quantities=request.quantities,
                               request=request)
    request.refresh_from_db()
    assert request.closed_at is not None


def test_expired_kits_on_the_shelf_are_not_usable_stock(reminet_bare, statistician):
    trial, coordinator = reminet_bare
    _kit_list(trial, statistician)
    site = trial.sites.order_by("code").first()
    _stock(trial, site, per_arm=5)
    Kit.objects.filter(site=site).update(expires_on=TODAY() + dt.timedelta(days=3))
    assert all(level.usable == 0 and level.short for level in resupply.levels(site))
    assert services.arms_out_of_stock(site, TODAY() + dt.timedelta(days=3))


def test_an_injection_recorded_before_kits_were_dispensed_here_keeps_its_number(reminet_ready):
    """A record from before the supply amendment (written then without a kit check) can still be
    corrected; a new kit number on it is checked like any other."""
    from crfs.services import save_crf

    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=30)
    first = KitAssignment.objects.get(participant=p)
    visit = _next_injection(p, coordinator)
    day = min(visit.target_date, TODAY()).isoformat()
    record = save_crf(p, "injection", {"injection_date": day, "dose_given": True,
                                       "kit_code": "ACEFHK"}, by=coordinator, complete=True,
                      visit=visit)
    save_crf_and_replan(p, "injection", {"injection_date": day, "dose_given": True,
                                         "kit_code": "ACEFHK", "not_given_details": ""},
                        by=coordinator, complete=True, record=record, reason="date checked")
    with pytest.raises(ValidationError, match="No kit is assigned"):
        save_crf_and_replan(p, "injection", {"injection_date": day, "dose_given": True,
                                             "kit_code": first.kit.number},
                            by=coordinator, complete=True, record=record, reason="kit typo")


def test_the_daily_check_raises_requests_as_expiry_comes_nearer_and_mails_once(
        reminet_bare, statistician, settings, django_capture_on_commit_callbacks):
    """(A site with no stock at all is short too: the daily check raises its request.)"""
    from supply import tasks

    assert settings.CELERY_BEAT_SCHEDULE["supply-stock"]["task"] == "supply.check_stock"
    trial, _coordinator = reminet_bare
    _kit_list(trial, statistician)
    for each in trial.sites.all():
        _stock(trial, each, per_arm=6)
    site = trial.sites.order_by("code").first()
    manager = factories.supply_manager(trial)
    manager.email = "supply@example.org"
    manager.save()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.check_stock() == {"raised": 0}
    # The kits now expire within the delivery time: none of them is usable stock any more.
    Kit.objects.filter(site=site).update(expires_on=TODAY() + dt.timedelta(days=7))
    for _run in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            tasks.check_stock()
    assert ResupplyRequest.objects.filter(site=site).count() == 1
    assert len([m for m in mail.outbox if "Resupply request" in m.subject]) == 1
    assert "REMINET-01" in mail.outbox[-1].subject


@pytest.mark.postgres
def test_kit_events_and_assignments_cannot_be_rewritten_in_the_database(reminet_ready):
    from django.db import IntegrityError, connection, transaction

    trial, coordinator = reminet_ready
    factories.randomised(trial, by=coordinator)
    for sql in ("UPDATE supply_kitevent SET reason = 'x'", "DELETE FROM supply_kitevent",
                "UPDATE supply_kitassignment SET reason = 'x'",
                "DELETE FROM supply_kitassignment"):
        with pytest.raises(IntegrityError, match="refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)


def test_a_stock_out_while_a_request_is_open_alerts_once(
        reminet_bare, statistician, django_capture_on_commit_callbacks):
    trial, coordinator = reminet_bare
    _kit_list(trial, statistician)
    site = trial.sites.order_by("code").first()
    manager = factories.supply_manager(trial)
    manager.email = "supply@example.org"
    manager.save()
    with django_capture_on_commit_callbacks(execute=True):
        request = resupply.raise_request(site)  # no stock at all: short
    assert request is not None and not request.stock_out
    mail.outbox.clear()
    for _attempt in range(2):  # two participants' kits refused
        with django_capture_on_commit_callbacks(execute=True):
            assert resupply.raise_request(site, stock_out=True) is None
    request.refresh_from_db()
    assert request.stock_out and ResupplyRequest.objects.count() == 1
    alerts = [m for m in mail.outbox if "Stock-out at REMINET-01" in m.subject]
    assert len(alerts) == 1 and set(alerts[0].to) == {"supply@example.org",
                                                      "depot.reminet@example.org"}
