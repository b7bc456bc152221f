"""The casebook of one participant: requested from their page (or the API) by the roles that
read reports (data manager, sponsor, monitor at their sites, statistician), built in the background with the requester's rights, read back with
pdftotext: cover, every visit's forms with answers, history, signatures and queries; no arm for
a blinded reader; other sites' participants are 404; the build's query count does not grow with
the number of visits and forms."""
from __future__ import annotations

import html
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Profile
from core.models import AuditEvent
from crfs import services as crf_services
from demo.data import crf_answers
from patients.models import Visit
from reports import services as reports
from reports.casebook import build_casebook
from reports.models import ReportRequest, ReportStatus
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.api.conftest import api  # noqa: F401  (the JSON client of the API tests)
from tests.conftest import PASSWORD
from tests.crf_world import demographics
from tests.randomisation.test_blinding import assert_no_arm
from trials.models import crf_of
from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401


def casebook_url(participant) -> str:
    return reverse("casebook_request", args=[participant.trial.slug, participant.study_id])


def requested(client, participant, django_capture_on_commit_callbacks) -> ReportRequest:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(casebook_url(participant))
    assert response.status_code == 302, response.content
    assert response["Location"] == reverse("report_list", args=[participant.trial.slug])
    return ReportRequest.objects.filter(kind="casebook").latest("pk")


def downloaded(client, report) -> bytes:
    response = client.get(reverse("report_download", args=[report.trial.slug, report.pk]))
    assert response.status_code == 200, response.content
    return response.content


@pytest.fixture
def history(participant, complete, investigator, data_manager):
    """The demographics changed with a reason, signed, then queried and answered."""
    record = save_crf(participant, "demographics", demographics(participant, weight_kg="74.0"),
                      by=investigator, complete=True, record=complete,
                      reason="Weighed again at the visit")
    crf_services.sign_crf(record, by=investigator, password=PASSWORD, meaning="accurate")
    query = crf_services.raise_query(record, by=data_manager, field_path="height_cm",
                                     text="Height seems low for the weight?")
    crf_services.answer_query(query, by=investigator, text="Checked against the source: right")
    return record


@needs_pdftotext
def test_the_casebook_holds_every_form_with_answers_history_signatures_and_queries(
        participant, history, data_manager, client_for, tmp_path,
        django_capture_on_commit_callbacks):
    client = client_for(data_manager)
    page = client.get(reverse("participant_detail",
                              args=[participant.trial.slug, participant.study_id]))
    assert casebook_url(participant) in page.content.decode()  # the button
    report = requested(client, participant, django_capture_on_commit_callbacks)
    assert (report.status, report.participant, report.site_ids) == (
        ReportStatus.DONE, participant, [participant.site_id])
    assert report.filename.startswith(f"casebook-{participant.trial.slug}-"
                                      f"{participant.study_id}-")
    text = " ".join(pdf_text(downloaded(client, report), tmp_path).split())
    # the cover
    for fact in (f"Casebook of {participant.study_id}", participant.site.name,
                 participant.protocol_version.label, "Randomised", "Consent history"):
        assert fact in text, fact
    assert "A — " in text or "A -" in text  # open-label: the arm, for everyone
    # the visits and the form's answers, labelled as the protocol says, with units
    baseline = Visit.objects.get(participant=participant, code="baseline")
    assert baseline.label in text
    assert "Year of birth 1958" in text
    assert "Height 172.0 cm" in text and "74.0 kg" in text
    # the history: who, the reason, old and new values
    assert "Weighed again" in text and "at the visit" in text
    assert "71.5 kg 74.0 kg" in text
    # the signature, still valid, and the query with its answer
    assert "Irène Curie" in text and "[valid]" in text
    assert "Height seems low for the weight?" in text
    assert "Checked against the source: right" in text
    # forms expected at a visit but never entered are named
    assert "not entered" in text
    # the download is audited
    assert AuditEvent.objects.filter(action="report.downloaded", actor=data_manager,
                                     object_id=str(report.pk)).exists()
    # the Reports page lists it with its participant
    listing = client.get(reverse("report_list", args=[participant.trial.slug])).content.decode()
    assert "Casebook" in listing and participant.study_id in listing


