"""The SAE pages: the home page and the worklist show the clock; an investigator completes and
signs; the safety officer assesses and unblinds; the officer's routes answer as the policy says.
"""
from __future__ import annotations

import datetime as dt
import subprocess

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from safety.models import SAEReport
from tests import factories
from tests.safety.conftest import PASSWORD


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    if factories.needs_second_factor(user):
        factories.verify_session(client, factories.totp_device(user))
    return client


def form_data(report, **over):
    onset = report.versions.get(number=0).onset_date
    data = {"criteria": ["hospitalisation"], "onset_date": onset.isoformat(),
            "aware_at": f"{timezone.localtime(report.aware_at):%Y-%m-%dT%H:%M}",
            "outcome": "recovering", "death_date": "", "causality_study_product": "related",
            "narrative": "Febrile neutropenia, admitted, antibiotics."}
    data.update(over)
    return data


def test_the_clock_on_the_home_page_and_the_worklist(world, sae):
    investigator = logged_in(world["investigator"])
    home = investigator.get(reverse("home")).content.decode()
    assert "1 due within 24 hours" in home and reverse("sae_list", args=["reminet"]) in home
    with time_machine.travel(sae.aware_at + dt.timedelta(hours=27), tick=False):
        home = logged_in(world["officer"]).get(reverse("home")).content.decode()
        assert "1 report overdue" in home
        page = logged_in(world["officer"]).get(reverse("sae_list", args=["reminet"]))
        text = page.content.decode()
        assert sae.number in text and "3.0 h" in text


def test_an_investigator_completes_and_signs_then_the_officer_assesses_and_unblinds(world, sae):
    trial, participant = world["trial"], world["participant"]
    url = reverse("sae_detail", args=[trial.slug, sae.pk])
    investigator = logged_in(world["investigator"])
    bad = investigator.post(reverse("sae_save_draft", args=[trial.slug, sae.pk]),
                            form_data(sae, aware_at=f"{timezone.localtime() + dt.timedelta(days=1):%Y-%m-%dT%H:%M}"))
    assert bad.status_code == 400
    assert "The site cannot have become aware in the future." in bad.content.decode()
    assert investigator.post(reverse("sae_save_draft", args=[trial.slug, sae.pk]),
                             form_data(sae)).status_code == 302
    wrong = investigator.post(reverse("sae_sign", args=[trial.slug, sae.pk]),
                              {"password": "nope"})
    assert wrong.status_code == 400 and "The password is not correct." in wrong.content.decode()
    assert investigator.post(reverse("sae_sign", args=[trial.slug, sae.pk]),
                             {"password": PASSWORD}).status_code == 302
    page = investigator.get(url).content.decode()
    assert "CIOMS-I PDF" in page
    pdf = investigator.get(reverse("sae_pdf", args=[trial.slug, sae.pk, 0]))
    assert pdf["Content-Type"] == "application/pdf"

    officer = logged_in(world["officer"])
    assert officer.post(reverse("sae_assess", args=[trial.slug, sae.pk]), {
        "causality_study_product": "related",
        "expectedness_study_product": "unexpected"}).status_code == 302
    page = officer.get(url).content.decode()
    assert "SUSAR" in page and reverse("sae_unblind", args=[trial.slug, sae.pk]) in page
    arm = participant.allocation.arm.label
    assert arm not in page
    refused = officer.post(reverse("sae_unblind", args=[trial.slug, sae.pk]),
                           {"reason": "", "password": PASSWORD})
    assert refused.status_code == 400
    assert officer.post(reverse("sae_unblind", args=[trial.slug, sae.pk]),
                        {"reason": "Expedited SUSAR report", "password": PASSWORD}
                        ).status_code == 302
    assert arm in officer.get(url).content.decode()
    for member in ("investigator", "coordinator", "sponsor"):
        assert arm not in logged_in(world[member]).get(url).content.decode()


def test_the_safety_officer_sees_no_other_participant_and_enters_no_data(world, sae, make_user):
    officer = logged_in(world["officer"])
    trial = world["trial"]
    assert officer.get(reverse("participant_list", args=[trial.slug])).status_code == 200
    detail = officer.get(reverse("participant_detail",
                                 args=[trial.slug, world["participant"].study_id]))
    assert detail.status_code == 404
    assert officer.post(reverse("sae_save_draft", args=[trial.slug, sae.pk]),
                        form_data(sae)).status_code == 403
    assert officer.post(reverse("sae_sign", args=[trial.slug, sae.pk]),
                        {"password": PASSWORD}).status_code == 403
    assert officer.get(reverse("sae_list", args=[trial.slug])).status_code == 200
    assert officer.get(reverse("api_sae_reports", args=[trial.slug])).status_code == 200
    assert officer.get(reverse("report_list", args=[trial.slug])).status_code == 403
    assert officer.get(reverse("export_list", args=[trial.slug])).status_code == 403


def test_a_signed_version_prints_as_a_cioms_form(world, sae):
    from safety import pdf, services
    from tests.safety.conftest import complete_values

    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    version = services.sign_version(sae.versions.get(), by=world["investigator"],
                                    password=PASSWORD)
    try:
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf.cioms_pdf(version),
                              capture_output=True, check=True).stdout.decode()
    except FileNotFoundError:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    assert "CIOMS I" in text and sae.number in text and "Initial" in text
    assert world["participant"].study_id in text and "Febrile neutropenia" in text
    assert version.digest in text.replace("\n", "").replace(" ", "") or version.digest[:20] in text
    assert "Requires or prolongs hospitalisation" in text
    assert world["participant"].allocation.arm.label not in text


