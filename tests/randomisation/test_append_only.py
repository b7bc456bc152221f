"""Allocations are append-only, and verifying a list checks every allocation against its slot.

On PostgreSQL, triggers refuse UPDATE, DELETE and TRUNCATE of allocations, slots and the rows
beside them (a correction is a new row). A hand with the database's owner rights can still
disable a trigger: ``verify_allocation_list`` then finds what it changed (arm, kit code,
stratum, order) and names the participant. Tampering here is done as that hand would, through
``factories.tampering`` (triggers disabled as superuser on PostgreSQL, the ORM's queryset
``update`` on SQLite, which has no triggers).
"""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from randomisation import services
from randomisation.models import Allocation, AllocationSlot
from tests import factories

TABLES = ["randomization_allocation", "randomization_allocationslot",
          "randomization_stratumcorrection"]


@pytest.fixture
def kit_coded_ready(kit_coded, make_user, coordinator_factory):
    """A blinded trial whose slots carry the kit codes, three participants randomised in one
    stratum."""
    statistician = make_user("statistician", kit_coded)
    factories.sealed_list(kit_coded, by=statistician, slots_per_stratum=8)
    coordinator = coordinator_factory(kit_coded)
    participants = []
    for _ in range(3):
        p = factories.eligible_participant(kit_coded, by=coordinator, tumour_grade="G2",
                                           l1_response="stable_disease")
        services.randomise(p, by=coordinator)
        participants.append(p)
    return kit_coded, statistician, coordinator, participants


def _alist(trial):
    return services.active_list(trial)