@needs_pdftotext
def test_a_french_requester_gets_a_french_casebook_and_page(
        participant, history, data_manager, client_for, tmp_path,
        django_capture_on_commit_callbacks):
    Profile.objects.update_or_create(user=data_manager, defaults={"language": "fr"})
    client = client_for(data_manager)
    page = client.get(reverse("participant_detail",
                              args=[participant.trial.slug, participant.study_id]))
    assert "Construire le cahier d'observation (PDF)" in html.unescape(page.content.decode())
    report = requested(client, participant, django_capture_on_commit_callbacks)
    text = " ".join(pdf_text(downloaded(client, report), tmp_path).split())
    assert f"Cahier d'observation de {participant.study_id}" in text
    assert "Historique du consentement" in text and "Formulaires hors visite" in text
    assert "non saisi" in text and "Version du protocole 1.0" in text and "[valide]" in text
    assert "Casebook of" not in text and "not entered" not in text


@needs_pdftotext
def test_a_signature_no_longer_matching_the_data_is_printed_as_not_valid(
        participant, history, investigator, data_manager, tmp_path):
    # A change through the ORM, bypassing the service (which would void the signature).
    type(history).objects.filter(pk=history.pk).update(
        data={**history.data, "weight_kg": "99.0"})
    stream = io.BytesIO()
    build_casebook(participant.trial, viewer=data_manager, stream=stream,
                   progress=lambda *a: None, participant=participant)
    text = " ".join(pdf_text(stream.getvalue(), tmp_path).split())
    assert "NOT VALID: the data changed after signing" in text


@needs_pdftotext
def test_a_blinded_reader_gets_the_kit_code_and_never_the_arm(
        reminet, statistician, make_user, tmp_path, django_capture_on_commit_callbacks):
    """REMINET: the data manager, the sponsor and the site's monitor read the kit code; the
    statistician the arm; the statistician's casebook is refused to the blinded sponsor."""
    factories.sealed_list(reminet, by=statistician)
    site = reminet.sites.order_by("code").first()
    coordinator = make_user("coordinator", reminet, site)
    participant = factories.randomised(reminet, site, by=coordinator, days_ago=40)
    allocation = participant.allocation
    sponsor = make_user("sponsor", reminet, None)
    data_manager = make_user("data_manager", reminet, None)
    monitor = make_user("monitor", reminet, site)
    for reader in (sponsor, data_manager, monitor):
        with django_capture_on_commit_callbacks(execute=True):
            report = reports.request_report(reminet, "casebook", by=reader,
                                            participant=participant)
        report.refresh_from_db()
        assert (report.status, report.with_arms) == (ReportStatus.DONE, False)
        text = pdf_text(bytes(report.content), tmp_path)
        assert allocation.kit_code and f"Kit {allocation.kit_code}" in text
        assert_no_arm(reminet, text, f"the casebook built for {reader.username}")
    with django_capture_on_commit_callbacks(execute=True):
        unblinded = reports.request_report(reminet, "casebook", by=statistician,
                                           participant=participant)
    unblinded.refresh_from_db()
    assert unblinded.with_arms is True
    assert allocation.arm.label in pdf_text(bytes(unblinded.content), tmp_path)
    with pytest.raises(PermissionDenied):
        reports.download(sponsor, reminet, unblinded.pk)


def test_other_sites_participants_are_404_and_roles_without_the_export_permission_403(
        participant, rectal, sites, make_user, client_for, investigator, coordinator,
        django_capture_on_commit_callbacks):
    # A monitor assigned to the second site only.
    monitor = make_user("monitor", rectal, sites[1])
    client = client_for(monitor)
    assert client.post(casebook_url(participant)).status_code == 404
    page = client.get(reverse("report_list", args=[rectal.slug]))
    assert page.status_code == 200
    # a data manager's casebook of the first site's participant is neither listed nor readable
    data_manager = make_user("data_manager", rectal, None)
    with django_capture_on_commit_callbacks(execute=True):
        report = reports.request_report(rectal, "casebook", by=data_manager,
                                        participant=participant)
    page = client_for(monitor).get(reverse("report_list", args=[rectal.slug]))
    assert participant.study_id not in page.content.decode()
    for name in ("report_status", "report_download"):
        assert client_for(monitor).get(reverse(name, args=[rectal.slug, report.pk])) \
            .status_code == 404, name
    # the first site's monitor may: the button, and the request
    own_monitor = client_for(make_user("monitor", rectal, sites[0]))
    page = own_monitor.get(reverse("participant_detail", args=[rectal.slug,
                                                               participant.study_id]))
    assert casebook_url(participant) in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        assert own_monitor.post(casebook_url(participant)).status_code == 302
    # investigators and coordinators: no button, 403
    for user in (investigator, coordinator):
        client = client_for(user)
        page = client.get(reverse("participant_detail", args=[rectal.slug,
                                                              participant.study_id]))
        assert casebook_url(participant) not in page.content.decode()
        assert client.post(casebook_url(participant)).status_code == 403
    assert ReportRequest.objects.filter(kind="casebook").count() == 2


