"""Concurrent dispensing and randomisation on PostgreSQL (issue 19): many coordinators of one
site assigning kits at the same instant never get the same kit; when the stock runs out, the
losers get the stock-out error and nothing of theirs is written; randomisations at a site with
little stock never assign more kits than it holds. Real connections, one per thread."""
from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from patients.models import Participant, Status, Visit
from randomisation import services
from randomisation.models import Allocation
from scheduling.services import record_visit_done, save_crf_and_replan as save_crf
from supply.models import Kit, KitAssignment, KitEvent, KitStatus, ResupplyRequest
from supply.services import SupplyError, current_assignment
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 16


def all_at_once(work, items) -> list:
    """Run ``work(item)`` for every item in its own thread and connection, released together
    by a barrier: the outcome of each (the result, or the exception raised)."""
    barrier = threading.Barrier(len(items))
    outcomes: list = [None] * len(items)

    def worker(index, item):
        try:
            connection.ensure_connection()  # connected before the barrier: a real race
            barrier.wait(timeout=30)
            outcomes[index] = work(item)
        except BaseException as exc:  # the caller sorts them out
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, item)) for i, item in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return outcomes


def on_injections(trial, site, coordinator, n: int) -> list[Visit]:
    """``n`` participants of ``site`` randomised 10 days ago, their first injection given (the
    kit assigned at randomisation): each one's next injection visit, no kit yet."""
    visits = []
    for _ in range(n):
        p = factories.randomised(trial, site, by=coordinator, days_ago=10, tumour_grade="G2",
                                 l1_response="stable_disease")
        first = Visit.objects.get(participant=p, code="first_injection")
        given_on = min(first.window_closes, timezone.localdate())
        record_visit_done(first, done_on=given_on, by=coordinator)
        save_crf(p, "injection", {"injection_date": given_on.isoformat(), "dose_given": True,
                                  "kit_code": current_assignment(first).kit.number},
                 by=coordinator, complete=True, visit=first)
        visits.append(Visit.objects.filter(participant=p, code="injection")
                      .order_by("target_date").first())
    assert all(v is not None and current_assignment(v) is None for v in visits)
    return visits


def assign(user):
    def work(visit):
        return services.assign_kit(Visit.objects.select_related("participant__trial",
                                                                "participant__site")
                                   .get(pk=visit.pk), by=user)
    return work


def one_current_kit_each_and_no_kit_twice(site):
    current = list(KitAssignment.objects.filter(release__isnull=True)
                   .values_list("kit_id", "visit_id"))
    assert len({kit for kit, _ in current}) == len(current), "a kit assigned twice"
    assert len({visit for _, visit in current}) == len(current), "a visit with two kits"
    assert KitEvent.objects.filter(kind="assigned").count() == KitAssignment.objects.count()
    assigned = Kit.objects.filter(site=site, status__in=[KitStatus.ASSIGNED,
                                                         KitStatus.DISPENSED])
    assert assigned.count() == len(current)


def test_sixteen_dispensings_at_one_site_at_once_take_sixteen_different_kits(protocols,
                                                                             make_user):
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)
    site = reminet.sites.order_by("code").first()
    # Everyone on one arm: every dispensing competes for the same kits.
    factories.stocked(reminet, by=statistician, per_arm=2 * THREADS + 4)
    factories.scripted_list(reminet, by=statistician, arms=["LAN"], slots_per_stratum=40)
    visits = on_injections(reminet, site, coordinator, THREADS)

    outcomes = all_at_once(assign(coordinator), visits)

    assert all(isinstance(o, KitAssignment) for o in outcomes), outcomes
    kits = [o.kit for o in outcomes]
    assert len({k.pk for k in kits}) == THREADS, "two dispensings got the same kit"
    assert {k.arm.code for k in kits} == {"LAN"} and {k.site_id for k in kits} == {site.pk}
    for visit, outcome in zip(visits, outcomes):
        assert current_assignment(visit).kit_id == outcome.kit_id
    one_current_kit_each_and_no_kit_twice(site)
    assert Kit.objects.filter(site=site, arm__code="LAN", status=KitStatus.AVAILABLE).count() == 4


