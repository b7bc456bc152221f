"""Faults of the services the application stands on.

- PostgreSQL unreachable: a clear 503 page (and a JSON 503 for the API) with Retry-After, made
  without the database or the session; a connection lost in the middle of a service leaves
  nothing half-written, and one lost during or after a COMMIT is not reported as "nothing was
  saved" (the randomisation's cases: ``tests/randomisation/test_commit_faults.py``).
- Redis unreachable: every page still works; mail is sent from the web process instead; the
  reminder job's work waits in the database for the next run.
(A worker killed mid-task: ``bench/fault_worker_kill.py``, run against real services.)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tests import factories
from tests.conftest import DEAD_BROKER
from tests.crawl import crawl

ROOT = Path(__file__).resolve().parent.parent

DATABASE_DOWN = r"""
import json, django
django.setup()
from django.test import Client
c = Client()
out = {}
for method, url in [("get", "/"), ("get", "/accounts/login/"), ("post", "/accounts/login/"),
                    ("get", "/trials/reminet/"), ("get", "/api/v1/trials/"), ("get", "/health/")]:
    r = getattr(c, method)(url)
    out[f"{method} {url}"] = {"status": r.status_code, "retry": r.get("Retry-After"),
                              "type": r.get("Content-Type"), "body": r.content.decode()[:3000],
                              "csp": r.get("Content-Security-Policy")}
print(json.dumps(out))
"""


def test_postgresql_unreachable_gives_a_clear_503_page_and_api_error():
    """A real server process whose DATABASE_URL points at a port nobody listens on."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ALLOW_ASYNC_UNSAFE",)}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.base", DEBUG="false",
               DATABASE_URL="postgres://postgres@127.0.0.1:1/ctms", CELERY_BROKER_URL="")
    result = subprocess.run([sys.executable, "-c", DATABASE_DOWN], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    for request in ("get /", "get /accounts/login/", "post /accounts/login/",
                    "get /trials/reminet/"):
        page = answers[request]
        assert page["status"] == 503, (request, page)
        assert page["retry"] == "30"
        assert "text/html" in page["type"]
        assert "The database cannot be reached" in page["body"]
        assert "Nothing was saved" in page["body"]
        assert "frame-ancestors 'none'" in page["csp"]
    api = answers["get /api/v1/trials/"]
    assert api["status"] == 503 and api["type"] == "application/json" and api["retry"] == "30"
    assert "database cannot be reached" in json.loads(api["body"])["detail"]
    assert answers["get /health/"]["status"] == 503


@pytest.fixture
def demo(settings):
    settings.DEBUG = True
    call_command("demo_setup", stdout=open("/dev/null", "w"))


@pytest.mark.django_db
def test_with_redis_unreachable_every_page_of_every_role_still_works(demo, redis_down, client,
                                                                     client_for,
                                                                     django_user_model):
    for username in ["coordinator", "investigator", "datamanager", "sponsor", "statistician",
                     "admin"]:
        client.logout()
        client_for(django_user_model.objects.get(username=username))
        statuses: dict[str, int] = {}
        pages = crawl(client, limit=60, statuses=statuses)
        assert len(pages) > 5, username
        broken = {url: code for url, code in statuses.items() if code >= 500}
        assert not broken, (username, broken)


@pytest.mark.django_db
def test_with_redis_unreachable_an_unblinding_succeeds_and_its_mail_still_leaves(
        reminet_ready, redis_down, make_user, client, client_for):
    from randomisation.models import EmergencyUnblinding
    from tests.conftest import PASSWORD

    trial, coordinator = reminet_ready
    participant = factories.randomised(trial, trial.sites.order_by("code").first(),
                                       by=coordinator)
    make_user("sponsor", trial)
    investigator = make_user("investigator", trial, participant.site)
    client_for(investigator)
    with pytest.raises(Exception):  # the broker really is unreachable
        redis_down.connection_for_write().ensure_connection(max_retries=1)
    url = reverse("emergency_unblind", args=[trial.slug, participant.study_id])
    response = client.post(url, {"reason": "anaphylaxis", "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert EmergencyUnblinding.objects.filter(user=investigator).exists()


@pytest.mark.django_db
def test_with_redis_unreachable_reminders_wait_in_the_database_for_the_next_run(
        rectal, make_user, redis_down):
    from kombu.exceptions import OperationalError as BrokerError

    from patients import tasks
    from patients.models import ReminderDelivery, VisitReminder

    statistician = make_user("statistician", rectal)
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    site = rectal.sites.order_by("code").first()
    coordinator = make_user("coordinator", rectal, site)
    factories.randomised(rectal, site, by=coordinator, days_ago=60)
    today = timezone.localdate().isoformat()
    # Beat cannot hand the daily job to a worker: it fails to publish, and nothing is lost,
    # since nothing was taken from the database.
    from celery import Celery
    from django.conf import settings

    beat = Celery("beat", broker=DEAD_BROKER, set_as_current=False)  # own pool
    beat.conf.task_publish_retry_policy = settings.CELERY_TASK_PUBLISH_RETRY_POLICY
    with pytest.raises(BrokerError):  # what beat does: publish by name, never run here
        beat.send_task("patients.send_visit_reminders", args=[today])
    assert not VisitReminder.objects.exists()
    # The next run (Redis back, or `manage.py send_visit_reminders` by hand) sends them all.
    redis_down.conf.CELERY_TASK_ALWAYS_EAGER = True
    tasks.send_visit_reminders.delay(today)
    assert VisitReminder.objects.exists()
    assert not ReminderDelivery.objects.filter(sent_at=None).exists()
    assert [m.to for m in mail.outbox] == [[coordinator.email]]