def test_bad_requests_say_what_is_wrong(participant, rectal, data_manager, client_for):
    client = client_for(data_manager)
    unknown = reverse("casebook_request", args=[rectal.slug, "NO-SUCH-ID"])
    assert client.post(unknown).status_code == 404
    assert client.get(casebook_url(participant)).status_code == 405
    with pytest.raises(ValidationError, match="give the participant's study ID"):
        reports.request_report(rectal, "casebook", by=data_manager)
    with pytest.raises(ValidationError, match="covers the whole trial"):
        reports.request_report(rectal, "enrolment", by=data_manager, participant=participant)
    # the Reports page offers trial reports only: a casebook is asked for on its participant
    response = client.post(reverse("report_request", args=[rectal.slug]), {"kind": "casebook"})
    assert response.status_code == 400
    assert "study ID" in response.content.decode()
    assert not ReportRequest.objects.exists()


def test_a_requester_who_lost_the_site_gets_a_failed_build(
        participant, rectal, sites, make_user, django_capture_on_commit_callbacks):
    monitor = make_user("monitor", rectal, sites[0])
    report = reports.request_report(rectal, "casebook", by=monitor, participant=participant)
    monitor.memberships.update(site=sites[1])
    monitor.__dict__.pop("_ctms_memberships", None)
    assert reports.build(report.pk, token="t") == "failed"
    report.refresh_from_db()
    assert "may no longer see" in report.error


# --------------------------------------------------------------------------- the API


def test_the_api_requests_and_downloads_a_casebook(participant, history, data_manager, api,
                                                   make_user, sites, rectal,
                                                   django_capture_on_commit_callbacks):
    url = reverse("api_reports", args=[rectal.slug])
    with django_capture_on_commit_callbacks(execute=True):
        response = api(data_manager).post(url, {"kind": "casebook",
                                                "participant": participant.study_id})
    assert response.status_code == 202, response.content
    assert (response.json()["kind"], response.json()["participant"]) == (
        "casebook", participant.study_id)
    body = api(data_manager).get(response["Location"]).json()
    assert body["status"] == "done"
    pdf = api(data_manager).get(body["download"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # unknown participant and another site's: the same 404
    monitor = make_user("monitor", rectal, sites[1])
    for user, study_id in ((data_manager, "NO-SUCH-ID"), (monitor, participant.study_id)):
        response = api(user).post(url, {"kind": "casebook", "participant": study_id})
        assert response.status_code == 404, (user, study_id)
    missing = api(data_manager).post(url, {"kind": "casebook"})
    assert missing.status_code == 400 and "participant" in missing.json()
    listed = api(monitor).get(url).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert all(r["participant"] is None for r in rows)
    assert api(monitor).get(reverse("api_report", args=[rectal.slug, body["id"]])) \
        .status_code == 404


# --------------------------------------------------------------------------- queries


def _queries_of_build(participant, viewer) -> int:
    def run():
        build_casebook(participant.trial, viewer=viewer, stream=io.BytesIO(),
                       progress=lambda *a: None, participant=participant)
    run()  # the protocol definitions are read once per process
    with CaptureQueriesContext(connection) as ctx:
        run()
    return len(ctx.captured_queries)


def test_the_build_reads_the_same_number_of_queries_at_any_size(
        rectal, coordinator, investigator, data_manager):
    """Two participants: one with one form, one with a form at every past visit, each form
    changed, signed and queried: the build reads the same number of queries."""
    small = factories.randomised(rectal, by=coordinator, days_ago=1)
    baseline = Visit.objects.get(participant=small, code="baseline")
    save_crf(small, "demographics", demographics(small), by=investigator, complete=True,
             visit=baseline)
    large = factories.randomised(rectal, by=coordinator, days_ago=700)
    entered = 0
    today = timezone.localdate()
    for visit in (Visit.objects.filter(participant=large, target_date__lte=today)
                  .order_by("target_date")):
        for code in visit.crfs:
            crf = crf_of(large.protocol_version_id, code)
            try:
                record = save_crf(large, code, crf_answers(crf, on=visit.target_date),
                                  by=investigator, complete=True, visit=visit)
            except ValidationError:
                continue  # answers the demo's generator cannot make valid here
            crf_services.sign_crf(record, by=investigator, password=PASSWORD,
                                  meaning="accurate")
            crf_services.raise_query(record, by=data_manager, field_path=crf["fields"][0]["code"],
                                     text="Sure?")
            entered += 1
    visits = Visit.objects.filter(participant=large).count()
    assert visits > 5 and entered > 10
    assert _queries_of_build(small, data_manager) == _queries_of_build(large, data_manager)
