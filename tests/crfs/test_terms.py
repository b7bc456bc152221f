"""Adverse-event terms chosen from the NCI-CTCAE v4.03 list the protocols name (issue 18, item 5):
the list shipped in trials/reference/ and loaded like a protocol, the term field of the forms
and the API, the grades each term defines, free-text rows stored before, exports."""
from __future__ import annotations

import copy
import csv
import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from django.http import QueryDict
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from crfs import services as crfs
from crfs.forms import build_crf_form, form_to_data
from demo.data import AE_TERMS, crf_answers, term_grades
from reports.exports import export_csv
from scheduling import services as scheduling
from tests.crf_world import crf_url
from trials.models import Term, Terminology, crf_of
from trials.protocol import ProtocolError, parse_protocol, validate_definition
from trials.selectors import term_list
from trials.terminology import COLUMNS, shipped_terminology_file

SHIPPED = shipped_terminology_file("ctcae-4.03")


def ae_crf(trial) -> dict:
    return crf_of(trial.current_version_id, "adverse_events")


def post(rows: list[dict], prefix: str = "") -> QueryDict:
    q = QueryDict(mutable=True)
    q["any_event"] = "true"
    q["events-TOTAL"] = str(len(rows))
    for i, row in enumerate(rows):
        for key, value in row.items():
            q[f"events-{i}-{key}"] = str(value)
    return q


def row(term="Fatigue", grade=1, **more) -> dict:
    today = timezone.localdate().isoformat()
    return {"term": term, "grade": grade, "serious": "false", "attribution": "possible",
            "start_date": today, "ongoing": "true", **more}


# --- the list, loaded like a protocol -------------------------------------------------------------

@pytest.mark.django_db
def test_the_shipped_list_is_loaded_with_its_meddra_codes_and_grades():
    terminology = Terminology.objects.get(code="ctcae-4.03")
    assert terminology.digest == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert terminology.terms.count() == 790  # CTCAE v4.03 lists 790 terms
    fatigue = Term.objects.get(terminology=terminology, label="Fatigue")
    assert fatigue.meddra_code == "10016256"
    assert fatigue.soc == "General disorders and administration site conditions"
    assert sorted(fatigue.grades) == ["1", "2", "3"]
    arrest = term_list("ctcae-4.03").find("cardiac ARREST")
    assert arrest.grade_numbers == [4, 5] and arrest.meddra_code == "10007515"
    assert term_list("ctcae-4.03").find("10016256").label == "Fatigue"
    # CTCAE v5.0 is shipped too, for a protocol (or an amendment) that names it.
    v5 = term_list("ctcae-5.0")
    assert len(v5.terms) == 837 and v5.name == "NCI-CTCAE v5.0"
    assert v5.find("Fatigue").grade_numbers == [1, 2, 3]


@pytest.mark.django_db
def test_load_ctcae_is_idempotent_and_a_changed_file_replaces_the_list(tmp_path):
    out = io.StringIO()
    call_command("load_ctcae", stdout=out)
    assert "unchanged" in out.getvalue() and "790 terms" in out.getvalue()
    assert not AuditEvent.objects.filter(action="terminology.loaded").exists()
    # An edited copy under the same code: loaded once, with its digest, then unchanged.
    lines = SHIPPED.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = tmp_path / "ctcae-4.03.csv"
    changed.write_text(lines[0] + "".join(line for line in lines[1:] if "Fatigue" not in
                                          line.split(",")[2:3]), encoding="utf-8")
    for expected in ("loaded", "unchanged"):
        out = io.StringIO()
        call_command("load_ctcae", str(changed), stdout=out)
        assert expected in out.getvalue()
    terminology = Terminology.objects.get(code="ctcae-4.03")
    assert terminology.digest == hashlib.sha256(changed.read_bytes()).hexdigest()
    assert terminology.terms.count() == 789 and term_list("ctcae-4.03").find("Fatigue") is None
    assert AuditEvent.objects.filter(action="terminology.loaded").count() == 1
    call_command("load_ctcae", stdout=io.StringIO())  # the shipped file back
    assert term_list("ctcae-4.03").find("Fatigue").meddra_code == "10016256"


