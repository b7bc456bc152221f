"""Exports of coded answers and partial dates: the CSV cell holds the code (ND, NA, UNK) and a
partial date its ISO 8601 reduced-precision text; the ODM file follows ODM 1.3's conventions
(ItemData IsNull="Yes" with the code as a FlagValue and the reason as a Comment; partialDate
items) and stays valid against CDISC's schema."""
from __future__ import annotations

from crfs.missing_data import MISSING_KEY
from scheduling.services import save_crf_and_replan as save_crf

from .conftest import demographics
from .test_exports import csv_url, download, read_csv, sponsor  # noqa: F401  (fixture)
from .test_odm import check_structure, item_data, odm_bytes, q, validate_with_xsd


def coded_demographics(participant, baseline, investigator):
    answers = demographics(participant, distance_anal_verge_cm=None, cea_ng_ml=None,
                           diagnosis_date="2019-03")
    answers[MISSING_KEY] = {"distance_anal_verge_cm": {"code": "UNK",
                                                       "reason": "MRI report & CT not sent"},
                            "cea_ng_ml": {"code": "ND"}}
    return save_crf(participant, "demographics", answers, by=investigator, complete=True,
                    visit=baseline)


def test_the_csv_holds_the_code_and_the_partial_date(participant, baseline, investigator,
                                                     sponsor, client_for):
    coded_demographics(participant, baseline, investigator)
    client = client_for(sponsor)
    wide = read_csv(download(client, csv_url(participant.trial, "demographics", "wide")))
    assert wide[0]["distance_anal_verge_cm"] == "UNK" and wide[0]["cea_ng_ml"] == "ND"
    assert wide[0]["diagnosis_date"] == "2019-03"
    assert "_missing" not in wide[0]
    long = read_csv(download(client, csv_url(participant.trial, "demographics", "long")))
    values = {r["field"]: r["value"] for r in long}
    assert values["distance_anal_verge_cm"] == "UNK" and values["cea_ng_ml"] == "ND"
    assert values["diagnosis_date"] == "2019-03"


def test_the_odm_file_flags_the_code_with_its_reason_and_types_partial_dates(
        participant, baseline, investigator, sponsor, client_for):
    coded_demographics(participant, baseline, investigator)
    body = odm_bytes(client_for(sponsor), participant.trial)
    validate_with_xsd(body)
    root = check_structure(body)
    (distance,) = item_data(root, participant.study_id,
                            "IT.demographics.distance_anal_verge_cm")
    assert distance.get("IsNull") == "Yes" and distance.get("Value") is None
    annotation = distance.find(q("Annotation"))
    assert annotation.find(q("Comment")).text == "MRI report & CT not sent"
    flag = annotation.find(q("Flag"))
    assert flag.find(q("FlagValue")).text == "UNK"
    assert flag.find(q("FlagValue")).get("CodeListOID") == "CL.MISSING"
    assert flag.find(q("FlagType")).text == "MISSING"
    assert distance.find(q("AuditRecord")) is not None  # who coded it, when
    (cea,) = item_data(root, participant.study_id, "IT.demographics.cea_ng_ml")
    assert cea.find(q("Annotation")).find(q("Comment")) is None  # no reason given
    (diagnosis,) = item_data(root, participant.study_id, "IT.demographics.diagnosis_date")
    assert diagnosis.get("Value") == "2019-03"
    item = next(d for d in root.iter(q("ItemDef"))
                if d.get("OID") == "IT.demographics.diagnosis_date")
    assert item.get("DataType") == "partialDate"
    codes = next(c for c in root.iter(q("CodeList")) if c.get("OID") == "CL.MISSING")
    assert [i.get("CodedValue") for i in codes] == ["ND", "NA", "UNK"]
