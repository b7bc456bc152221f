"""The protocol's words in several languages: a file declares ``languages``, gives every text
shown to users in each of them, and is refused (file, path, problem) when one is missing, one is
undeclared, or a plain string stands where several languages are declared. Readers get the
definition in their language, the protocol's first when it has not theirs, without the author's
notes; codes never change."""
from __future__ import annotations

import copy

import pytest
import yaml
from django.utils import translation

from demo.data import demo_amendment
from tests.trials.test_protocol_files import MINIMAL, write
from trials.models import Trial, definition_of
from trials.protocol import (ProtocolError, localise, parse_protocol, read_protocol_file,
                             validate_definition)
from trials.services import load_protocol, shipped_protocol_files


def bilingual() -> dict:
    """MINIMAL in English and French, with notes for the author where the format allows them."""
    data = copy.deepcopy(MINIMAL)
    data["languages"] = ["en", "fr"]
    data["trial"]["title"] = {"en": "A minimal trial", "fr": "Un essai minimal"}
    for arm, fr in zip(data["arms"], ("Bras A", "Bras B")):
        arm["label"] = {"en": arm["label"], "fr": fr}
    data["eligibility"][0].update(text={"en": "Adult", "fr": "Adulte"},
                                  note="l.3: 'adults only'")
    data["visits"][0].update(label={"en": "Visit 1", "fr": "Visite 1"}, note="l.4")
    form, eligibility = data["crfs"]
    form.update(label={"en": "Form", "fr": "Formulaire"}, note="choice: one form")
    form["fields"][0].update(label={"en": "Weight", "fr": "Poids"}, unit={"en": "kg", "fr": "kg"},
                             help={"en": "On the day of the visit.", "fr": "Le jour de la visite."},
                             note="l.12: 'weight at each visit'")
    form["fields"].append({"code": "grade", "label": {"en": "Grade", "fr": "Grade"},
                           "type": "choice", "note": "Stratification factor 'grade'",
                           "choices": [{"code": "G1", "label": {"en": "Low", "fr": "Bas"},
                                        "note": "choice: two levels"},
                                       {"code": "G2", "label": {"en": "High", "fr": "Élevé"}}]})
    eligibility["label"] = {"en": "Eligibility", "fr": "Éligibilité"}
    eligibility["fields"][0]["label"] = {"en": "Adult", "fr": "Adulte"}
    return data


def keys(node) -> set[str]:
    """Every mapping key anywhere in ``node``."""
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in keys(v)}
    return set()


def problems(data: dict) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in validate_definition(data)]


def test_a_bilingual_file_loads_and_keeps_every_language(tmp_path):
    path = write(tmp_path, bilingual())
    data = read_protocol_file(path)
    assert data["crfs"][0]["fields"][0]["label"] == {"en": "Weight", "fr": "Poids"}


def test_a_file_without_languages_is_english_and_may_use_plain_strings():
    assert problems(copy.deepcopy(MINIMAL)) == []
    shown = localise(copy.deepcopy(MINIMAL), "fr")
    assert shown["crfs"][0]["fields"][0]["label"] == "Weight"


@pytest.mark.parametrize("edit, path, message", [
    (lambda d: d["crfs"][0]["fields"][0]["label"].pop("fr"),
     "crfs[0].fields[0].label", "no 'fr' text"),
    (lambda d: d["crfs"][0]["fields"][0]["label"].update(fr="  "),
     "crfs[0].fields[0].label", "no 'fr' text"),
    (lambda d: d["crfs"][0]["fields"][1]["choices"][1]["label"].pop("en"),
     "crfs[0].fields[1].choices[1].label", "no 'en' text"),
    (lambda d: d["visits"][0]["label"].update(de="Besuch 1"),
     "visits[0].label.de", "'de' is not a language of this protocol (en, fr)"),
    (lambda d: d["eligibility"][0].update(text="Adult"),
     "eligibility[0].text",
     "a plain string where the protocol declares several languages (en, fr): give one text per "
     "language"),
    (lambda d: d["crfs"][0]["fields"][0].update(help="On the day of the visit."),
     "crfs[0].fields[0].help",
     "a plain string where the protocol declares several languages (en, fr): give one text per "
     "language"),
    (lambda d: d["trial"]["title"].pop("fr"), "trial.title", "no 'fr' text"),
    (lambda d: d.update(languages=["en", "en"]), "languages", "has non-unique elements"),
    (lambda d: d.update(languages=["English"]), "languages[0]", "does not match"),
    # Codes are never translated: a mapping where a code is expected is refused by the shape.
    (lambda d: d["crfs"][0]["fields"][0].update(code={"en": "weight", "fr": "poids"}),
     "crfs[0].fields[0].code", "is not of type 'string'"),
    # Notes are plain strings, in one language, and only where the format allows them.
    (lambda d: d["crfs"][0]["fields"][0].update(note={"en": "l.12", "fr": "l.12"}),
     "crfs[0].fields[0].note", "is not of type 'string'"),
    (lambda d: d["sites"][0].update(note="choice"), "sites[0]", "unknown key(s): note"),
], ids=["missing-language", "empty-text", "missing-first-language", "undeclared-language",
        "plain-text", "plain-help", "title", "repeated-language", "not-a-language",
        "translated-code", "translated-note", "note-on-a-site"])
