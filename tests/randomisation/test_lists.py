"""Allocation lists: generated from a recorded seed, imported from CSV, sealed and verified."""
from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEvent
from randomisation import generator, services
from randomisation.models import AllocationList, AllocationSlot, ListStatus
from tests import factories


@pytest.fixture
def reminet(kit_coded, statistician):
    """The lists' tests run on a blinded trial whose allocation list carries the kit codes
    (REMINET's kits come from its kit list: tests/supply)."""
    from trials.models import Membership

    Membership.objects.create(user=statistician, trial=kit_coded, role="statistician")
    return kit_coded


def slots_of(alist):
    return services.canonical_rows(alist)


def test_same_seed_gives_the_same_list_byte_for_byte(reminet, statistician):
    a = services.generate_list(reminet, by=statistician, seed="abc", slots_per_stratum=20)
    b = services.generate_list(reminet, by=statistician, seed="abc", slots_per_stratum=20)
    arms_a = [(k, s, arm, blk, size) for k, s, arm, _kit, blk, size in slots_of(a)]
    arms_b = [(k, s, arm, blk, size) for k, s, arm, _kit, blk, size in slots_of(b)]
    assert arms_a == arms_b
    # Kit codes differ between list versions: they are unique in the trial.
    assert {r[3] for r in slots_of(a)}.isdisjoint({r[3] for r in slots_of(b)})


def test_a_fresh_seed_is_recorded_when_none_is_given(reminet, statistician):
    alist = services.generate_list(reminet, by=statistician, slots_per_stratum=4)
    assert len(alist.seed) == 32


def test_list_covers_every_stratum_with_whole_blocks(rectal, statistician):
    alist = services.generate_list(rectal, by=statistician, seed="s", slots_per_stratum=10)
    keys = set(alist.strata.values_list("key", flat=True))
    assert len(keys) == 3 * 2  # three sites × two levels of metastatic extent
    for stratum in alist.strata.all():
        assert stratum.size >= 10
        arms = list(stratum.slots.order_by("sequence").values_list("arm__code", flat=True))
        assert arms.count("A") == arms.count("B")  # whole blocks of a 1:1 ratio


def test_kit_codes_are_unique_unambiguous_and_only_in_blinded_trials(reminet, rectal, statistician):
    blind = services.generate_list(reminet, by=statistician, seed="k", slots_per_stratum=30)
    kits = list(blind.slots.values_list("kit_code", flat=True))
    assert len(set(kits)) == len(kits)
    assert all(len(k) == 6 and set(k) <= set(generator.KIT_ALPHABET) for k in kits)
    open_list = services.generate_list(rectal, by=statistician, seed="k", slots_per_stratum=4)
    assert set(open_list.slots.values_list("kit_code", flat=True)) == {None}


def test_only_the_statistician_generates_lists(reminet, make_user):
    with pytest.raises(PermissionDenied):
        services.generate_list(reminet, by=make_user("data_manager", reminet))


def test_sealing_stores_the_digest_and_writes_it_to_the_audit_log(reminet, statistician):
    alist = services.seal_and_activate(
        services.generate_list(reminet, by=statistician, seed="x", slots_per_stratum=4),
        by=statistician)
    assert alist.status == ListStatus.ACTIVE and len(alist.digest) == 64
    event = AuditEvent.objects.get(action="allocation_list.sealed")
    assert alist.digest in event.message
    assert services.verify_list(alist).ok


def test_a_new_list_version_retires_the_old_one(reminet, statistician):
    first = services.seal_and_activate(
        services.generate_list(reminet, by=statistician, seed="1", slots_per_stratum=4),
        by=statistician)
    second = services.seal_and_activate(
        services.generate_list(reminet, by=statistician, seed="2", slots_per_stratum=4),
        by=statistician)
    first.refresh_from_db()
    assert (first.status, second.status) == (ListStatus.RETIRED, ListStatus.ACTIVE)
    assert services.active_list(reminet) == second
    with pytest.raises(ValidationError, match="only a draft"):
        services.seal_and_activate(first, by=statistician)