def test_with_the_stock_exhausted_the_losers_get_the_stock_out_and_nothing_written(
        protocols, make_user):
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)
    site = reminet.sites.order_by("code").first()
    left = 6  # kits of the arm left at the site once everyone had their first injection
    factories.stocked(reminet, by=statistician, per_arm=THREADS + left)
    factories.scripted_list(reminet, by=statistician, arms=["LAN"], slots_per_stratum=40)
    visits = on_injections(reminet, site, coordinator, THREADS)
    assert Kit.objects.filter(site=site, arm__code="LAN",
                              status=KitStatus.AVAILABLE).count() == left
    before = KitAssignment.objects.count(), KitEvent.objects.count()

    outcomes = all_at_once(assign(coordinator), visits)

    won = [o for o in outcomes if isinstance(o, KitAssignment)]
    lost = [o for o in outcomes if not isinstance(o, KitAssignment)]
    assert len(won) == left and len({o.kit_id for o in won}) == left
    assert all(isinstance(o, SupplyError) and o.code == "stock_out" for o in lost), lost
    assert all("supply manager" in o.messages[0] for o in lost)
    for visit, outcome in zip(visits, outcomes):
        current = current_assignment(visit)
        if isinstance(outcome, KitAssignment):
            assert current.kit_id == outcome.kit_id
        else:  # nothing half-written: no assignment, no event at this visit
            assert current is None
            assert not KitEvent.objects.filter(visit=visit).exists()
    assert (KitAssignment.objects.count(), KitEvent.objects.count()) == (
        before[0] + left, before[1] + left)
    assert not Kit.objects.filter(site=site, arm__code="LAN", status=KitStatus.AVAILABLE)
    one_current_kit_each_and_no_kit_twice(site)
    # The losers' alerts raised one resupply request for the site, not one each.
    assert list(ResupplyRequest.objects.values_list("site_id", "stock_out")) == [(site.pk, True)]


def test_randomisations_at_a_site_with_little_stock_never_over_assign(protocols, make_user):
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)
    site = reminet.sites.order_by("code").first()
    per_arm = 5
    factories.stocked(reminet, by=statistician, per_arm=per_arm)
    factories.scripted_list(reminet, by=statistician, arms=["LAN", "PBO"], slots_per_stratum=40)
    participants = [factories.eligible_participant(reminet, site, by=coordinator,
                                                   tumour_grade="G2",
                                                   l1_response="stable_disease")
                    for _ in range(THREADS)]

    outcomes = all_at_once(lambda p: services.randomise(p, by=coordinator), participants)

    won = [o for o in outcomes if isinstance(o, Allocation)]
    lost = [o for o in outcomes if not isinstance(o, Allocation)]
    assert 0 < len(won) <= 2 * per_arm and len(won) + len(lost) == THREADS
    assert all(isinstance(o, services.RandomisationError) and o.code == "stock_out"
               for o in lost), lost
    allocations = list(Allocation.objects.select_related("arm", "participant"))
    assert len(allocations) == len(won)
    # No slot skipped by a rolled-back randomisation, none taken twice.
    assert sorted(a.slot.sequence for a in allocations) == list(range(1, len(won) + 1))
    assignments = list(KitAssignment.objects.select_related("kit", "participant__allocation"))
    assert len(assignments) == len(won) and len({a.kit_id for a in assignments}) == len(won)
    for a in assignments:
        assert a.kit.arm_id == a.participant.allocation.arm_id
        assert a.kit.number == a.participant.allocation.kit_code
    assert max(Counter(a.kit.arm.code for a in assignments).values()) <= per_arm
    one_current_kit_each_and_no_kit_twice(site)
    losers = [p.pk for p, o in zip(participants, outcomes) if not isinstance(o, Allocation)]
    assert not Participant.objects.filter(pk__in=losers).exclude(status=Status.SCREENED).exists()
    assert not KitEvent.objects.filter(participant_id__in=losers).exists()
