"""Reports built in the background: requesting, claiming once, building the enrolment PDF with
the requester's rights, surviving a broker that is down or a worker that dies, and who may
download what."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from crfs.models import CRFRecord, CRFStatus
from patients.models import Status, Visit, VisitStatus
from reports import services as reports, tasks
from reports.enrolment import enrolment_figures
from reports.models import ReportRequest, ReportStatus
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm

needs_pdftotext = pytest.mark.usefixtures("pdftotext")


@pytest.fixture
def pdftotext():
    """The PDF tests read the text with poppler's pdftotext; without it they skip (fail under
    CI, whose .ci/system-packages installs it)."""
    if shutil.which("pdftotext") is None:
        reason = "needs pdftotext (apt-get install poppler-utils)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} — under CI it must be installed", pytrace=False)
        pytest.skip(reason)


def pdf_text(content: bytes, tmp_path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def trial(reminet, statistician, make_user):
    """REMINET (double-blind) with participants at both sites: randomised long ago and lately,
    one withdrawn, one screen failure, one only screened."""
    factories.sealed_list(reminet, by=statistician)
    sites = list(reminet.sites.order_by("code"))
    for site, ages in zip(sites, [(200, 90, 20), (150, 10)]):
        coordinator = make_user("coordinator", reminet, site)
        for days_ago in ages:
            factories.randomised(reminet, site, by=coordinator, days_ago=days_ago)
        factories.participant(reminet, site, by=coordinator)
    first = reminet.participants.filter(status=Status.RANDOMISED).order_by("pk").first()
    reminet.participants.filter(pk=first.pk).update(status=Status.WITHDRAWN)
    failed = reminet.participants.filter(status=Status.SCREENED).order_by("pk").first()
    reminet.participants.filter(pk=failed.pk).update(status=Status.SCREEN_FAILED)
    return reminet


@pytest.fixture
def sponsor(trial, make_user):
    return make_user("sponsor", trial, None, first_name="Sophie", last_name="Sponsor")


def built(trial, user, django_capture_on_commit_callbacks, kind="enrolment") -> ReportRequest:
    with django_capture_on_commit_callbacks(execute=True):
        report = reports.request_report(trial, kind, by=user)
    return ReportRequest.objects.get(pk=report.pk)


# --------------------------------------------------------------------------- the service


def test_a_request_is_recorded_audited_and_built_after_commit(
        trial, sponsor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        report = reports.request_report(trial, "enrolment", by=sponsor)
    assert report.status == ReportStatus.QUEUED and len(callbacks) == 1
    assert report.requested_by == sponsor and report.requested_at.tzinfo is not None
    assert AuditEvent.objects.filter(action="report.requested", object_id=str(report.pk)).exists()

    callbacks[0]()  # the commit: the task runs (eagerly here)
    report.refresh_from_db()
    assert report.status == ReportStatus.DONE, report.error
    assert report.attempts == 1 and report.progress == 100
    assert bytes(report.content).startswith(b"%PDF") and report.size == len(report.content)
    assert report.filename == f"enrolment-reminet-{timezone.localdate().isoformat()}.pdf"
    assert report.with_arms is False
    assert sorted(report.site_ids) == sorted(trial.sites.values_list("pk", flat=True))
    assert report.started_at <= report.finished_at
    assert AuditEvent.objects.filter(action="report.built", object_id=str(report.pk)).exists()


def test_an_unknown_kind_is_refused_by_name(trial, sponsor):
    with pytest.raises(ValidationError, match="'survival'"):
        reports.request_report(trial, "survival", by=sponsor)
    assert not ReportRequest.objects.exists()


@pytest.mark.parametrize("role", ["investigator", "coordinator"])
def test_roles_without_reports_may_not_request_one(trial, make_user, role):
    user = make_user(role, trial, trial.sites.order_by("code").first())
    with pytest.raises(PermissionDenied):
        reports.request_report(trial, "enrolment", by=user)
    assert not ReportRequest.objects.exists()


def test_two_claims_of_one_request_build_it_once(trial, sponsor,
                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        report = reports.request_report(trial, "enrolment", by=sponsor)
    assert reports.claim(report.pk, token="first") is True
    assert reports.claim(report.pk, token="second") is False
    assert reports.build(report.pk, token="second") == "skipped"
    assert ReportRequest.objects.get(pk=report.pk).attempts == 1
    # The first delivery's task, redelivered after its worker died, may take it again.
    assert reports.build(report.pk, token="first") == "done"
    # A duplicate delivery of a finished request does nothing.
    assert reports.build(report.pk, token="third") == "skipped"
    report.refresh_from_db()
    assert report.status == ReportStatus.DONE and report.attempts == 2


def test_a_build_whose_worker_died_is_taken_over_after_the_lease(
        trial, sponsor, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        report = reports.request_report(trial, "enrolment", by=sponsor)
    assert reports.claim(report.pk, token="dead-worker")
    # Within the lease nobody else may take it; the periodic job leaves it alone.
    assert reports.redispatch_unfinished() == 0
    assert ReportRequest.objects.get(pk=report.pk).status == ReportStatus.RUNNING
    # Its worker died: no sign of life for longer than the lease.
    ReportRequest.objects.filter(pk=report.pk).update(
        heartbeat_at=timezone.now() - reports.LEASE - dt.timedelta(seconds=1))
    assert reports.redispatch_unfinished() == 1  # eager: rebuilt at once
    report.refresh_from_db()
    assert report.status == ReportStatus.DONE and report.attempts == 2
    assert report.claimed_by != "dead-worker"


def test_after_max_attempts_a_dying_build_is_marked_failed(trial, sponsor,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        report = reports.request_report(trial, "enrolment", by=sponsor)
    ReportRequest.objects.filter(pk=report.pk).update(
        status=ReportStatus.RUNNING, attempts=reports.MAX_ATTEMPTS, claimed_by="x",
        heartbeat_at=timezone.now() - reports.LEASE * 2)
    reports.redispatch_unfinished()
    report.refresh_from_db()
    assert report.status == ReportStatus.FAILED and "Gave up" in report.error


def test_broker_down_leaves_the_request_queued_until_the_periodic_job(
        trial, sponsor, client_for, redis_down, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(sponsor).post(reverse("report_request", args=[trial.slug]),
                                            {"kind": "enrolment"})
    assert response.status_code == 302  # the page works
    report = ReportRequest.objects.get()
    assert report.status == ReportStatus.QUEUED and report.dispatched_at is None
    assert tasks.redispatch_reports.apply().get() == 0  # still down: still queued
    assert ReportRequest.objects.get().status == ReportStatus.QUEUED
    # Redis is back (tasks run here, as a worker would run them): the periodic job hands it
    # over, and it is built.
    redis_down.conf.CELERY_TASK_ALWAYS_EAGER = True
    assert tasks.redispatch_reports.apply().get() == 1
    report.refresh_from_db()
    assert report.status == ReportStatus.DONE and report.attempts == 1


def test_a_failing_builder_marks_the_request_failed_with_the_error(
        trial, sponsor, monkeypatch, django_capture_on_commit_callbacks):
    monkeypatch.setitem(reports.KINDS, "broken", reports.ReportKind(
        "Broken", reports.Perm.VIEW_REPORTS, "tests.reports.test_reports.broken_builder",
        "broken.pdf"))
    report = built(trial, sponsor, django_capture_on_commit_callbacks, kind="broken")
    assert report.status == ReportStatus.FAILED
    assert "ValueError: no data" in report.error and report.content is None


def broken_builder(trial, *, viewer, stream, progress):
    progress(10, "half way")
    stream.write(b"%PDF-half")
    raise ValueError("no data")


def test_a_new_kind_is_one_registry_entry(trial, sponsor, monkeypatch,
                                          django_capture_on_commit_callbacks):
    monkeypatch.setitem(reports.KINDS, "outcomes", reports.ReportKind(
        "Outcomes", reports.Perm.VIEW_REPORTS, "tests.reports.test_reports.tiny_builder",
        "outcomes-{slug}-{date}.pdf"))
    report = built(trial, sponsor, django_capture_on_commit_callbacks, kind="outcomes")
    assert report.status == ReportStatus.DONE and bytes(report.content) == b"%PDF-tiny"


def tiny_builder(trial, *, viewer, stream, progress):
    stream.write(b"%PDF-tiny")


# --------------------------------------------------------------------------- the PDF


@needs_pdftotext
def test_the_blinded_sponsors_report_pools_the_arms(trial, sponsor, tmp_path,
                                                    django_capture_on_commit_callbacks):
    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    text = pdf_text(bytes(report.content), tmp_path)
    assert "Enrolment report - REMINET" in text
    assert "All arms (pooled: blinded)" in text and "Arms pooled" in text
    assert_no_arm(trial, text, "the blinded sponsor's enrolment report")
    for p in trial.participants.all():  # counts only: no study ID
        assert p.study_id not in text


@needs_pdftotext
def test_the_statisticians_report_shows_each_arm(trial, statistician, tmp_path,
                                                 django_capture_on_commit_callbacks):
    report = built(trial, statistician, django_capture_on_commit_callbacks)
    text = pdf_text(bytes(report.content), tmp_path)
    assert report.with_arms is True
    for arm in trial.arms.all():
        assert arm.label[:30] in text
    assert "By arm" in text


@needs_pdftotext
def test_the_report_counts_sites_flow_and_completeness(trial, sponsor, tmp_path,
                                                       django_capture_on_commit_callbacks):
    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    text = pdf_text(bytes(report.content), tmp_path)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    # 7 screened, 1 screen failure, 5 randomised (1 withdrawn), 1 awaiting eligibility.
    total = next(line for line in lines if line.startswith("All sites") and "%" not in line)
    assert total.split()[2:7] == ["7", "1", "5", "5", "1"]
    assert any("Screened" in line for line in lines) and re.search(r"n ?= ?7\b", text)
    assert "screen failures: 1" in text
    assert "eligibility not yet assessed: 1" in text
    assert "withdrawn: 1" in text
    assert "Target enrolment 118" in " ".join(lines)  # REMINET's: "the 118 planned patients"
    # Recent rate: 4 randomised in the last 182 days (the 200-day-old one is older).
    assert "4 randomised in the last 182 days" in " ".join(lines)
    assert "Projected completion" in text and "Data completeness" in text
    assert "Overdue" in text


@pytest.fixture
def untargeted(rectal_ready):
    """The rectal trial, whose protocol states no planned enrolment, with three participants
    randomised 100, 30 and 5 days ago."""
    rectal, coordinator = rectal_ready
    for days_ago in (100, 30, 5):
        factories.randomised(rectal, by=coordinator, days_ago=days_ago)
    return rectal


def test_a_trial_without_a_target_has_accrual_and_rate_but_no_projection(untargeted,
                                                                        make_user):
    figures = enrolment_figures(untargeted, viewer=make_user("sponsor", untargeted))
    assert figures.target is None
    assert figures.randomised == 3 and figures.accrual[-1][2] == 3
    assert figures.recent_randomised == 3 and figures.rate_per_month > 0
    assert figures.projected_completion is None and figures.target_reached_on is None


def test_a_trial_with_a_target_is_projected(trial, sponsor):
    figures = enrolment_figures(trial, viewer=sponsor)
    assert figures.target == 118
    assert figures.projected_completion > timezone.localdate()
    assert figures.target_reached_on is None


@needs_pdftotext
def test_the_report_of_a_trial_without_a_target_says_it_is_not_stated(
        untargeted, make_user, tmp_path, django_capture_on_commit_callbacks):
    report = built(untargeted, make_user("sponsor", untargeted),
                   django_capture_on_commit_callbacks)
    assert report.status == ReportStatus.DONE, report.error
    text = " ".join(pdf_text(bytes(report.content), tmp_path).split())
    assert "Target enrolment not stated in the protocol" in text
    assert "Randomised 3 Recent rate" in text  # the count alone, no share of a target
    assert "Projected completion none: no target enrolment to project to" in text
    assert "target:" not in text and "projection at the recent rate" not in text
    assert "The projection assumes" not in text
    assert "accrual and rate are shown without a target or a projection" in text


def test_figures_take_a_fixed_number_of_queries(trial, sponsor, django_assert_max_num_queries):
    import io

    from reports.enrolment_pdf import build_enrolment_report

    # 16, and three for the flow diagram's start (issue 17): the screening log by reason, the
    # screen failures' criteria, the randomised in error; and two for the SAE counts (issue
    # 18: the reports with their assessment and arm, their signed versions); and four for the
    # data queries (issue 20: the sites, by site, by form, all together).
    with django_assert_max_num_queries(25):
        build_enrolment_report(trial, viewer=sponsor, stream=io.BytesIO())


def test_completeness_counts_the_forms_of_visits_due_and_the_records_at_them(trial, sponsor):
    """Expected CRFs: the forms listed at visits done or overdue (window closed, not done);
    entered: records at those visits; complete: entered and not a draft. Per site, as the
    rule says, whatever the database."""
    today = timezone.localdate()
    visits = list(Visit.objects.filter(participant__trial=trial).order_by("pk"))
    past = [v for v in visits if v.window_closes < today]
    future = [v for v in visits if v.window_opens > today]
    assert len(past) >= 6 and len(future) >= 2
    for v in past[::3]:
        Visit.objects.filter(pk=v.pk).update(status=VisitStatus.DONE, done_on=v.window_opens)
    Visit.objects.filter(pk=past[1].pk).update(crfs=[])
    Visit.objects.filter(pk=past[2].pk).update(crfs=["a", "b", "c"])
    # Closing today: not overdue yet, so neither its forms nor its records are expected.
    Visit.objects.filter(pk=future[0].pk).update(window_opens=today - dt.timedelta(days=3),
                                                 window_closes=today)
    statuses = [CRFStatus.DRAFT, CRFStatus.COMPLETE, CRFStatus.SIGNED, CRFStatus.LOCKED]
    for i, v in enumerate(past + future[:2]):
        CRFRecord.objects.create(
            participant_id=v.participant_id, crf_code="tumour_assessment", visit=v,
            protocol_version_id=v.participant.protocol_version_id, created_by=sponsor,
            updated_by=sponsor, status=statuses[i % 4])

    def due(v) -> bool:
        return v.status == VisitStatus.DONE or (v.status == VisitStatus.PLANNED
                                                and v.window_closes < today)

    figures = enrolment_figures(trial, viewer=sponsor, today=today)
    sites = dict(trial.sites.values_list("code", "pk"))
    got = {sites[row.code]: [row.expected_crfs, row.entered_crfs, row.complete_crfs,
                             row.overdue_visits] for row in figures.sites}
    want = {site_id: [0, 0, 0, 0] for site_id in got}
    for v in Visit.objects.filter(participant__trial=trial).select_related("participant"):
        if due(v):
            want[v.participant.site_id][0] += len(v.crfs)
            want[v.participant.site_id][3] += v.status == VisitStatus.PLANNED
    for r in CRFRecord.objects.filter(participant__trial=trial, visit__isnull=False) \
            .select_related("visit", "participant"):
        if due(r.visit):
            want[r.participant.site_id][1] += 1
            want[r.participant.site_id][2] += r.status != CRFStatus.DRAFT
    assert got == want
    expected, entered, complete, overdue = map(sum, zip(*want.values()))
    assert expected > entered > complete > 0 and overdue > 0


# --------------------------------------------------------------------------- the pages


def test_the_reports_page_lists_requests_with_progress_and_download(
        trial, sponsor, client_for, django_capture_on_commit_callbacks):
    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    page = client_for(sponsor).get(reverse("report_list", args=[trial.slug]))
    html = page.content.decode()
    assert page.status_code == 200
    assert "Sophie Sponsor" in html and 'name="kind" value="enrolment"' in html
    download = reverse("report_download", args=[trial.slug, report.pk])
    assert download in html and "js/reports.js" in html and "<script>" not in html
    status = client_for(sponsor).get(reverse("report_status", args=[trial.slug, report.pk]))
    assert status.json()["status"] == "done" and status.json()["download"] == download
    pdf = client_for(sponsor).get(download)
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert "attachment" in pdf["Content-Disposition"]
    trial_page = client_for(sponsor).get(reverse("trial_detail", args=[trial.slug]))
    assert reverse("report_list", args=[trial.slug]) in trial_page.content.decode()


def test_a_blinded_reader_cannot_download_a_report_built_with_arms(
        trial, sponsor, statistician, make_user, client_for,
        django_capture_on_commit_callbacks):
    unblinded = built(trial, statistician, django_capture_on_commit_callbacks)
    pooled = built(trial, sponsor, django_capture_on_commit_callbacks)
    data_manager = make_user("data_manager", trial, None)
    for reader in (sponsor, data_manager):
        client = client_for(reader)
        url = reverse("report_download", args=[trial.slug, unblinded.pk])
        assert client.get(url).status_code == 403
        assert url not in client.get(reverse("report_list", args=[trial.slug])).content.decode()
        assert client.get(reverse("report_status",
                                  args=[trial.slug, unblinded.pk])).json()["download"] is None
        assert client.get(reverse("report_download",
                                  args=[trial.slug, pooled.pk])).status_code == 200
    # More rights: the statistician may read the sponsor's pooled report.
    assert client_for(statistician).get(
        reverse("report_download", args=[trial.slug, pooled.pk])).status_code == 200


def test_bad_requests_get_clear_answers(trial, rectal, sponsor, make_user, client_for,
                                        django_capture_on_commit_callbacks):
    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    client = client_for(sponsor)
    unknown = client.post(reverse("report_request", args=[trial.slug]), {"kind": "nonsense"})
    assert unknown.status_code == 400 and "'nonsense'" in unknown.content.decode()
    # A trial the sponsor has no part in: 404; a report of another trial: 404.
    assert client.get(reverse("report_list", args=[rectal.slug])).status_code == 404
    make_user("sponsor", rectal, None, username="both")
    other = client_for(type(sponsor).objects.get(username="both"))
    assert other.get(reverse("report_download", args=[rectal.slug, report.pk])).status_code == 404
    assert other.get(reverse("report_status", args=[rectal.slug, report.pk])).status_code == 404
    assert other.get(reverse("report_status", args=[rectal.slug, 99999])).status_code == 404
    # A member without the permission: 403, and nothing recorded.
    investigator = make_user("investigator", trial, trial.sites.order_by("code").first())
    client = client_for(investigator)
    assert client.get(reverse("report_list", args=[trial.slug])).status_code == 403
    assert client.post(reverse("report_request", args=[trial.slug]),
                       {"kind": "enrolment"}).status_code == 403
    assert client.get(reverse("report_download", args=[trial.slug, report.pk])).status_code == 403
    assert ReportRequest.objects.count() == 1
    # GET on the request URL is refused; a report not built yet has nothing to download.
    assert client_for(sponsor).get(reverse("report_request", args=[trial.slug])).status_code == 405
    ReportRequest.objects.filter(pk=report.pk).update(status=ReportStatus.QUEUED)
    assert client_for(sponsor).get(
        reverse("report_download", args=[trial.slug, report.pk])).status_code == 404


def test_report_requests_are_never_deleted(trial, sponsor, django_capture_on_commit_callbacks):
    from django.db.models import ProtectedError

    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    with pytest.raises(ProtectedError):
        report.delete()


def test_the_admin_lists_requests_read_only_without_the_pdf(trial, sponsor, make_user,
                                                            client_for,
                                                            django_capture_on_commit_callbacks):
    report = built(trial, sponsor, django_capture_on_commit_callbacks)
    admin = make_user(is_staff=True, is_superuser=True)
    client = client_for(admin)
    assert client.get(reverse("admin:reports_reportrequest_changelist")).status_code == 200
    page = client.get(reverse("admin:reports_reportrequest_change", args=[report.pk]))
    assert page.status_code == 200 and b"%PDF" not in page.content
    assert client.get(reverse("admin:reports_reportrequest_delete",
                              args=[report.pk])).status_code == 403
