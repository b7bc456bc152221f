"""CSV exports: what was saved through ``save_crf`` comes back, in both forms; only the sites the
reader may export; pseudonymised; a blinded reader gets kit codes and never an arm; streamed
with a fixed number of queries; bad input is a 404 naming what is wrong; every export audited."""
from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from demo.data import crf_answers
from patients.models import Visit
from randomisation import services as randomisation
from reports import exports
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm
from trials.models import crf_of

from .conftest import demographics


def download(client, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, response
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def read_csv(body: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))


def csv_url(trial, crf_code: str, form: str) -> str:
    return reverse("export_crf_csv", args=[trial.slug, crf_code, form])


def adverse_events(participant, *events) -> dict:
    crf = crf_of(participant.protocol_version_id, "adverse_events")
    rows = [{"term": term, "grade": grade, "serious": serious, "attribution": "unrelated",
             "start_date": timezone.localdate().isoformat(), "end_date": None, "ongoing": True}
            for term, grade, serious in events]
    answers = crf_answers(crf, on=timezone.localdate(), any_event=True, events=rows)
    return answers


@pytest.fixture
def sponsor(rectal, make_user):
    return make_user("sponsor", rectal, None, first_name="Sophie", last_name="Sponsor")


@pytest.fixture
def with_events(participant, investigator):
    """An adverse events CRF with two rows, at the first follow-up visit."""
    visit = Visit.objects.filter(participant=participant, code="follow_up").order_by(
        "occurrence").first()
    return save_crf(participant, "adverse_events",
                    adverse_events(participant, ("Nausea", 1, False),
                                   ("=HYPERLINK(\"http://x\")", 3, True)),
                    by=investigator, complete=False, visit=visit)


def test_long_csv_gives_back_every_value_saved(complete, sponsor, client_for):
    saved = complete.data
    rows = read_csv(download(client_for(sponsor), csv_url(complete.participant.trial,
                                                           "demographics", "long")))
    values = {r["field"]: r["value"] for r in rows}
    assert values["year_of_birth"] == "1958"
    assert values["weight_kg"] == "71.5"
    assert values["height_cm"] == "172.0"
    assert values["sex"] == str(saved["sex"])
    # Multiple choice: the codes, in protocol order, joined with |.
    assert values["metastatic_sites"] == "|".join(str(c) for c in saved["metastatic_sites"])
    # Every answered value is there, and nothing else.
    answered = {k for k, v in saved.items() if v not in (None, "", [])}
    assert set(values) == answered
    row = rows[0]
    assert row["study_id"] == complete.participant.study_id
    assert row["site"] == complete.participant.site.code
    assert row["visit"] == "baseline" and row["visit_occurrence"] == "1"
    assert row["arm"] == "A"                      # open-label trial: the arm, to everyone
    assert row["status"] == "complete"
    assert row["protocol_version"] == complete.protocol_version.label
    assert row["last_change_utc"].endswith("Z")


def test_a_multichoice_with_several_answers(participant, baseline, investigator, sponsor,
                                            client_for):
    crf = crf_of(participant.protocol_version_id, "demographics")
    codes = [c["code"] for c in next(f for f in crf["fields"]
                                     if f["code"] == "metastatic_sites")["choices"]][:3]
    save_crf(participant, "demographics",
             demographics(participant, metastatic_sites=codes), by=investigator,
             complete=False, visit=baseline)
    client = client_for(sponsor)
    long = read_csv(download(client, csv_url(participant.trial, "demographics", "long")))
    wide = read_csv(download(client, csv_url(participant.trial, "demographics", "wide")))
    expected = "|".join(str(c) for c in codes)
    assert [r["value"] for r in long if r["field"] == "metastatic_sites"] == [expected]
    assert wide[0]["metastatic_sites"] == expected


def test_repeating_groups_long_and_wide(with_events, sponsor, client_for):
    client = client_for(sponsor)
    trial = with_events.participant.trial
    long = read_csv(download(client, csv_url(trial, "adverse_events", "long")))
    wide = read_csv(download(client, csv_url(trial, "adverse_events", "wide")))
    terms = {r["repeat"]: r["value"] for r in long if r["field"] == "events.term"}
    assert terms == {"1": "Nausea", "2": "'=HYPERLINK(\"http://x\")"}  # neutralised
    assert {r["repeat"]: r["value"] for r in long if r["field"] == "events.grade"} == {
        "1": "1", "2": "3"}
    assert {r["repeat"]: r["value"] for r in long if r["field"] == "events.serious"} == {
        "1": "0", "2": "1"}
    (row,) = wide
    assert row["events_term_1"] == "Nausea" and row["events_grade_2"] == "3"
    assert "events_term_3" not in row           # up to the largest number of rows seen
    assert row["any_event"] == "1"