@pytest.mark.django_db
def test_a_bad_file_is_refused_with_its_row_numbers_and_nothing_is_written(tmp_path):
    before = Terminology.objects.get(code="ctcae-4.03").digest
    bad = tmp_path / "ctcae-4.03.csv"
    with bad.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerow(["10016256", "General disorders", "Fatigue", "Mild", "", "", "", "", ""])
        w.writerow(["10016256", "General disorders", "Tiredness", "Mild", "", "", "", "", ""])
        w.writerow(["1234", "General disorders", "Lethargy", "Mild", "", "", "", "", ""])
        w.writerow(["10028813", "Gastrointestinal disorders", "Nausea", "-", "-", "-", "-", "-",
                    ""])
        w.writerow(["10047700", "", "", "x", "", "", "", "", ""])
    with pytest.raises(CommandError) as refused:
        call_command("load_ctcae", str(bad), stdout=io.StringIO())
    message = str(refused.value)
    assert "row 3: meddra_code 10016256 already given on row 2" in message
    assert "row 4: meddra_code '1234' is not an 8-digit MedDRA code" in message
    assert "row 5: the term defines no grade" in message
    assert "row 6: term is empty" in message and "row 6: soc is empty" in message
    assert Terminology.objects.get(code="ctcae-4.03").digest == before
    assert Term.objects.filter(terminology__code="ctcae-4.03").count() == 790
    bad.write_text("code,label\n1,x\n", encoding="utf-8")
    with pytest.raises(CommandError, match="row 1: the columns must be meddra_code"):
        call_command("load_ctcae", str(bad), stdout=io.StringIO())
    bad.write_bytes(SHIPPED.read_bytes().replace(b"Fatigue", "Fatigué".encode("latin-1")))
    with pytest.raises(CommandError, match="not UTF-8 text"):
        call_command("load_ctcae", str(bad), stdout=io.StringIO())
    with pytest.raises(CommandError, match="terminology code 'CTCAE 4'"):
        call_command("load_ctcae", str(SHIPPED), "--code", "CTCAE 4", stdout=io.StringIO())
    with pytest.raises(CommandError, match="No such file"):
        call_command("load_ctcae", str(tmp_path / "missing.csv"), stdout=io.StringIO())
    assert Terminology.objects.get(code="ctcae-4.03").digest == before


def test_the_protocol_names_a_shipped_terminology_and_a_grade_choice(rectal_definition):
    definition = copy.deepcopy(rectal_definition)
    crf = next(c for c in definition["crfs"] if c["code"] == "adverse_events")
    i = next(i for i, c in enumerate(definition["crfs"]) if c["code"] == "adverse_events")
    term = crf["fields"][1]["fields"][0]
    assert term["type"] == "term" and term["terminology"] == "ctcae-4.03"
    term["terminology"] = "ctcae-9"
    term["grade_field"] = "start_date"
    problems = {str(p) for p in validate_definition(definition)}
    assert (f"crfs[{i}].fields[1].fields[0].terminology: unknown terminology 'ctcae-9' "
            "(shipped in trials/reference/: ctcae-4.03, ctcae-5.0)") in problems
    assert (f"crfs[{i}].fields[1].fields[0].grade_field: 'start_date' is not a choice field "
            "of the same form or row") in problems
    del term["terminology"]
    assert any("terminology" in str(p) for p in validate_definition(definition))


@pytest.fixture
def rectal_definition():
    from trials.services import PROTOCOL_DIR
    text = (PROTOCOL_DIR / "rectal-resection.yaml").read_text(encoding="utf-8")
    try:
        return parse_protocol(text)
    except ProtocolError as exc:  # pragma: no cover - the shipped file is valid
        raise AssertionError(exc) from exc


@pytest.fixture
def ae_visit(participant, coordinator):
    """An unscheduled visit of today that expects the adverse-event form."""
    return scheduling.add_unscheduled_visit(participant, on=timezone.localdate(),
                                            reason="Toxicity check", crfs=["adverse_events"],
                                            by=coordinator)


# --- the form and the API -------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_form_takes_a_term_of_the_list_and_refuses_others(rectal):
    crf = ae_crf(rectal)
    form = build_crf_form(crf, mode="complete", data=post([row("fatigue", 2),
                                                           row("10028813", 1)]))
    assert form.is_valid(), form.errors
    data = form_to_data(form)
    assert [r["term"] for r in data["events"]] == ["Fatigue", "Nausea"]  # the list's spelling
    form = build_crf_form(crf, data=post([row("Tiredness", 1), row("Fatigue", 4),
                                          row("Cardiac arrest", 3)]))
    assert not form.is_valid()
    assert form.errors["events-0-term"] == [
        "“Tiredness” is not a term of NCI-CTCAE v4.03: choose one from the list."]
    assert form.errors["events-1-grade"] == [
        "“Fatigue” has no grade 4 in NCI-CTCAE v4.03: its grades are 1, 2, 3."]
    assert form.errors["events-2-grade"] == [
        "“Cardiac arrest” has no grade 3 in NCI-CTCAE v4.03: its grades are 4, 5."]


