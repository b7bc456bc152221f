"""Sizes and formats in a real browser: a very long word in a data query and its answer does not
widen the CRF page; in French, the registration form's date box shows its prefilled date (an
``<input type="date">`` drops a value not written ``YYYY-MM-DD``)."""
from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.models import Profile
from crfs import services as crfs
from demo.data import crf_answers
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot
from trials.models import crf_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_query_of_one_very_long_word_does_not_widen_the_crf_page(page, protocols, make_user,
                                                                   request):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, site)
    participant = factories.randomised(trial, site, by=coordinator, days_ago=20)
    baseline = Visit.objects.get(participant=participant, code="baseline")
    answers = crf_answers(crf_of(participant.protocol_version_id, "demographics"),
                          on=timezone.localdate(), year_of_birth=1950, height_cm="170.0",
                          weight_kg="57.0")
    record = save_crf(participant, "demographics", answers, by=coordinator, complete=True,
                      visit=baseline)
    data_manager = make_user("data_manager", trial, None, username="damien")
    investigator = make_user("investigator", trial, site, username="irene")
    word = "W" * 2_000  # the longest a query may be (core.limits.QUERY_TEXT)
    query = crfs.raise_query(record, by=data_manager, field_path="weight_kg", text=word)
    crfs.answer_query(query, by=investigator, text="A" * 2_000)

    login(page, "irene", PASSWORD)
    page.goto(f"/trials/{trial.slug}/participants/{participant.study_id}/visits/"
              f"{baseline.pk}/crf/demographics/")
    page.wait_for_selector(f"#query-{query.pk}")
    assert word[:50] in page.inner_text(f"#query-{query.pk}")
    width, viewport = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport, f"the page is {width} px wide in a {viewport} px window"
    for url in (f"/trials/{trial.slug}/participants/{participant.study_id}/",
                f"/trials/{trial.slug}/visits/"):  # the participant page, the query list
        page.goto(url)
        width, viewport = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]")
        assert width <= viewport, f"{url} is {width} px wide in a {viewport} px window"
    screenshot(page, f"long-word-query-{request.node.callspec.id}")


def test_the_registration_date_box_shows_todays_date_in_french(page, protocols, make_user):
    trial = protocols["reminet"]
    site = trial.sites.order_by("code").first()
    coordinator = make_user("coordinator", trial, site, username="camille")
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})

    login(page, "camille", PASSWORD)
    page.goto(f"/trials/{trial.slug}/participants/new/")
    assert page.get_attribute("html", "lang") == "fr"
    assert page.input_value("#id_screened_on") == timezone.localdate().isoformat()


def test_an_sae_narrative_of_one_very_long_word_does_not_widen_the_sae_page(
        page, reminet_ready, make_user):
    from safety import services as safety
    from safety.models import SAEReport
    from tests.safety.conftest import ae_rows, complete_values, save_ae

    trial, coordinator = reminet_ready
    site = trial.sites.order_by("code").first()
    investigator = make_user("investigator", trial, site, username="ines")
    participant = factories.randomised(trial, site, by=coordinator, days_ago=30)
    save_ae(participant, investigator, ae_rows())
    report = SAEReport.objects.get(participant=participant)
    narrative = "N" * 20_000  # the longest an SAE narrative may be (core.limits.NARRATIVE)
    safety.save_draft(report, complete_values(report, narrative=narrative), by=investigator)
    safety.sign_version(report.versions.get(), by=investigator, password=PASSWORD)

    login(page, "ines", PASSWORD)
    page.goto(f"/trials/{trial.slug}/safety/{report.pk}/")
    assert narrative[:50] in page.inner_text("main")
    width, viewport = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= viewport, f"the SAE page is {width} px wide in a {viewport} px window"
    # The versions' table scrolls sideways inside its box: the narrative's own cell must wrap.
    cell = page.locator("td", has_text=narrative[:50]).last.bounding_box()
    assert cell["width"] <= viewport, f"the narrative's cell is {cell['width']} px wide"