@pytest.mark.postgres
def test_allocations_and_slots_cannot_be_rewritten_or_truncated_in_the_database(
        kit_coded_ready):
    trial, _statistician, coordinator, participants = kit_coded_ready
    allocation = Allocation.objects.get(participant=participants[0])
    services.correct_stratum(allocation, factor="grade", correct_level="G1", reason="typo",
                             by=coordinator)
    statements = [
        "UPDATE randomization_allocation SET arm_id = arm_id",
        "UPDATE randomization_allocation SET kit_code = 'XXXXXX'",
        "DELETE FROM randomization_allocation",
        "UPDATE randomization_allocationslot SET arm_id = arm_id",
        "DELETE FROM randomization_allocationslot",
        "UPDATE randomization_stratumcorrection SET reason = 'x'",
        "DELETE FROM randomization_stratumcorrection",
    ]
    for sql in statements:
        with pytest.raises(IntegrityError, match="refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)
    for table in TABLES + ["randomization_emergencyallocation"]:
        # Test databases allow TRUNCATE (the runner empties them with it) unless asked not to;
        # every other database refuses it always.
        with pytest.raises(IntegrityError, match="TRUNCATE .* refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending FK checks
                cursor.execute("SET LOCAL ctms.refuse_truncate = 'on'")
                cursor.execute(f"TRUNCATE {table} CASCADE")
    assert Allocation.objects.count() == 3
    # And randomising still works: taking a slot moves the counter, it updates no slot.
    p = factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                       l1_response="stable_disease")
    assert services.randomise(p, by=coordinator).slot.sequence == 4


def test_an_untouched_list_verifies_with_its_allocations(kit_coded_ready, capsys):
    trial, *_rest = kit_coded_ready
    result = services.verify_list(_alist(trial))
    assert result.ok and result.problems == ()
    call_command("verify_allocation_list", trial.slug)
    assert "allocations match their slots" in capsys.readouterr().out


def test_an_arm_changed_in_the_database_is_reported_with_the_participant(kit_coded_ready,
                                                                         capsys):
    trial, _statistician, _coordinator, participants = kit_coded_ready
    tampered = Allocation.objects.get(participant=participants[1])
    other_arm = trial.arms.exclude(pk=tampered.arm_id).first()
    with factories.tampering("randomization_allocation"):
        Allocation.objects.filter(pk=tampered.pk).update(arm=other_arm)
    result = services.verify_list(_alist(trial))
    assert result.seal_ok and not result.ok  # the list itself is intact
    assert [p.study_id for p in result.problems] == [participants[1].study_id]
    assert "arm differs from slot" in result.problems[0].problem
    with pytest.raises(CommandError, match="do not match their slots"):
        call_command("verify_allocation_list", trial.slug)
    out = capsys.readouterr().out
    assert f"TAMPERED ALLOCATION {participants[1].study_id}: arm differs" in out
    assert other_arm.code not in out and other_arm.label not in out  # never the arms


def test_a_kit_code_and_a_stratum_changed_are_reported(kit_coded_ready):
    trial, _statistician, _coordinator, participants = kit_coded_ready
    first, second = (Allocation.objects.get(participant=p) for p in participants[:2])
    with factories.tampering("randomization_allocation"):
        Allocation.objects.filter(pk=first.pk).update(kit_code="ZZZZZZ")
        Allocation.objects.filter(pk=second.pk).update(
            stratum_key="grade=G1;l1_response=stable_disease",
            strata={"grade": "G1", "l1_response": "stable_disease"})
    problems = {(p.study_id, p.problem.split(" ")[0]) for p in
                services.verify_list(_alist(trial)).problems}
    assert (participants[0].study_id, "kit") in problems
    assert (participants[1].study_id, "stratum") in problems


def test_slots_taken_out_of_order_or_a_slot_moved_are_reported(kit_coded_ready):
    trial, _statistician, _coordinator, participants = kit_coded_ready
    first, second, third = (Allocation.objects.get(participant=p) for p in participants)
    slot_1, slot_2 = first.slot, second.slot
    spare = AllocationSlot.objects.get(stratum=third.slot.stratum, sequence=6)
    with factories.tampering("randomization_allocation"):
        # The first two participants' slots swapped (through a spare slot: each slot is one
        # allocation's, each kit code one allocation's), with their arms and kits, so that
        # only the order tells; the third
        # moved to a slot beyond the counter.
        Allocation.objects.filter(pk=first.pk).update(slot=spare, kit_code="SWAP01")
        Allocation.objects.filter(pk=second.pk).update(slot=slot_1, arm=slot_1.arm,
                                                       kit_code=slot_1.kit_code)
        Allocation.objects.filter(pk=first.pk).update(slot=slot_2, arm=slot_2.arm,
                                                      kit_code=slot_2.kit_code)
        Allocation.objects.filter(pk=third.pk).update(slot=spare, arm=spare.arm,
                                                      kit_code=spare.kit_code)
    problems = [str(p) for p in services.verify_list(_alist(trial)).problems]
    assert any(p.startswith(participants[1].study_id) and "#1 after slot #2" in p
               for p in problems), problems
    assert any(p.startswith(participants[2].study_id) and "beyond the stratum's counter" in p
               for p in problems), problems
    assert any("#3 below the counter taken by no allocation" in p for p in problems), problems
    assert len(problems) == 3, problems  # nothing else: arms and kits follow their slots


def test_allocations_dated_out_of_order_are_not_tampering(kit_coded_ready):
    """An emergency allocation, or the demo's past data, is dated earlier than the allocation
    before it: the order is the order written, not the dates."""
    trial, _statistician, _coordinator, participants = kit_coded_ready
    first, second = (Allocation.objects.get(participant=p) for p in participants[:2])
    with factories.tampering("randomization_allocation"):
        Allocation.objects.filter(pk=second.pk).update(
            randomised_at=first.randomised_at - dt.timedelta(days=5))
    assert services.verify_list(_alist(trial)).ok


def test_the_verification_page_names_the_tampered_allocation(kit_coded_ready, client,
                                                             client_for):
    from django.urls import reverse

    trial, statistician, _coordinator, participants = kit_coded_ready
    tampered = Allocation.objects.get(participant=participants[2])
    with factories.tampering("randomization_allocation"):
        Allocation.objects.filter(pk=tampered.pk).update(
            arm=trial.arms.exclude(pk=tampered.arm_id).first())
    client_for(statistician)
    response = client.post(reverse("allocation_lists", args=[trial.slug]),
                           {"action": "verify", "list": _alist(trial).pk}, follow=True)
    body = response.content.decode()
    assert "matches its seal" in body
    assert "do not match their slots" in body and participants[2].study_id in body