def test_wide_and_long_agree(complete, with_events, sponsor, client_for):
    client = client_for(sponsor)
    trial = complete.participant.trial
    for crf_code in ("demographics", "adverse_events"):
        long = read_csv(download(client, csv_url(trial, crf_code, "long")))
        wide = read_csv(download(client, csv_url(trial, crf_code, "wide")))
        from_long = {(r["record"], r["field"].replace(".", "_")
                      + (f"_{r['repeat']}" if r["repeat"] else "")): r["value"] for r in long}
        from_wide = {}
        meta = set(exports.META + exports.RECORD_META + ["arm", "kit_code"])
        for r in wide:
            for column, value in r.items():
                if column not in meta and value != "":
                    from_wide[(r["record"], column)] = value
        assert from_long == from_wide, crf_code
        assert from_long


def test_a_blinded_reader_gets_the_kit_code_never_the_arm(reminet_ready, make_user,
                                                          client_for):
    trial, coordinator = reminet_ready
    participant = factories.eligible_participant(trial, by=coordinator)
    allocation = randomisation.randomise(participant, by=coordinator)
    investigator = make_user("investigator", trial, participant.site)
    # An emergency unblinding shows the arm to that investigator: never in an export.
    from tests.conftest import PASSWORD
    randomisation.emergency_unblind(allocation, by=investigator, reason="Severe reaction",
                                    password=PASSWORD)
    for role in ("sponsor", "data_manager"):
        client = client_for(make_user(role, trial))
        for form in exports.FORMS:
            body = download(client, csv_url(trial, "eligibility", form))
            text = body.decode("utf-8-sig")
            assert_no_arm(trial, text, f"{form} CSV for {role}")
            (row, *_rest) = read_csv(body)
            assert "arm" not in row
            assert row["kit_code"] == allocation.kit_code
    statistician = client_for(make_user("statistician", trial))
    (row, *_rest) = read_csv(download(statistician, csv_url(trial, "eligibility", "wide")))
    assert row["arm"] == allocation.arm.code and row["kit_code"] == allocation.kit_code


def test_only_the_sites_the_reader_may_export(rectal, coordinator, sites, make_user,
                                              client_for):
    here = factories.eligible_participant(rectal, sites[0], by=coordinator)
    there = factories.eligible_participant(rectal, sites[1], by=make_user(
        "coordinator", rectal, sites[1]))
    site_sponsor = make_user("sponsor", rectal, sites[0])
    body = download(client_for(site_sponsor), csv_url(rectal, "eligibility", "wide"))
    assert [r["study_id"] for r in read_csv(body)] == [here.study_id]
    assert there.study_id.encode() not in body


def test_pseudonymised(complete, sponsor, client_for):
    """Study IDs and site codes only: no person's name, no birth date (the protocols ask the
    year of birth only), no field a protocol marks ``identifying``."""
    body = download(client_for(sponsor), csv_url(complete.participant.trial, "demographics",
                                                 "wide"))
    text = body.decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    for word in ("name", "initials", "birth_date", "date_of_birth", "dob"):
        assert not any(word in column for column in header), word
    for person in (complete.created_by, sponsor):
        for part in (person.username, person.first_name, person.last_name):
            if part:
                assert part not in text


def test_a_field_marked_identifying_is_never_exported(rectal):
    import copy

    from trials import services as trials_services

    definition = copy.deepcopy(rectal.current_version.definition)
    crf = next(c for c in definition["crfs"] if c["code"] == "demographics")
    crf["fields"].insert(0, {"code": "initials", "label": "Initials", "type": "text",
                             "identifying": True})
    definition["version"] = definition["version"] + "-amended"
    trials_services.store_protocol(definition, source_file="amended.yaml")
    layout = exports.layout_for(rectal, "demographics")
    assert "initials" not in [f["code"] for f in layout.fields]
    assert "weight_kg" in [f["code"] for f in layout.fields]


def test_csv_injection_is_neutralised_but_numbers_stay_numbers():
    assert exports.neutralise("=1+2") == "'=1+2"
    assert exports.neutralise("+33 6 12") == "'+33 6 12"
    assert exports.neutralise("@SUM(A1)") == "'@SUM(A1)"
    assert exports.neutralise("-cmd|' /C calc'!A0") == "'-cmd|' /C calc'!A0"
    assert exports.neutralise("\tx") == "'\tx"
    assert exports.neutralise("-3") == "-3"
    assert exports.neutralise("-0.5") == "-0.5"
    assert exports.neutralise("Nausea") == "Nausea"


