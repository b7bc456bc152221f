"""The demo's sponsor meets the Reports page with a report already built."""
from __future__ import annotations

from django.core.management import call_command
from django.urls import reverse

from reports.models import ReportRequest, ReportStatus


def test_the_demo_sponsor_finds_a_built_report_and_may_request_another(
        db, settings, django_user_model, client_for, django_capture_on_commit_callbacks):
    settings.DEBUG = True
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_setup", stdout=open("/dev/null", "w"))
    sponsor = django_user_model.objects.get(username="sponsor")
    statistician = django_user_model.objects.get(username="statistician")
    reports = ReportRequest.objects.select_related("trial")
    assert {(r.trial.slug, r.requested_by.username, r.status) for r in reports} == {
        ("rectal-resection", "sponsor", ReportStatus.DONE),
        ("reminet", "sponsor", ReportStatus.DONE),
        ("reminet", "statistician", ReportStatus.DONE),
    }
    client = client_for(sponsor)
    page = client.get(reverse("report_list", args=["reminet"])).content.decode()
    own = reports.get(trial__slug="reminet", requested_by=sponsor)
    theirs = reports.get(trial__slug="reminet", requested_by=statistician)
    assert reverse("report_download", args=["reminet", own.pk]) in page
    assert reverse("report_download", args=["reminet", theirs.pk]) not in page
    assert "built with rights you do not have" in page
    pdf = client.get(reverse("report_download", args=["reminet", own.pk]))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("report_request", args=["reminet"]), {"kind": "enrolment"})
    assert response.status_code == 302
    assert reports.filter(requested_by=sponsor, status=ReportStatus.DONE).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        call_command("demo_setup", stdout=open("/dev/null", "w"))
    assert ReportRequest.objects.count() == 4, "a second run builds no more"