def test_the_line_listing_lists_each_report_without_an_arm(world, sae):
    csv = logged_in(world["sponsor"]).get(reverse("sae_listing", args=["reminet"]))
    text = csv.content.decode()
    header, row, *_ = text.splitlines()
    assert header.startswith("report,study_id,site,term")
    assert row.startswith(f"{sae.number},{world['participant'].study_id}")
    assert world["participant"].allocation.arm.label not in text
    assert SAEReport.objects.count() == 1


def test_the_enrolment_report_counts_saes_per_arm_only_for_who_may_see_arms(world, sae,
                                                                            statistician):
    from reports.enrolment import enrolment_figures
    from safety import services
    from tests.safety.conftest import complete_values

    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    blinded = enrolment_figures(world["trial"], viewer=world["sponsor"])
    [pooled] = blinded.safety
    assert (pooled.code, pooled.reports, pooled.related, pooled.susars) == ("", 1, 1, 0)
    assert pooled.criteria == {"hospitalisation": 1}
    unblinded = enrolment_figures(world["trial"], viewer=statistician)
    by_arm = {row.code: row.reports for row in unblinded.safety}
    assert by_arm[world["participant"].allocation.arm.code] == 1
    assert sum(by_arm.values()) == 1 and len(by_arm) == 2


def test_the_enrolment_pdf_has_the_sae_table(world, sae):
    import io

    from reports.enrolment_pdf import build_enrolment_report

    stream = io.BytesIO()
    build_enrolment_report(world["trial"], viewer=world["sponsor"], stream=stream)
    try:
        text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=stream.getvalue(),
                              capture_output=True, check=True).stdout.decode()
    except FileNotFoundError:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    assert "Serious adverse events" in text and "SUSAR" in text
    assert world["participant"].allocation.arm.label not in text


def test_the_odm_export_carries_the_sae_line_listing(world, sae, make_user):
    from safety import services
    from tests.reports.test_odm import (
        check_structure,
        item_data,
        odm_bytes,
        validate_with_xsd,
    )
    from tests.safety.conftest import complete_values

    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    body = odm_bytes(logged_in(world["sponsor"]), world["trial"])
    validate_with_xsd(body)
    root = check_structure(body)
    study_id = world["participant"].study_id
    (number,) = item_data(root, study_id, "IT.SAE.REPORT")
    assert number.get("Value") == sae.number
    (criteria,) = item_data(root, study_id, "IT.SAE.CRITERIA")
    assert criteria.get("Value") == "hospitalisation"
    assert world["participant"].allocation.arm.label not in body.decode()


def test_the_officer_records_the_susars_expedited_report_and_the_list_shows_the_late_ones(
        world, sae):
    # EU Reg. 536/2014 art. 42: a SUSAR is reported to the authorities within 7 or 15 days of
    # the sponsor's receipt; the submission is recorded once, and one not made is overdue.
    trial = world["trial"]
    url = reverse("sae_detail", args=[trial.slug, sae.pk])
    investigator = logged_in(world["investigator"])
    investigator.post(reverse("sae_save_draft", args=[trial.slug, sae.pk]), form_data(sae))
    assert investigator.post(reverse("sae_sign", args=[trial.slug, sae.pk]),
                             {"password": PASSWORD}).status_code == 302
    officer = logged_in(world["officer"])
    submit = reverse("sae_susar_submitted", args=[trial.slug, sae.pk])
    assert officer.post(submit, {"submitted_on": timezone.localdate().isoformat(),
                                 "reference": "EV-1"}).status_code == 400  # not a SUSAR yet
    officer.post(reverse("sae_assess", args=[trial.slug, sae.pk]), {
        "causality_study_product": "related", "expectedness_study_product": "unexpected"})
    assessment = SAEReport.objects.get(pk=sae.pk).assessment
    assert assessment.susar and "Not yet submitted to the authorities." in officer.get(
        url).content.decode()

    # Nothing recorded past the deadline: overdue, by how many days.
    with time_machine.travel(dt.datetime.combine(assessment.susar_due + dt.timedelta(days=3),
                                                 dt.time(12), tzinfo=dt.timezone.utc),
                             tick=False):
        assert assessment.susar_days_late(timezone.localdate()) == 3
        later = logged_in(world["officer"])  # a session of that day
        assert "3 days late" in later.get(url).content.decode()
        assert "overdue" in later.get(reverse("sae_list", args=[trial.slug])).content.decode()

    received = timezone.localtime(SAEReport.objects.get(pk=sae.pk).reported_at).date()
    for data, field, message in [
        ({"submitted_on": (received - dt.timedelta(days=1)).isoformat(), "reference": "EV-1"},
         "submitted_on", "before the sponsor received the report"),
        ({"submitted_on": (timezone.localdate() + dt.timedelta(days=1)).isoformat(),
          "reference": "EV-1"}, "submitted_on", "cannot be in the future"),
        ({"submitted_on": timezone.localdate().isoformat(), "reference": " "},
         "reference", "This field is required"),
    ]:
        refused = officer.post(submit, data)
        assert refused.status_code == 400 and message in refused.content.decode(), field
    assert SAEReport.objects.get(pk=sae.pk).assessment.susar_submitted_on is None

    assert officer.post(submit, {"submitted_on": timezone.localdate().isoformat(),
                                 "reference": "EU-EC-2026-0042"}).status_code == 302
    page = officer.get(url).content.decode()
    assert "Submitted to the authorities on" in page and "EU-EC-2026-0042" in page
    assert "days late" not in page
    again = officer.post(submit, {"submitted_on": timezone.localdate().isoformat(),
                                  "reference": "EV-2"})
    assert again.status_code == 400 and "already recorded" in again.content.decode()
    for member in ("investigator", "coordinator", "sponsor"):
        assert logged_in(world[member]).post(submit, {}).status_code in (403, 404)
