"""The CDISC ODM 1.3.2 export: valid against CDISC's XML Schema, every reference resolves, values
match their data types, repeating groups and visits keyed, audit records from the field-level
history, blinded readers never see an arm, and a fixed number of queries."""
from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from randomisation import services as randomisation
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm

from .conftest import demographics
from .test_exports import with_events, sponsor  # noqa: F401  (fixtures)

NS = "http://www.cdisc.org/ns/odm/v1.3"
XSD = Path(__file__).parent / "odm_1_3_2" / "ODM1-3-2.xsd"
# Which Def each reference names (element, attribute) -> definition element.
REFERENCES = {
    ("StudyEventRef", "StudyEventOID"): "StudyEventDef",
    ("FormRef", "FormOID"): "FormDef",
    ("ItemGroupRef", "ItemGroupOID"): "ItemGroupDef",
    ("ItemRef", "ItemOID"): "ItemDef",
    ("CodeListRef", "CodeListOID"): "CodeList",
    ("MeasurementUnitRef", "MeasurementUnitOID"): "MeasurementUnit",
    ("UserRef", "UserOID"): "User",
    ("LocationRef", "LocationOID"): "Location",
    ("SiteRef", "LocationOID"): "Location",
    ("StudyEventData", "StudyEventOID"): "StudyEventDef",
    ("FormData", "FormOID"): "FormDef",
    ("ItemGroupData", "ItemGroupOID"): "ItemGroupDef",
    ("ItemData", "ItemOID"): "ItemDef",
    ("MetaDataVersionRef", "MetaDataVersionOID"): "MetaDataVersion",
    ("ClinicalData", "MetaDataVersionOID"): "MetaDataVersion",
    ("ClinicalData", "StudyOID"): "Study",
}
DATA_TYPES = {
    "integer": re.compile(r"^[+-]?\d+$"),
    "float": re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$"),
    "date": re.compile(r"^\d{4}-\d{2}-\d{2}$"),
    "partialDate": re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$"),
    "datetime": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\+00:00|Z)$"),
    "boolean": re.compile(r"^(0|1|true|false)$"),
    "text": re.compile(r"^.+$", re.S),
}


def q(name: str) -> str:
    return f"{{{NS}}}{name}"


def odm_bytes(client, trial) -> bytes:
    response = client.get(reverse("export_odm", args=[trial.slug]))
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("application/xml")
    return b"".join(response.streaming_content)


def check_structure(body: bytes) -> ET.Element:
    """What the ODM 1.3.2 specification asks, checked without the schema: the root and its
    attributes, the order of its sections, every reference resolving to its definition, each
    value matching its item's DataType (and code list), repeat keys where and only where the
    definition repeats."""
    root = ET.fromstring(body)
    assert root.tag == q("ODM")
    assert root.get("ODMVersion") == "1.3.2" and root.get("FileType") == "Snapshot"
    assert root.get("FileOID")
    dt.datetime.fromisoformat(root.get("CreationDateTime"))
    assert [child.tag for child in root] == [q("Study"), q("AdminData"), q("ClinicalData")]

    defs: dict[str, dict[str, ET.Element]] = {}
    for name in set(REFERENCES.values()):
        elements = root.iter(q(name))
        defs[name] = {}
        for element in elements:
            assert element.get("OID") not in defs[name], f"duplicate {name} {element.get('OID')}"
            defs[name][element.get("OID")] = element
    for (element, attribute), target in REFERENCES.items():
        for ref in root.iter(q(element)):
            assert ref.get(attribute) in defs[target], \
                f"{element}/@{attribute}={ref.get(attribute)} names no {target}"

    items, code_lists = defs["ItemDef"], defs["CodeList"]
    for data in root.iter(q("ItemData")):
        item = items[data.get("ItemOID")]
        value = data.get("Value")
        if data.get("IsNull") == "Yes":  # a missing-data code: no value, a flag instead
            assert value is None, (item.get("OID"), value)
            continue
        assert DATA_TYPES[item.get("DataType")].match(value), (item.get("OID"), value)
        ref = item.find(q("CodeListRef"))
        if ref is not None:
            coded = {i.get("CodedValue") for i in code_lists[ref.get("CodeListOID")]}
            assert value in coded, (item.get("OID"), value)

    groups, events = defs["ItemGroupDef"], defs["StudyEventDef"]
    for subject in root.iter(q("SubjectData")):
        seen = set()
        for event in subject.iter(q("StudyEventData")):
            repeating = events[event.get("StudyEventOID")].get("Repeating") == "Yes"
            assert (event.get("StudyEventRepeatKey") is not None) == repeating
            key = (event.get("StudyEventOID"), event.get("StudyEventRepeatKey"))
            assert key not in seen
            seen.add(key)
            for group in event.iter(q("ItemGroupData")):
                repeating = groups[group.get("ItemGroupOID")].get("Repeating") == "Yes"
                assert (group.get("ItemGroupRepeatKey") is not None) == repeating
    return root