def test_tampering_with_a_sealed_list_is_detected(reminet, statistician):
    alist = services.seal_and_activate(
        services.generate_list(reminet, by=statistician, seed="t", slots_per_stratum=4),
        by=statistician)
    slot = alist.slots.order_by("pk").first()
    other_arm = reminet.arms.exclude(pk=slot.arm_id).first()
    # Only a hand in the database could do this: the ORM refuses (slots are immutable), and
    # on PostgreSQL so does the table's trigger, until a superuser disables it.
    with factories.tampering("randomization_allocationslot"):
        AllocationSlot.objects.filter(pk=slot.pk).update(arm=other_arm)
    assert not services.verify_list(alist).ok
    with pytest.raises(CommandError, match="do not match"):
        call_command("verify_allocation_list", reminet.slug)


def test_commands_generate_seal_and_verify(reminet, statistician, capsys):
    call_command("generate_allocation_list", reminet.slug, "--by", statistician.username,
                 "--seed", "cmd", "--slots", "4", "--seal")
    alist = AllocationList.objects.get(trial=reminet)
    assert alist.status == ListStatus.ACTIVE and alist.seed == "cmd"
    call_command("verify_allocation_list", reminet.slug)
    assert f"list #{alist.number}: OK {alist.digest}" in capsys.readouterr().out


def test_command_refuses_a_user_who_is_not_statistician(reminet, make_user):
    user = make_user("sponsor", reminet)
    with pytest.raises(CommandError, match="may not"):
        call_command("generate_allocation_list", reminet.slug, "--by", user.username)


# ---------------------------------------------------------------- CSV import

HEADER = "stratum,sequence,arm,kit_code\n"
G1 = "grade=G1;l1_response=objective_response"


def test_import_a_valid_table(reminet, statistician):
    content = HEADER + f"{G1},1,LAN,ACE347\n{G1},2,PBO,ACE349\n"
    alist = services.import_list(reminet, content.encode(), by=statistician)
    assert alist.source == "imported" and alist.slots.count() == 2
    sealed = services.seal_and_activate(alist, by=statistician)
    assert services.verify_list(sealed).ok


@pytest.mark.parametrize("rows, expected", [
    (f"{G1},1,LAN,ACE347\nnowhere,2,PBO,ACE349\n", "row 3: unknown stratum 'nowhere'"),
    (f"{G1},1,XYZ,ACE347\n", "row 2: unknown arm 'XYZ'"),
    (f"{G1},1,LAN,ACE347\n{G1},3,PBO,ACE349\n", "row 3: stratum '" + G1 + "': sequence 3 where 2"),
    (f"{G1},1,LAN,ACE347\n{G1},1,PBO,ACE349\n", "sequence 1 where 2 was expected"),
    (f"{G1},1,LAN,ACE347\n{G1},2,PBO,ACE347\n", "row 3: kit code 'ACE347' repeats row 2"),
    (f"{G1},1,LAN,\n", "row 2: kit_code is missing"),
    (f"{G1},1,LAN,AB0\n", "row 2: kit code 'AB0' must be 6 characters"),
    (f"{G1},x,LAN,ACE347\n", "row 2: sequence 'x' is not a positive whole number"),
    ("", "The file has no rows."),
])
def test_a_bad_table_is_refused_whole_with_row_numbers(reminet, statistician, rows, expected):
    with pytest.raises(services.ListImportError) as info:
        services.import_list(reminet, (HEADER + rows).encode(), by=statistician)
    assert any(expected in m for m in info.value.messages), info.value.messages
    assert not AllocationList.objects.exists()


def test_import_refuses_a_wrong_header(reminet, statistician):
    with pytest.raises(services.ListImportError, match="header must be"):
        services.import_list(reminet, b"a,b,c\n1,2,3\n", by=statistician)


def test_import_refuses_kits_already_used_in_the_trial(reminet, statistician):
    services.import_list(reminet, (HEADER + f"{G1},1,LAN,ACE347\n").encode(), by=statistician)
    with pytest.raises(services.ListImportError, match="already used"):
        services.import_list(reminet, (HEADER + f"{G1},1,LAN,ACE347\n").encode(), by=statistician)


def test_import_refuses_non_utf8(reminet, statistician):
    with pytest.raises(services.ListImportError, match="UTF-8"):
        services.import_list(reminet, HEADER.encode() + b"\xff\xfe,1,LAN,ACE347\n", by=statistician)
