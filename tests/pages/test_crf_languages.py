"""The protocol's words in the reader's language on the CRF pages, and the author's notes on no
page: a French-speaking investigator reads the rectal trial's questions, choices, form and visit
names in French; an English one reads them in English; no note of either protocol shows on a
CRF page, the participant's page, the eligibility confirmation or a blank CRF."""
from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse
from django.utils import translation

from patients.models import Visit
from tests import factories
from tests.reports.test_reports import needs_pdftotext, pdf_text, pdftotext  # noqa: F401
from tests.test_french import french
from trials.models import Trial, crf_of


def text(response) -> str:
    assert response.status_code == 200, response.content[:500]
    return " ".join(html.unescape(response.content.decode()).split())


def notes(node) -> set[str]:
    """Every author's note of a stored protocol definition."""
    if isinstance(node, dict):
        found = {" ".join(node["note"].split())} if isinstance(node.get("note"), str) else set()
        return found | {n for v in node.values() for n in notes(v)}
    if isinstance(node, list):
        return {n for v in node for n in notes(v)}
    return set()


def crf_pages(trial: Trial, participant) -> list[str]:
    """The URL of every form of the participant's protocol: at a visit that collects it, or
    outside visits for an event form."""
    visits = list(Visit.objects.filter(participant=participant))
    urls = []
    for crf in participant.definition["crfs"]:
        visit = next((v for v in visits if crf["code"] in v.crfs), None)
        if visit is not None:
            urls.append(reverse("visit_crf_edit", args=[trial.slug, participant.study_id,
                                                       visit.pk, crf["code"]]))
        else:
            urls.append(reverse("crf_edit", args=[trial.slug, participant.study_id, crf["code"]]))
    return urls


def test_a_french_investigator_reads_the_form_in_french(participant, baseline, investigator,
                                                        client, client_for):
    client_for(french(investigator))
    page = text(client.get(reverse("visit_crf_edit", args=[
        participant.trial.slug, participant.study_id, baseline.pk, "demographics"])))
    assert "Données démographiques et maladie à l'inclusion" in page   # the form's name
    assert "Inclusion (randomisation)" in page                          # the visit's name
    assert "Indice de performance ECOG" in page and "Taille" in page    # questions
    assert "Homme" in page and "0 - Pleinement actif" in page           # choices
    assert "Foie" in page and "Autre(s) site(s) métastatique(s)" in page
    assert "Uniquement si « Autre » est coché ci-dessus." in page       # help
    assert 'value="male"' in page                                       # codes do not change
    assert "ECOG performance status" not in page and "Male" not in page
    assert "Demographics and baseline disease" not in page


def test_an_english_investigator_reads_the_same_form_in_english(participant, baseline,
                                                                investigator, client,
                                                                client_for):
    client_for(investigator)
    page = text(client.get(reverse("visit_crf_edit", args=[
        participant.trial.slug, participant.study_id, baseline.pk, "demographics"])))
    assert "Demographics and baseline disease" in page and "Baseline (randomisation)" in page
    assert "ECOG performance status" in page and "Male" in page
    assert "Indice de performance ECOG" not in page


def test_a_language_the_protocol_lacks_reads_its_first(participant):
    with translation.override("fr"):
        crf = crf_of(participant.protocol_version_id, "demographics")
    assert crf["label"] == "Données démographiques et maladie à l'inclusion"
    with translation.override("de"):
        crf = crf_of(participant.protocol_version_id, "demographics")
    assert crf["label"] == "Demographics and baseline disease"


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("trial_name", ["rectal", "reminet"])
def test_no_note_shows_on_any_crf_page_of_either_trial(trial_name, language, request,
                                                       statistician, make_user, client,
                                                       client_for):
    trial = request.getfixturevalue(trial_name)
    factories.sealed_list(trial, by=statistician)
    site = trial.sites.order_by("code").first()
    coordinator = make_user("coordinator", trial, site)
    participant = factories.randomised(trial, by=coordinator, days_ago=30)
    investigator = make_user("investigator", trial, site)
    if language == "fr":
        french(investigator)
    client_for(investigator)
    written = notes(participant.protocol_version.definition)
    assert len(written) > 3
    pages = [text(client.get(url)) for url in crf_pages(trial, participant)]
    for name in ("participant_detail", "confirm_eligibility"):
        pages.append(text(client.get(reverse(name, args=[trial.slug, participant.study_id]))))
    assert len(pages) == len(participant.definition["crfs"]) + 2
    if trial_name == "rectal" and language == "fr":
        assert "Adénocarcinome du rectum confirmé histologiquement" in pages[-1]
    for page in pages:
        shown = [n for n in written if len(n) > 5 and n in page]
        assert not shown, shown


@needs_pdftotext
@pytest.mark.parametrize("variant", ["annotated", "plain"])
@pytest.mark.parametrize("trial_name", ["rectal", "reminet"])
def test_no_note_shows_on_the_blank_crfs(trial_name, variant, request, make_user, client,
                                         client_for, tmp_path):
    trial = request.getfixturevalue(trial_name)
    reader = make_user("investigator", trial, trial.sites.order_by("code").first())
    client_for(french(reader))
    response = client.get(reverse("blank_crf_pdf", args=[trial.slug, 1, variant, "all"]))
    assert response.status_code == 200
    printed = " ".join(pdf_text(response.content, tmp_path).split())
    written = notes(trial.versions.get(number=1).definition)
    shown = [n for n in written if len(n) > 5 and n[:40] in printed]
    assert not shown, shown
    if "fr" in trial.definition.get("languages", []):
        assert "Date de la chirurgie" in printed and "Cœlioscopie" in printed


def test_the_trial_page_shows_the_arms_and_title_in_french(rectal, make_user, client,
                                                           client_for):
    client_for(french(make_user("investigator", rectal, rectal.sites.order_by("code").first())))
    page = text(client.get(reverse("trial_detail", args=[rectal.slug])))
    assert "Résection de la tumeur primitive + chimiothérapie" in page
    assert "Chimiothérapie seule" in page
    assert re.search(r"Résection de la tumeur primitive suivie de chimiothérapie", page)
    assert "(l.1, l.12)" not in page
