"""The enrolment report built end to end by a real Celery worker on Redis.

The worker is the production command (``celery -A config worker``) in a process of its own,
pointed at this test's PostgreSQL database (see tests/patients/test_celery_worker.py).
"""
from __future__ import annotations

import time
import uuid

import pytest
from django.urls import reverse

from config.celery import app
from reports import services as reports, tasks
from reports.models import ReportRequest, ReportStatus
from tests import factories
from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401
from tests.patients.test_celery_worker import worker  # noqa: F401  (the fixture)
from tests.randomisation.test_blinding import assert_no_arm

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def wait_until_finished(pk: int, log, seconds: float = 60) -> ReportRequest:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        report = ReportRequest.objects.get(pk=pk)
        if report.finished:
            return report
        time.sleep(0.2)
    raise AssertionError("the worker did not finish the report within "
                         f"{seconds} s:\n" + log.read_text()[-3000:])


@needs_pdftotext
def test_a_real_worker_builds_the_report_the_sponsor_asked_for(reminet, statistician, make_user,
                                                              client_for, worker, tmp_path):
    outbox, log = worker
    assert not app.conf.task_always_eager
    factories.sealed_list(reminet, by=statistician)
    site = reminet.sites.order_by("code").first()
    coordinator = make_user("coordinator", reminet, site)
    for days_ago in (120, 30):
        factories.randomised(reminet, site, by=coordinator, days_ago=days_ago)
    sponsor = make_user("sponsor", reminet)

    response = client_for(sponsor).post(reverse("report_request", args=[reminet.slug]),
                                        {"kind": "enrolment"})
    assert response.status_code == 302
    report = wait_until_finished(ReportRequest.objects.get().pk, log)
    assert report.status == ReportStatus.DONE, report.error
    assert report.attempts == 1 and report.dispatched_at is not None
    assert "outcomes.build_report" in log.read_text()

    pdf = client_for(sponsor).get(reverse("report_download", args=[reminet.slug, report.pk]))
    text = pdf_text(pdf.content, tmp_path)
    assert "Enrolment report - REMINET" in text and "All arms (pooled: blinded)" in text
    assert_no_arm(reminet, text, "the sponsor's report built by the worker")


def test_a_task_redelivered_after_its_worker_died_builds_the_report(reminet, statistician,
                                                                    make_user, worker):
    """What a killed worker leaves: the request running, claimed by its task id, heartbeat
    fresh. The broker redelivers the same task (acks_late, reject_on_worker_lost): the worker
    takes the claim again and builds it; another task id would not."""
    outbox, log = worker
    sponsor = make_user("sponsor", reminet)
    report = ReportRequest.objects.create(trial=reminet, kind="enrolment", requested_by=sponsor,
                                          requested_at=reminet.versions.first().loaded_at)
    task_id = str(uuid.uuid4())
    assert reports.claim(report.pk, token=task_id)

    tasks.build_report.apply_async((report.pk,), task_id=str(uuid.uuid4()))  # a duplicate
    tasks.build_report.apply_async((report.pk,), task_id=task_id)             # the redelivery
    report = wait_until_finished(report.pk, log)
    assert report.status == ReportStatus.DONE and report.claimed_by == task_id
    assert report.attempts == 2  # the dead worker's, and the rebuild
    assert "'skipped'" in log.read_text()


REQUEST_WITH_REDIS_DOWN = """
import json, sys, time
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(pk=int(sys.argv[1])))
start = time.monotonic()
response = client.post(sys.argv[2], {"kind": "enrolment"})
print(json.dumps({"status": response.status_code, "seconds": time.monotonic() - start}))
"""


def test_redis_down_the_request_waits_then_the_periodic_job_gets_it_built(reminet, make_user,
                                                                          worker):
    """A web process whose broker is unreachable (nothing listens on port 1) still answers the
    request at once and leaves it queued; with Redis back, the periodic job hands it over and
    the real worker builds it."""
    import json
    import os
    import subprocess
    import sys

    from tests.patients.test_celery_worker import ROOT, database_url

    outbox, log = worker
    sponsor = make_user("sponsor", reminet)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "DATABASE_URL": database_url(), "CELERY_BROKER_URL": "redis://127.0.0.1:1/12"}
    web = subprocess.run([sys.executable, "-c", REQUEST_WITH_REDIS_DOWN, str(sponsor.pk),
                          reverse("report_request", args=[reminet.slug])],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert web.returncode == 0, web.stderr[-3000:]
    answer = json.loads(web.stdout.strip().splitlines()[-1])
    assert answer["status"] == 302 and answer["seconds"] < 5, answer
    report = ReportRequest.objects.get()
    assert report.status == ReportStatus.QUEUED and report.dispatched_at is None

    assert tasks.redispatch_reports.apply().get() == 1  # beat's job, Redis back
    report = wait_until_finished(report.pk, log)
    assert report.status == ReportStatus.DONE and report.attempts == 1
