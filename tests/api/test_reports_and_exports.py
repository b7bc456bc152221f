"""Reports and exports through the API: request a report, poll it, download it with the page's
download rule; stream the Exports page's files (CSV long and wide, every CRF as a ZIP, CDISC
ODM), audited as the page audits them; unknown kinds, CRFs and forms named; blinded roles never
see an arm."""
from __future__ import annotations

import csv
import io
import zipfile
from xml.etree import ElementTree

import pytest
from django.urls import reverse

from core.models import AuditEvent
from reports.models import ReportRequest
from tests.api import world
from tests.randomisation.test_blinding import assert_no_arm


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def read_csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


@pytest.fixture
def sponsor(places, make_user):
    return make_user("sponsor", places.trial)  # all sites, blinded in REMINET


@pytest.fixture
def reports_url(places):
    return reverse("api_reports", args=[places.trial.slug])


# --------------------------------------------------------------------------- reports


def test_a_report_is_requested_polled_and_downloaded(places, sponsor, api, reports_url,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the eager worker builds it
        response = api(sponsor).post(reports_url, {"kind": "enrolment"})
    assert response.status_code == 202
    report = ReportRequest.objects.get(pk=response.json()["id"])
    assert response["Location"].endswith(reverse("api_report",
                                                 args=[places.trial.slug, report.pk]))
    assert response.json()["status"] == "queued"  # answered before the build ran
    assert response.json()["requested_by"] == sponsor.username

    polled = api(sponsor).get(response["Location"]).json()
    assert polled["status"] == "done" and polled["progress"] == 100
    assert polled["finished_at"] and polled["requested_at"]
    assert polled["download"].endswith(reverse("api_report_download",
                                               args=[places.trial.slug, report.pk]))
    pdf = api(sponsor).get(polled["download"])
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert pdf["Content-Disposition"] == f'attachment; filename="{report.filename}"'

    listed = api(sponsor).get(reports_url).json()
    assert [r["id"] for r in listed["results"]] == [report.pk]


def test_an_unknown_kind_is_a_400_naming_it(places, sponsor, api, reports_url):
    response = api(sponsor).post(reports_url, {"kind": "mortality"})
    assert response.status_code == 400
    assert "mortality" in response.json()["kind"][0]
    assert "enrolment" in response.json()["kind"][0]
    assert not ReportRequest.objects.exists()


def test_a_report_is_404_until_built(places, sponsor, api, reports_url):
    report_id = api(sponsor).post(reports_url, {"kind": "enrolment"}).json()["id"]  # queued
    poll = api(sponsor).get(reverse("api_report", args=[places.trial.slug, report_id])).json()
    assert poll["status"] == "queued" and poll["download"] is None
    response = api(sponsor).get(reverse("api_report_download",
                                        args=[places.trial.slug, report_id]))
    assert response.status_code == 404
    assert "not built" in response.json()["detail"]


def test_the_blinded_sponsor_never_gets_the_statisticians_report(places, sponsor, statistician,
                                                                  api):
    unblinded = world.built_report(places.trial, by=statistician)
    assert unblinded.with_arms
    url = reverse("api_report", args=[places.trial.slug, unblinded.pk])
    assert api(sponsor).get(url).json()["download"] is None
    refused = api(sponsor).get(url + "download/")
    assert refused.status_code == 403 and not refused.content.startswith(b"%PDF")
    assert api(statistician).get(url + "download/").status_code == 200
    # The sponsor's own report, built blinded, may be read by the statistician too.
    blinded = world.built_report(places.trial, by=sponsor)
    assert blinded.with_arms is False
    for user in (sponsor, statistician):
        assert api(user).get(reverse("api_report_download", args=[
            places.trial.slug, blinded.pk])).status_code == 200
    listed = api(sponsor).get(reverse("api_reports", args=[places.trial.slug]))
    assert_no_arm(places.trial, listed.content.decode(), "the report list")


def test_another_trials_report_is_a_404(places, rectal, statistician, api):
    other = world.built_report(rectal, by=statistician)
    for name in ("api_report", "api_report_download"):
        response = api(statistician).get(reverse(name, args=[places.trial.slug, other.pk]))
        assert response.status_code == 404, name


@pytest.mark.parametrize("role", ["investigator", "coordinator"])
def test_roles_without_reports_get_403(places, make_user, api, reports_url, role):
    user = make_user(role, places.trial, places.own.site)
    assert api(user).get(reports_url).status_code == 403
    assert api(user).post(reports_url, {"kind": "enrolment"}).status_code == 403
    assert not ReportRequest.objects.exists()


def test_reports_need_authentication(places, client, reports_url):
    assert client.get(reports_url).status_code == 401


# --------------------------------------------------------------------------- exports


def export(places, name: str, *args, **query) -> str:
    url = reverse(name, args=[places.trial.slug, *args])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def test_a_crf_csv_parses_and_is_the_pages_file(places, sponsor, api, client_for):
    response = api(sponsor).get(export(places, "api_export_csv", "eligibility", form="long"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    content = body(response)
    rows = read_csv(content)
    assert {r["study_id"] for r in rows} == {places.own.participant.study_id,
                                             places.other.participant.study_id}
    assert "kit_code" in rows[0] and "arm" not in rows[0]  # the sponsor is blinded
    assert_no_arm(places.trial, content.decode("utf-8-sig"), "the API's CSV")
    page = client_for(sponsor).get(reverse("export_crf_csv", args=[
        places.trial.slug, "eligibility", "long"]))
    assert body(page) == content


def test_the_statistician_gets_the_arm_and_the_wide_form(places, statistician, api):
    response = api(statistician).get(export(places, "api_export_csv", "eligibility",
                                            form="wide"))
    rows = read_csv(body(response))
    assert len(rows) == 2 and rows[0]["arm"] in {a.code for a in places.trial.arms.all()}
    assert "field" not in rows[0]  # wide: one row per record


def test_every_crf_in_one_zip(places, sponsor, api):
    response = api(sponsor).get(export(places, "api_export_zip"))
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert f"{places.trial.slug}-eligibility-long.csv" in archive.namelist()


def test_the_odm_file_parses(places, sponsor, api):
    response = api(sponsor).get(export(places, "api_export_odm"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    content = body(response)
    root = ElementTree.fromstring(content)
    assert root.tag.endswith("ODM")
    assert places.own.participant.study_id in content.decode()
    assert_no_arm(places.trial, content.decode(), "the API's ODM")


def test_every_export_is_audited_as_on_the_page(places, sponsor, api, client_for):
    body(api(sponsor).get(export(places, "api_export_csv", "eligibility", form="wide")))
    body(client_for(sponsor).get(reverse("export_crf_csv", args=[
        places.trial.slug, "eligibility", "wide"])))
    body(api(sponsor).get(export(places, "api_export_odm")))
    api_csv, page_csv, odm = AuditEvent.objects.filter(action="data.exported").order_by("pk")
    assert (api_csv.message, api_csv.detail) == (page_csv.message, page_csv.detail)
    assert api_csv.actor == sponsor and api_csv.detail["blinded"] is True
    assert odm.detail["format"] == "odm-1.3.2"


def test_unknown_crf_and_form_are_named(places, sponsor, api):
    missing = api(sponsor).get(export(places, "api_export_csv", "nosuchcrf"))
    assert missing.status_code == 404 and "nosuchcrf" in missing.json()["detail"]
    bad = api(sponsor).get(export(places, "api_export_zip", form="tall"))
    assert bad.status_code == 400 and "tall" in bad.json()["form"][0]
    assert not AuditEvent.objects.filter(action="data.exported").exists()


def test_errors_are_json_whatever_the_client_accepts(places, sponsor, client_for):
    response = client_for(sponsor).get(export(places, "api_export_csv", "nosuchcrf"),
                                       HTTP_ACCEPT="text/csv")
    assert response.status_code == 404 and response["Content-Type"] == "application/json"


@pytest.mark.parametrize("role", ["investigator", "coordinator"])
def test_roles_without_exports_get_403(places, make_user, api, role):
    user = make_user(role, places.trial, places.own.site)
    for name, args in (("api_export_csv", ["eligibility"]), ("api_export_zip", []),
                       ("api_export_odm", [])):
        assert api(user).get(export(places, name, *args)).status_code == 403, name


def test_a_site_scoped_sponsor_exports_only_their_site(places, make_user, api):
    sponsor = make_user("sponsor", places.trial, places.own.site)
    rows = read_csv(body(api(sponsor).get(export(places, "api_export_csv", "eligibility"))))
    assert {r["study_id"] for r in rows} == {places.own.participant.study_id}


def test_the_report_list_costs_the_same_queries_whatever_its_length(places, sponsor,
                                                                    client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for(sponsor)
    url = reverse("api_reports", args=[places.trial.slug])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    world.built_report(places.trial, by=sponsor)
    queries()  # the session's first request also checks the second factor and its expiry
    one = queries()
    for _ in range(3):
        world.built_report(places.trial, by=sponsor)
    assert queries() == one