def validate_with_xsd(body: bytes) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    document = etree.fromstring(body)
    assert schema.validate(document), "\n".join(str(e) for e in schema.error_log)


def item_data(root: ET.Element, subject: str, oid: str) -> list[ET.Element]:
    for s in root.iter(q("SubjectData")):
        if s.get("SubjectKey") == subject:
            return [d for d in s.iter(q("ItemData")) if d.get("ItemOID") == oid]
    return []


def test_the_odm_file_is_valid_and_gives_back_the_data(complete, with_events, sponsor,
                                                       client_for):
    participant = complete.participant
    body = odm_bytes(client_for(sponsor), participant.trial)
    validate_with_xsd(body)
    root = check_structure(body)
    (subject,) = root.iter(q("SubjectData"))
    assert subject.get("SubjectKey") == participant.study_id
    assert subject.find(q("SiteRef")).get("LocationOID") == f"LOC.{participant.site.code}"
    (weight,) = item_data(root, participant.study_id, "IT.demographics.weight_kg")
    assert weight.get("Value") == "71.5"
    sites = item_data(root, participant.study_id, "IT.demographics.metastatic_sites")
    assert sites[0].get("Value") == "|".join(str(c) for c in complete.data["metastatic_sites"])
    # The open-label trial shows the arm in the allocation form, to everyone.
    (arm,) = item_data(root, participant.study_id, "IT.ALLOCATION.ARM")
    assert arm.get("Value") == participant.allocation.arm.code
    # Repeating group: one ItemGroupData per row, keyed 1, 2.
    rows = [g for g in root.iter(q("ItemGroupData"))
            if g.get("ItemGroupOID") == "IG.adverse_events.events"]
    assert [g.get("ItemGroupRepeatKey") for g in rows] == ["1", "2"]
    definition = next(g for g in root.iter(q("ItemGroupDef"))
                      if g.get("OID") == "IG.adverse_events.events")
    assert definition.get("Repeating") == "Yes"
    terms = [d.get("Value") for g in rows for d in g if d.get("ItemOID")
             == "IT.adverse_events.events.term"]
    assert terms == ["Nausea", '=HYPERLINK("http://x")']  # XML is data, not a spreadsheet
    # The repeated follow-up visit carries its occurrence as repeat key.
    follow_up = [e for e in root.iter(q("StudyEventData"))
                 if e.get("StudyEventOID") == "SE.V.follow_up"]
    assert [e.get("StudyEventRepeatKey") for e in follow_up] == ["1"]
    # No person's name anywhere; users are numbers.
    text = body.decode()
    for person in (complete.created_by, sponsor):
        for part in (person.username, person.first_name, person.last_name):
            assert part not in text
    assert {u.get("OID") for u in root.iter(q("User"))} >= {f"USR.{complete.created_by.pk}"}


