"""The SAE clock job over a real Celery worker on the Redis broker CI provides (the worker is
the production command, pointed at this test's PostgreSQL database; it writes e-mails to files
the test reads): an overdue report is escalated once, however often the job runs."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from config.celery import app
from safety import services, tasks
from safety.models import SAEReminder
from tests.patients.test_celery_worker import worker  # noqa: F401  (the fixture)
from tests.safety.conftest import complete_values

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_escalates_an_overdue_sae_once(world, sae, worker):  # noqa: F811
    outbox, log = worker
    assert not app.conf.task_always_eager
    # The site became aware 30 hours ago (the worker runs on the real clock, not a travelled one).
    services.save_draft(sae, complete_values(sae, aware_at=sae.aware_at - dt.timedelta(hours=30)),
                        by=world["investigator"])

    tasks.check_sae_clock.delay()
    deadline = time.monotonic() + 60
    messages: list[str] = []
    while time.monotonic() < deadline:
        messages = [p.read_text() for p in outbox.iterdir()]
        if messages and not SAEReminder.objects.filter(sent_at=None).exists():
            break
        time.sleep(0.3)
    assert messages, "no e-mail from the worker within 60 s:\n" + log.read_text()[-3000:]
    # The job again: once the worker says it ran, still one e-mail (the reminder row exists).
    tasks.check_sae_clock.delay()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and log.read_text().count(
            "Task safety.check_sae_clock") < 4:  # received and succeeded, twice
        time.sleep(0.3)
    assert log.read_text().count("Task safety.check_sae_clock") >= 4, log.read_text()[-3000:]
    messages = [p.read_text() for p in outbox.iterdir()]
    [message] = messages
    assert "Overdue SAE report" in message and sae.number in message
    assert world["officer"].email in message and world["investigator"].email in message
    assert f"https://trials.example.org/trials/reminet/safety/{sae.pk}/" in message
    assert SAEReminder.objects.get().sent_at is not None
    assert "safety.send_sae_reminder" in log.read_text()
