"""Blank CRFs of a protocol version: annotated (field codes, types, units, ranges, choices with
codes, conditions, required marks) and plain (no code, boxes, conditions in words), one form or
all, read back with pdftotext; bad input named; who may print them."""
from __future__ import annotations

import pytest
from django.urls import reverse

from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401
from trials.protocol import localise


def url(trial, variant="annotated", form="surgery", number=1) -> str:
    return reverse("blank_crf_pdf", args=[trial.slug, number, variant, form])


@pytest.fixture
def reader(rectal, make_user, client_for):
    """An investigator of the first site: they print the forms for their source documents."""
    return client_for(make_user("investigator", rectal, rectal.sites.order_by("code").first()))


def text_of(response, tmp_path) -> str:
    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"] == "application/pdf"
    return " ".join(pdf_text(response.content, tmp_path).split())


@needs_pdftotext
def test_the_annotated_crf_gives_codes_types_units_ranges_choices_and_conditions(
        rectal, reader, tmp_path):
    text = text_of(reader.get(url(rectal)), tmp_path)
    assert "Primary tumour resection (surgery)" in text
    assert "immunonutrition_days" in text and "Days of immunonutrition before surgery *" in text
    assert "unit: days" in text and "range: 0 to 14" in text
    assert "show_if: immunonutrition_given = yes" in text
    assert ("immunonutrition_started_7_days_before_surgery (soft): when immunonutrition_given "
            "= yes: expect surgery_date - immunonutrition_start >= 7") in text
    assert "temporary = Temporary stoma" in text
    assert "Visits: Primary tumour resection (surgery)" in text
    assert "protocol version 1.0" in text and "Annotated CRF" in text


@needs_pdftotext
def test_the_plain_crf_has_no_codes_and_says_conditions_in_words(rectal, reader, tmp_path):
    text = text_of(reader.get(url(rectal, "plain")), tmp_path)
    assert "Days of immunonutrition before surgery *" in text
    assert "immunonutrition_days" not in text and "show_if" not in text
    assert "Answer only if “Pre-operative immunonutrition given” is Yes." in text
    assert "[ ] Temporary stoma" in text and "[ ] Yes [ ] No" in text
    assert "Study ID:" in text
    # a repeating group: a table of empty rows, each column's choices above it in words
    text = text_of(reader.get(url(rectal, "plain", "adverse_events")), tmp_path)
    assert "CTCAE grade: [ ] 1 - Mild [ ] 2 - Moderate" in text
    assert "Relationship to study treatment: [ ] Unrelated" in text
    assert "adverse_events" not in text and "events[]" not in text


@needs_pdftotext
def test_all_forms_of_a_version_in_one_pdf(rectal, reader, tmp_path):
    text = text_of(reader.get(url(rectal, "annotated", "all")), tmp_path)
    crfs = localise(rectal.versions.get(number=1).definition, "en")["crfs"]
    assert len(crfs) > 5
    for crf in crfs:
        assert f"{crf['label']} ({crf['code']})" in text, crf["code"]
    # groups print as tables with their sub-fields' codes
    group = next((f, c) for c in crfs for f in c["fields"] if f["type"] == "group")
    assert f"{group[0]['code']}[].{group[0]['fields'][0]['code']}" in text


def test_the_trial_page_links_the_blank_crfs_and_the_list_offers_each_form(rectal, reader):
    page = reader.get(reverse("trial_detail", args=[rectal.slug])).content.decode()
    assert reverse("blank_crf_list", args=[rectal.slug]) in page
    listing = reader.get(reverse("blank_crf_list", args=[rectal.slug]))
    assert listing.status_code == 200
    body = listing.content.decode()
    for variant in ("annotated", "plain"):
        assert url(rectal, variant, "all") in body
        assert url(rectal, variant, "demographics") in body


def test_bad_input_is_named(rectal, reader):
    for bad, said in ((url(rectal, number=9), "No protocol version 9 in this trial; its "
                       "versions are: 1."),
                      (url(rectal, form="nosuch"), "No form &#x27;nosuch&#x27; in protocol "
                       "version 1.0; its forms are: eligibility"),
                      (url(rectal, variant="fancy"), "No blank CRF variant &#x27;fancy&#x27;")):
        response = reader.get(bad)
        assert response.status_code == 404, bad
        assert said in response.content.decode(), bad


def test_who_may_print_them(rectal, make_user, client_for):
    safety = client_for(make_user("safety_officer", rectal, None))
    assert safety.get(url(rectal)).status_code == 403
    assert safety.get(reverse("blank_crf_list", args=[rectal.slug])).status_code == 403
    outsider = client_for(make_user())
    assert outsider.get(url(rectal)).status_code == 404
    for role in ("data_manager", "sponsor", "coordinator"):
        client = client_for(make_user(role, rectal, None))
        assert client.get(url(rectal, "plain", "all")).status_code == 200, role


@needs_pdftotext
def test_missing_data_codes_and_partial_dates_on_paper(rectal, reader, tmp_path):
    plain = text_of(reader.get(url(rectal, "plain", "demographics")), tmp_path)
    assert "[ ] Not done (ND) [ ] Unknown (UNK)" in plain
    assert "(the day may be left blank)" in plain
    annotated = text_of(reader.get(url(rectal, "annotated", "demographics")), tmp_path)
    assert "missing-data codes: ND, UNK (reason: required)" in annotated
    assert "partial date: month (impute: middle)" in annotated