@pytest.mark.django_db
def test_the_page_offers_the_terms_and_the_grades_of_the_term(rectal, participant, investigator,
                                                              ae_visit, client_for):
    visit = ae_visit
    crf = ae_crf(rectal)
    answers = crf_answers(crf, on=timezone.localdate(), any_event=True, events=[
        {**crf_answers(crf["fields"][1], on=timezone.localdate()), "term": "Fatigue",
         "grade": 2}])
    record = scheduling.save_crf_and_replan(participant, "adverse_events", answers,
                                            by=investigator, complete=False, visit=visit)
    page = client_for(investigator).get(crf_url(record)).content.decode()
    assert '<datalist id="terms-ctcae-4.03">' in page
    assert page.count("<option value=") >= 790
    assert '<option value="Fatigue" data-grades="1,2,3">' in page
    assert "MedDRA 10016256" in page and "Grade definitions" in page
    assert "Fatigue not relieved by rest; limiting instrumental ADL" in page  # grade 2
    response = client_for(investigator).post(crf_url(record), {
        **{k: v for k, v in post([row("Fatigue", 5)]).items()}, "action": "save"})
    assert "has no grade 5" in response.content.decode()
    record.refresh_from_db()
    assert record.data["events"][0]["grade"] == 2  # nothing written


@pytest.mark.django_db
def test_the_api_refuses_a_term_not_in_the_list_and_a_grade_the_term_lacks(
        rectal, participant, investigator, ae_visit, client_for):
    visit = ae_visit
    url = reverse("api_crfs", args=[rectal.slug, participant.study_id])
    today = timezone.localdate().isoformat()

    def event(term, grade):
        return {"term": term, "grade": grade, "serious": False, "attribution": "possible",
                "start_date": today, "ongoing": True}
    client = client_for(investigator)
    response = client.post(url, {"crf_code": "adverse_events", "visit": visit.pk, "complete": True,
                                 "data": {"any_event": True, "events": [
                                     event("Nausea", 1), event("Mal de tête", 2),
                                     event("Alopecia", 3)]}}, content_type="application/json")
    assert response.status_code == 400
    errors = response.json()["data"]
    assert errors["events[1].term"] == [
        "“Mal de tête” is not a term of NCI-CTCAE v4.03: choose one from the list."]
    assert errors["events[2].grade"] == [
        "“Alopecia” has no grade 3 in NCI-CTCAE v4.03: its grades are 1, 2."]
    assert not participant.crf_records.filter(crf_code="adverse_events").exists()
    response = client.post(url, {"crf_code": "adverse_events", "visit": visit.pk, "complete": True,
                                 "data": {"any_event": True, "events": [event("10001760", 2)]}},
                           content_type="application/json")
    assert response.status_code == 201, response.json()
    assert response.json()["data"]["events"][0]["term"] == "Alopecia"


# --- rows stored before the term list; exports ----------------------------------------------------

@pytest.mark.django_db
def test_free_text_rows_stay_readable_and_are_coded_when_next_saved(
        rectal, participant, investigator, ae_visit, client_for, make_user):
    visit = ae_visit
    crf = ae_crf(rectal)
    today = timezone.localdate().isoformat()
    old = {"term": "Diarrhoea", "grade": 2, "serious": False, "attribution": "possible",
           "start_date": today, "end_date": None, "ongoing": True}
    # Stored as before the terminology (free text), straight through the service.
    record = crfs.save_crf(participant, "adverse_events",
                           crf_answers(crf, on=timezone.localdate(), any_event=True,
                                       events=[old, {**old, "term": "Nausea", "grade": 1}]),
                           by=investigator, complete=True, visit=visit)
    response = client_for(investigator).get(crf_url(record))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Free text (before terminology)" in page and 'value="Diarrhoea"' in page
    assert "MedDRA 10028813" in page  # the second row's term is in the list
    form = build_crf_form(crf, mode="complete", data=post([row("Diarrhoea", 2)]))
    assert not form.is_valid() and "“Diarrhoea” is not a term" in form.errors["events-0-term"][0]
    sponsor = make_user("sponsor", rectal, None)
    text = "".join(export_csv(sponsor, rectal, "adverse_events", "wide"))
    rows = list(csv.reader(io.StringIO(text)))
    header, values = rows[0], rows[1]
    assert values[header.index("events_term_1")] == "Diarrhoea"
    assert values[header.index("events_term_meddra_1")] == ""
    assert values[header.index("events_term_2")] == "Nausea"
    assert values[header.index("events_term_meddra_2")] == "10028813"
    odm = client_for(sponsor).get(reverse("export_odm", args=[rectal.slug]))
    body = b"".join(odm.streaming_content).decode() if odm.streaming else odm.content.decode()
    assert 'Name="term_meddra" DataType="text" Length="8"' in body
    assert 'Value="10028813"' in body


@pytest.mark.django_db
def test_the_demo_adverse_events_are_ctcae_terms_with_grades_they_have(rectal):
    crf = ae_crf(rectal)
    for label in AE_TERMS:
        assert term_list("ctcae-4.03").find(label).label == label
        assert term_grades(crf, label)
