"""Two reminder jobs at the same instant on PostgreSQL send each digest once."""
from __future__ import annotations

import threading
import time

import pytest
from celery.result import allow_join_result
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection
from django.utils import timezone

from patients import tasks
from patients.models import ReminderDelivery, VisitReminder
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class SlowSMTP(EmailBackend):
    """Takes its time, so the two runs overlap while digests are being sent."""

    def send_messages(self, messages):
        time.sleep(0.2)
        return super().send_messages(messages)


def run_twice_at_once(day: str) -> list[dict]:
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []
    results: list[dict] = []

    def worker():
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            # Not inside a task, whatever the other thread left in Celery's flag (below).
            results.append(tasks.send_visit_reminders.delay(day).get(disable_sync_subtasks=False))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    # Eager Celery marks "inside a task" in one process-wide flag, which two threads running
    # tasks at once can leave set (and later tests' ``.get()`` would then refuse to run):
    # ``allow_join_result`` puts back the value it found.
    with allow_join_result():
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors
    return results


def rows() -> tuple[int, int]:
    return VisitReminder.objects.count(), ReminderDelivery.objects.count()


def test_two_concurrent_runs_send_every_digest_once(rectal, make_user, settings):
    settings.EMAIL_BACKEND = f"{__name__}.SlowSMTP"
    statistician = make_user("statistician", rectal)
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    sites = list(rectal.sites.order_by("code"))
    everywhere = make_user("coordinator", rectal)
    staff = [make_user(role, rectal, site) for site in sites
             for role in ("coordinator", "investigator")]
    for site in sites:
        for days_ago in (60, 80):
            factories.randomised(rectal, site, by=everywhere, days_ago=days_ago)

    for attempt in range(3):  # three rounds of racing runs, on three days
        mail.outbox.clear()
        day = timezone.localdate() + timezone.timedelta(days=attempt * 10)
        before = rows()
        results = run_twice_at_once(day.isoformat())
        written = tuple(a - b for a, b in zip(rows(), before))
        counted = tuple(sum(r[k] for r in results) for k in ("reminders", "deliveries"))
        assert counted == written, "each new row counted by the one run that wrote it"
        recipients = sorted(m.to[0] for m in mail.outbox)
        assert len(recipients) == len(set(recipients)), f"a digest went twice: {recipients}"
        if attempt == 0:
            assert set(recipients) == {u.email for u in staff + [everywhere]}
    assert not ReminderDelivery.objects.filter(sent_at=None, withdrawn_at=None).exists()
    pairs = list(VisitReminder.objects.values_list("visit_id", "kind"))
    assert len(pairs) == len(set(pairs))