def test_a_bad_text_is_refused_with_its_path(edit, path, message):
    data = bilingual()
    edit(data)
    found = problems(data)
    assert any(p == path and message in m for p, m in found), found


def test_the_refusal_names_the_file_and_loads_nothing(tmp_path, db):
    data = bilingual()
    data["crfs"][0]["fields"][0]["label"].pop("fr")
    path = write(tmp_path, data)
    with pytest.raises(ProtocolError) as refused:
        load_protocol(path)
    assert str(path) in str(refused.value)
    assert "crfs[0].fields[0].label: no 'fr' text" in str(refused.value)
    assert not Trial.objects.filter(slug="mini").exists()


def test_semantic_checks_read_translated_labels():
    """A choice condition and duplicate codes are still found in a translated file."""
    data = bilingual()
    data["crfs"][0]["fields"][1]["choices"][1]["code"] = "G1"
    assert ("crfs[0].fields[1].choices[1].code", "duplicate code 'G1'") in problems(data)


def test_the_reader_gets_their_language_or_the_first_and_never_a_note():
    data = bilingual()
    french = localise(data, "fr")
    field, grade = french["crfs"][0]["fields"]
    assert (field["label"], field["unit"], field["help"]) == ("Poids", "kg",
                                                              "Le jour de la visite.")
    assert [c["label"] for c in grade["choices"]] == ["Bas", "Élevé"]
    assert french["visits"][0]["label"] == "Visite 1"
    assert french["eligibility"][0]["text"] == "Adulte"
    # a regional variant reads its language; one the protocol lacks reads the first (English)
    assert localise(data, "fr-ca")["crfs"][0]["label"] == "Formulaire"
    assert localise(data, "de")["crfs"][0]["label"] == "Form"
    assert localise(data, None)["crfs"][0]["label"] == "Form"
    # codes do not change; the author's notes are gone
    assert [c["code"] for c in grade["choices"]] == ["G1", "G2"]
    assert "note" not in keys(french)
    assert "l.12" not in yaml.safe_dump(french) and "choice:" not in yaml.safe_dump(french)
    assert data["crfs"][0]["fields"][0]["note"]  # the stored definition is not changed


def test_definition_of_follows_the_active_language_and_rows_keep_the_first(tmp_path, db):
    result = load_protocol(write(tmp_path, bilingual()))
    trial, version = result.trial, result.version
    with translation.override("fr"):
        assert definition_of(version.pk)["crfs"][0]["label"] == "Formulaire"
        assert trial.definition["arms"][0]["label"] == "Bras A"
    with translation.override("en"):
        assert definition_of(version.pk)["crfs"][0]["label"] == "Form"
    # The rows copied from the protocol keep its first language.
    assert trial.title == "A minimal trial"
    assert list(trial.arms.order_by("position").values_list("label", flat=True)) == [
        "Arm A", "Arm B"]


@pytest.mark.parametrize("path", shipped_protocol_files(), ids=lambda p: p.stem)
def test_both_shipped_files_load_and_notes_are_for_the_author_only(path):
    data = read_protocol_file(path)
    assert "note" in keys(data)
    for language in ("en", "fr"):
        assert "note" not in keys(localise(data, language))
    if "fr" in data.get("languages", []):
        french = localise(data, "fr")
        english = localise(data, "en")
        assert french["crfs"][1]["label"] != english["crfs"][1]["label"]
        assert [c["code"] for c in french["crfs"]] == [c["code"] for c in english["crfs"]]


def test_the_rectal_file_is_in_english_and_french():
    data = read_protocol_file("trials/protocols/rectal-resection.yaml")
    assert data["languages"] == ["en", "fr"]
    french = localise(data, "fr")
    crfs = {c["code"]: c for c in french["crfs"]}
    surgery = {f["code"]: f for f in crfs["surgery"]["fields"]}
    assert surgery["surgery_date"]["label"] == "Date de la chirurgie"
    ecog = {f["code"]: f for f in crfs["demographics"]["fields"]}["ecog"]
    assert ecog["label"] == "Indice de performance ECOG"
    assert ecog["choices"][0] == {"code": 0, "label": "0 - Pleinement actif"}
    # The author's citations left the help texts for notes.
    helps = [f.get("help", "") for c in localise(data, "en")["crfs"] for f in c["fields"]]
    assert not [h for h in helps if h.startswith(("l.", "choice:", "Stratification factor"))]



def test_an_amendment_made_from_the_stored_definition_keeps_every_language():
    """The demo's amendment adds texts in each of the protocol's languages and keeps its notes:
    a bilingual protocol's amendment loads like the protocol."""
    amended = demo_amendment(read_protocol_file("trials/protocols/rectal-resection.yaml"))
    assert validate_definition(amended) == []
    new = amended["consent"]["versions"][-1]
    assert set(new["label"]) == {"en", "fr"}
    assert "note" in keys(amended)


def test_a_definition_as_read_is_a_valid_definition_in_the_language_shown():
    french = localise(read_protocol_file("trials/protocols/rectal-resection.yaml"), "fr")
    assert french["languages"] == ["fr"]
    assert validate_definition(french) == []
