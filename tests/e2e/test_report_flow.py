"""A sponsor asks for the enrolment report, watches it build, and downloads it. In a real
browser: the page's script polls the report's state while a worker builds it."""
from __future__ import annotations

import pytest
from django.utils import timezone

from reports import services as reports
from reports.models import ReportRequest, ReportStatus
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sponsor_requests_watches_and_downloads_the_enrolment_report(page, protocols, make_user,
                                                                     request):
    trial = protocols["reminet"]
    statistician = make_user("statistician", trial)
    factories.sealed_list(trial, by=statistician, slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, trial.sites.order_by("code").first())
    for _ in range(3):
        factories.randomised(trial, by=coordinator)
    sponsor = make_user("sponsor", trial, None, username="sophie")

    login(page, "sophie", PASSWORD)
    page.goto(f"/trials/{trial.slug}/")
    page.click("text=Reports")
    page.click("button:has-text('Build the Enrolment report')")  # built at once: eager Celery
    row = page.locator("table.reports tbody tr").first
    assert "Done" in row.inner_text()
    with page.expect_download() as download:
        row.locator("a:has-text('PDF')").click()
    assert download.value.suggested_filename.startswith("enrolment-reminet")
    assert open(download.value.path(), "rb").read(5) == b"%PDF-"

    # A report still queued for a worker: the page follows it until it is done.
    waiting = ReportRequest.objects.create(trial=trial, kind="enrolment", requested_by=sponsor,
                                           requested_at=timezone.now())
    page.reload()
    row = page.locator(f"tr[data-report-status$='/{waiting.pk}/status/']")
    assert row.locator("progress").is_visible()
    assert reports.build(waiting.pk, token="e2e-worker") == "done"  # the worker's part
    row.locator("a:has-text('PDF')").wait_for()
    assert "Done" in row.inner_text() and not row.locator("progress").is_visible()
    assert ReportRequest.objects.get(pk=waiting.pk).status == ReportStatus.DONE
    screenshot(page, f"report-flow-{request.node.callspec.id}")