def test_query_count_does_not_grow_with_participants(rectal, coordinator, sponsor,
                                                     client_for):
    client = client_for(sponsor)
    client.get("/")  # the session's first request of the minute saves it and checks 2FA

    def count(form: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            download(client, csv_url(rectal, "eligibility", form))
        return len(queries)

    factories.eligible_participant(rectal, by=coordinator)
    few = {form: count(form) for form in exports.FORMS}
    for _ in range(4):
        factories.eligible_participant(rectal, by=coordinator)
    assert {form: count(form) for form in exports.FORMS} == few
    # The export's own 6, plus what every request costs (session, user, profile...).
    assert few["wide"] <= 12


def test_bad_input_is_a_404_with_a_message(rectal, reminet, sponsor, make_user, client_for,
                                           investigator):
    client = client_for(sponsor)
    response = client.get(csv_url(rectal, "no_such_crf", "long"))
    assert response.status_code == 404
    assert b"no_such_crf" in response.content
    response = client.get(csv_url(rectal, "demographics", "sideways"))
    assert response.status_code == 404
    assert b"sideways" in response.content
    # Another trial (no membership there): as if it did not exist.
    assert client.get(csv_url(reminet, "demographics", "long")).status_code == 404
    assert client.get(reverse("export_odm", args=[reminet.slug])).status_code == 404
    # A member whose role has no exports: may see the trial, may not export (403, as the API).
    other = client_for(investigator)
    assert other.get(reverse("export_list", args=[rectal.slug])).status_code == 403
    assert other.get(csv_url(rectal, "demographics", "long")).status_code == 403
    assert not AuditEvent.objects.filter(action="data.exported").exists()


def test_every_export_is_audited(complete, sponsor, client_for):
    trial = complete.participant.trial
    client = client_for(sponsor)
    download(client, csv_url(trial, "demographics", "wide"))
    download(client, reverse("export_odm", args=[trial.slug]))
    events = list(AuditEvent.objects.filter(action="data.exported").order_by("pk"))
    assert [(e.actor, e.trial, e.detail["format"]) for e in events] == [
        (sponsor, trial, "csv"), (sponsor, trial, "odm-1.3.2")]
    assert events[0].detail["crf"] == "demographics" and events[0].detail["form"] == "wide"
    assert events[0].detail["sites"] == sorted(s.code for s in trial.sites.all())
    assert "demographics" in events[0].message


def test_the_exports_page_lists_every_crf(rectal, sponsor, investigator, client_for):
    client = client_for(sponsor)
    page = client.get(reverse("export_list", args=[rectal.slug])).content.decode()
    for crf in rectal.definition["crfs"]:
        assert csv_url(rectal, crf["code"], "long") in page
        assert csv_url(rectal, crf["code"], "wide") in page
    assert reverse("export_odm", args=[rectal.slug]) in page
    trial_page = client.get(reverse("trial_detail", args=[rectal.slug])).content.decode()
    assert reverse("export_list", args=[rectal.slug]) in trial_page
    trial_page = client_for(investigator).get(reverse("trial_detail", args=[rectal.slug]))
    assert reverse("export_list", args=[rectal.slug]) not in trial_page.content.decode()


def test_every_crf_in_one_streamed_zip(complete, with_events, sponsor, client_for):
    import zipfile

    trial = complete.participant.trial
    client = client_for(sponsor)
    response = client.get(reverse("export_all_csv", args=[trial.slug, "wide"]))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert names == [f"{trial.slug}-{crf['code']}-wide.csv" for crf in trial.definition["crfs"]]
    for crf_code in ("demographics", "adverse_events"):
        assert archive.read(f"{trial.slug}-{crf_code}-wide.csv") == download(
            client, csv_url(trial, crf_code, "wide"))
    assert client.get(reverse("export_all_csv", args=[trial.slug, "tall"])).status_code == 404


def test_derived_values_are_exported_as_stored(participant, baseline, investigator, sponsor,
                                               client_for):
    crf = crf_of(participant.protocol_version_id, "tumour_assessment")
    lesions = [{"lesion_number": 1, "organ": "Liver", "diameter_mm": "32", "lymph_node": False},
               {"lesion_number": 2, "organ": "Lung", "diameter_mm": "18", "lymph_node": False},
               {"lesion_number": 3, "organ": "Rectum", "diameter_mm": "0", "lymph_node": False,
                "surgically_removed": True}]
    record = save_crf(participant, "tumour_assessment",
                      crf_answers(crf, on=baseline.target_date, target_lesions=lesions),
                      by=investigator, complete=True, visit=baseline)
    assert record.data["sum_of_diameters"] is not None
    (row,) = read_csv(download(client_for(sponsor), csv_url(participant.trial,
                                                            "tumour_assessment", "wide")))
    assert row["sum_of_diameters"] == str(record.data["sum_of_diameters"])
    assert row["overall_response"] == exports.value_text({}, record.data["overall_response"])
    assert row["target_lesions_diameter_mm_2"] == "18"
    # A surgically removed lesion is exported as marked, and adds nothing to the sum (50 mm).
    assert row["target_lesions_surgically_removed_1"] == ""
    assert row["target_lesions_surgically_removed_3"] == "1"
    assert record.data["sum_of_diameters"] == "50.0"