def test_audit_records_say_who_where_when_and_why(complete, investigator, sponsor,
                                                  client_for):
    participant = complete.participant
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    save_crf(participant, "demographics", demographics(participant, weight_kg="73.0"),
             by=investigator, complete=True, record=complete, reason="Scale recalibrated")
    root = check_structure(odm_bytes(client_for(sponsor), participant.trial))
    (weight,) = item_data(root, participant.study_id, "IT.demographics.weight_kg")
    assert weight.get("Value") == "73.0"
    audit = weight.find(q("AuditRecord"))
    assert audit.find(q("UserRef")).get("UserOID") == f"USR.{investigator.pk}"
    assert audit.find(q("LocationRef")).get("LocationOID") == f"LOC.{participant.site.code}"
    assert dt.datetime.fromisoformat(audit.find(q("DateTimeStamp")).text) >= before
    assert audit.find(q("ReasonForChange")).text == "Scale recalibrated"
    # A value unchanged since the CRF was created: its creation, with no reason.
    (year,) = item_data(root, participant.study_id, "IT.demographics.year_of_birth")
    assert year.find(q("AuditRecord")).find(q("ReasonForChange")) is None
    # The form's own audit record is its last save.
    form = next(f for f in root.iter(q("FormData")) if f.get("FormOID") == "F.demographics")
    assert form.find(q("AuditRecord")).find(q("ReasonForChange")).text == "Scale recalibrated"


def test_a_blinded_reader_never_sees_an_arm(reminet_ready, make_user, client_for):
    trial, coordinator = reminet_ready
    participant = factories.eligible_participant(trial, by=coordinator)
    allocation = randomisation.randomise(participant, by=coordinator)
    for role in ("sponsor", "data_manager"):
        body = odm_bytes(client_for(make_user(role, trial)), trial)
        validate_with_xsd(body)
        root = check_structure(body)
        assert_no_arm(trial, body.decode(), f"ODM for {role}")
        assert "IT.ALLOCATION.ARM" not in body.decode()
        assert "CL.ALLOCATION.ARM" not in body.decode()
        (kit,) = item_data(root, participant.study_id, "IT.ALLOCATION.KIT_CODE")
        assert kit.get("Value") == allocation.kit_code
    body = odm_bytes(client_for(make_user("statistician", trial)), trial)
    validate_with_xsd(body)
    root = check_structure(body)
    (arm,) = item_data(root, participant.study_id, "IT.ALLOCATION.ARM")
    assert arm.get("Value") == allocation.arm.code


def test_only_the_sites_the_reader_may_export(rectal, coordinator, sites, make_user,
                                              client_for):
    here = factories.eligible_participant(rectal, sites[0], by=coordinator)
    there = factories.eligible_participant(rectal, sites[1], by=make_user(
        "coordinator", rectal, sites[1]))
    root = check_structure(odm_bytes(client_for(make_user("sponsor", rectal, sites[0])),
                                     rectal))
    assert [s.get("SubjectKey") for s in root.iter(q("SubjectData"))] == [here.study_id]
    assert [loc.get("OID") for loc in root.iter(q("Location"))] == [f"LOC.{sites[0].code}"]
    assert there.study_id not in ET.tostring(root, encoding="unicode")


def test_query_count_does_not_grow_with_participants(rectal, coordinator, sponsor,
                                                     client_for):
    client = client_for(sponsor)
    client.get("/")  # the session's first request of the minute saves it and checks 2FA

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            odm_bytes(client, rectal)
        return len(queries)

    factories.eligible_participant(rectal, by=coordinator)
    few = count()
    for _ in range(4):
        factories.eligible_participant(rectal, by=coordinator)
    assert count() == few
    # The file's own queries, plus what every request costs (session, user, profile...).
    assert few <= 16  # 15, and the SAE line listing's (``reports.odm._SAE``)


def test_unscheduled_visits_are_keyed_by_their_number(participant, coordinator, investigator,
                                                      sponsor, client_for):
    from django.utils import timezone

    from scheduling.services import add_unscheduled_visit
    from .test_exports import adverse_events

    for n in range(2):
        visit = add_unscheduled_visit(participant, on=timezone.localdate(), by=coordinator,
                                      reason=f"Toxicity check {n + 1}", crfs=["adverse_events"])
        save_crf(participant, "adverse_events", adverse_events(participant, ("Rash", 1, False)),
                 by=investigator, complete=True, visit=visit)
    body = odm_bytes(client_for(sponsor), participant.trial)
    validate_with_xsd(body)
    root = check_structure(body)
    unscheduled = [e for e in root.iter(q("StudyEventData"))
                   if e.get("StudyEventOID") == "SE.UNSCHEDULED"]
    assert [e.get("StudyEventRepeatKey") for e in unscheduled] == ["1", "2"]
    assert all(e.find(q("FormData")).get("FormOID") == "F.adverse_events" for e in unscheduled)
