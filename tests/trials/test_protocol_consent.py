"""Protocol files: consent form versions, amendments and withdrawal rules (issue 17) are
checked at load, every problem named by its path, nothing loaded."""
from __future__ import annotations

import copy

from tests.trials.test_protocol_files import MINIMAL, problems, refused, write
from trials.services import load_protocol

CONSENT = {"versions": [
    {"code": "1.0", "date": "2014-01-01", "label": "Form 1.0",
     "optional_items": [{"code": "samples", "label": "Biological samples"}]},
    {"code": "2.0", "date": "2016-01-01", "label": "Form 2.0"}]}


def test_consent_amendments_and_withdrawal_load(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["version"] = "2.0"
    data["consent"] = copy.deepcopy(CONSENT)
    data["amendments"] = [{"protocol_version": "2.0", "consent_version": "2.0",
                           "reconsent": ["1.0"]}]
    data["withdrawal"] = {"treatment_visits": ["v1"], "vital_status_visits": []}
    assert load_protocol(write(tmp_path, data)).created


def test_bad_consent_and_amendment_declarations_are_refused_by_path(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["consent"] = copy.deepcopy(CONSENT)
    data["consent"]["versions"][1]["date"] = "2013-01-01"
    data["consent"]["versions"][0]["optional_items"].append(
        {"code": "samples", "label": "Again"})
    data["amendments"] = [
        {"protocol_version": "2.0", "consent_version": "3.0"},
        {"protocol_version": "2.0", "consent_version": "1.0", "reconsent": ["2.0", "9.9"]}]
    data["withdrawal"] = {"treatment_event": "nothing", "vital_status_visits": ["v9"]}
    assert problems(refused(tmp_path, data)) == {
        "consent.versions[1].date": "2013-01-01 is before the previous version's date "
                                    "(2014-01-01): list versions oldest first",
        "consent.versions[0].optional_items[1].code": "duplicate code 'samples'",
        "amendments[0].consent_version": "unknown consent version '3.0' (declare it under "
                                         "'consent.versions')",
        "amendments[1].protocol_version": "duplicate protocol_version '2.0'",
        "amendments[1].reconsent[0]": "'2.0' is not earlier than the amendment's consent "
                                      "version '1.0'",
        "amendments[1].reconsent[1]": "unknown consent version '9.9'",
        "withdrawal.treatment_event": "unknown event 'nothing'",
        "withdrawal.vital_status_visits[0]": "unknown visit 'v9'",
    }


def test_an_unknown_withdrawal_key_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["withdrawal"] = {"everything": True}
    assert "withdrawal" in problems(refused(tmp_path, data))
