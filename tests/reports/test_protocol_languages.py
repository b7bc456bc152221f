"""Exports of a protocol in several languages: the ODM file's form, item, choice and visit
names are in the protocol's first language whoever exports, and say so (``xml:lang``)."""
from __future__ import annotations

from tests.reports.test_odm import check_structure, odm_bytes, q
from tests.test_french import french

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def test_the_odm_file_is_in_the_protocols_first_language_for_a_french_reader(
        rectal, participant, make_user, client_for):
    sponsor = french(make_user("sponsor", rectal, None))
    root = check_structure(odm_bytes(client_for(sponsor), rectal))
    texts = list(root.iter(q("TranslatedText")))
    assert texts and {t.get(XML_LANG) for t in texts} == {"en"}
    questions = {t.text for t in texts}
    assert "Date of surgery" in questions and "Male" in questions
    assert "Date de la chirurgie" not in questions
    events = {e.get("Name") for e in root.iter(q("StudyEventDef"))}
    assert "Baseline (randomisation)" in events
