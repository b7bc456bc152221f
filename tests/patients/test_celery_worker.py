"""A real Celery worker, on the Redis broker CI provides, sends the reminder digest.

The worker is the production command (``celery -A config worker``) in a process of its own,
pointed at this test's PostgreSQL database; it writes e-mails to files the test reads.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.celery import app
from patients import tasks
from patients.models import ReminderDelivery
from tests import factories

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def worker(tmp_path):
    outbox = tmp_path / "mail"
    outbox.mkdir()
    app.control.purge()  # nothing left over from an earlier run
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "DATABASE_URL": database_url(), "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
           "EMAIL_URL": f"filemail:///{outbox}", "SITE_URL": "https://trials.example.org"}
    log = open(tmp_path / "worker.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
         "-n", f"test-{uuid.uuid4().hex[:8]}@%h"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield outbox, tmp_path / "worker.log"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_a_real_worker_sends_the_reminder_digest(rectal, make_user, worker):
    outbox, log = worker
    assert not app.conf.task_always_eager
    statistician = make_user("statistician", rectal)
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    site = rectal.sites.order_by("code").first()
    coordinator = make_user("coordinator", rectal, site)
    participant = factories.randomised(rectal, site, by=coordinator, days_ago=60)

    tasks.send_visit_reminders.delay(timezone.localdate().isoformat())

    deadline = time.monotonic() + 60
    messages: list[str] = []
    while time.monotonic() < deadline:
        messages = [p.read_text() for p in outbox.iterdir()]
        if messages and not ReminderDelivery.objects.filter(sent_at=None).exists():
            break
        time.sleep(0.3)
    assert messages, "no e-mail from the worker within 60 s:\n" + log.read_text()[-3000:]
    [message] = messages
    assert f"To: {coordinator.email}" in message
    assert participant.study_id in message and "Primary tumour resection" in message
    assert f"https://trials.example.org/trials/rectal-resection/participants/" \
           f"{participant.study_id}/visits/" in message
    assert ReminderDelivery.objects.filter(sent_at__isnull=False).count() == 2
    assert "patients.send_reminder_digest" in log.read_text()
