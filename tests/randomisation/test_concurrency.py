"""Concurrent randomisations on PostgreSQL: no slot taken twice, none skipped."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from randomisation import services
from randomisation.models import Allocation
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 20


def randomise_all_at_once(participants, user):
    barrier = threading.Barrier(len(participants))
    errors: list[BaseException] = []

    def worker(participant):
        try:
            # Connect first, so that the barrier releases threads that are ready to query at
            # the same instant, not threads still opening their connections one by one.
            connection.ensure_connection()
            barrier.wait(timeout=30)
            services.randomise(participant, by=user)
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(p,)) for p in participants]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


def test_sixteen_and_more_coordinators_never_take_the_same_slot(protocols, make_user):
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)  # all sites
    factories.sealed_list(reminet, by=statistician, slots_per_stratum=40)
    participants = [
        factories.eligible_participant(reminet, by=coordinator, tumour_grade="G2",
                                       l1_response="stable_disease")
        for _ in range(THREADS)
    ]
    randomise_all_at_once(participants, coordinator)

    sequences = sorted(Allocation.objects.values_list("slot__sequence", flat=True))
    assert sequences == list(range(1, THREADS + 1)), "exactly the first N slots, no gap, no repeat"
    assert Allocation.objects.values("participant").distinct().count() == THREADS
    kits = list(Allocation.objects.values_list("kit_code", flat=True))
    assert len(set(kits)) == THREADS


def test_concurrent_randomisations_over_several_strata(protocols, make_user):
    rectal = protocols["rectal-resection"]
    statistician = make_user("statistician", rectal)
    coordinator = make_user("coordinator", rectal)
    factories.sealed_list(rectal, by=statistician, slots_per_stratum=40)
    sites = list(rectal.sites.order_by("code"))
    participants = []
    for i in range(24):
        participants.append(factories.eligible_participant(
            rectal, sites[i % 3], by=coordinator,
            metastatic_extent=["single_organ", "multiple_organs"][i % 2]))
    randomise_all_at_once(participants, coordinator)

    by_stratum: dict[str, list[int]] = {}
    for key, seq in Allocation.objects.values_list("stratum_key", "slot__sequence"):
        by_stratum.setdefault(key, []).append(seq)
    assert len(by_stratum) == 6
    for key, seqs in by_stratum.items():
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), key
    assert sum(len(s) for s in by_stratum.values()) == 24


def test_two_clicks_for_one_participant_allocate_once(protocols, make_user):
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)
    factories.sealed_list(reminet, by=statistician, slots_per_stratum=10)
    p = factories.eligible_participant(reminet, by=coordinator)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def click():
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            services.randomise(p, by=coordinator)
            outcomes.append("ok")
        except services.RandomisationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["already_randomised", "ok"]
    assert Allocation.objects.count() == 1
    assert list(Allocation.objects.values_list("slot__sequence", flat=True)) == [1]


def test_retries_with_one_key_at_once_allocate_once_and_all_answer_it(protocols, make_user):
    """A request and its retries arriving together (the first one's answer lost): the first
    allocates, the others wait for its commit on the participant's lock and answer the same
    allocation. Two participants sent one key at once: one is allocated, the other refused."""
    reminet = protocols["reminet"]
    statistician = make_user("statistician", reminet)
    coordinator = make_user("coordinator", reminet)
    factories.sealed_list(reminet, by=statistician, slots_per_stratum=10)
    p = factories.eligible_participant(reminet, by=coordinator)
    q = factories.eligible_participant(reminet, by=coordinator)
    attempts = [p, p, p, q]
    barrier = threading.Barrier(len(attempts))
    answers: list[tuple[str, object]] = []

    def send(participant):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            allocation = services.randomise(participant, by=coordinator, key="same-key")
            answers.append((participant.study_id, allocation.pk))
        except services.RandomisationError as exc:
            answers.append((participant.study_id, exc.code))
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(a,)) for a in attempts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    allocation = Allocation.objects.get()
    if allocation.participant == p:
        expected = sorted([(p.study_id, allocation.pk)] * 3 + [(q.study_id,
                                                                 "key_other_participant")])
    else:  # q's request came first: p's three are refused
        expected = sorted([(q.study_id, allocation.pk)] + [(p.study_id,
                                                             "key_other_participant")] * 3)
    assert sorted(answers, key=str) == sorted(expected, key=str)
