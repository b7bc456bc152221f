"""A data manager raises a query on one field of a CRF; the investigator sees it next to the
field, corrects the value in answer; the data manager closes it. In a real browser."""
from __future__ import annotations

import pytest
from django.utils import timezone

from crfs.models import DataQuery
from demo.data import crf_answers
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot
from trials.models import crf_of

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_data_manager_raises_a_query_that_the_investigator_answers(page, protocols, make_user,
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
    make_user("data_manager", trial, None, username="damien")
    make_user("investigator", trial, site, username="irene")
    crf_page = (f"/trials/{trial.slug}/participants/{participant.study_id}/visits/"
                f"{baseline.pk}/crf/demographics/")

    login(page, "damien", PASSWORD)
    page.goto(crf_page)
    page.click("text=Raise a query…")
    page.select_option("select[name='field_path']", "weight_kg")
    page.fill("textarea[name='text']", "The source document says 75 kg.")
    page.click("button:has-text('Raise the query')")
    page.wait_for_selector("text=Query #")
    query = DataQuery.objects.get()
    page.click("form[action$='/logout/'] button")

    login(page, "irene", PASSWORD)
    page.goto(f"/trials/{trial.slug}/visits/")
    page.click(f"[data-testid=query-list] >> text={query.pk}")
    flag = page.locator("#weight_kg-field [data-testid=field-query]")
    assert "The source document says 75 kg." in flag.inner_text()
    page.fill("input[name='weight_kg']", "75")
    page.select_option("select[name='answers_query']", str(query.pk))
    page.fill("textarea[name='reason']", "Transcription error: 75 kg in the source.")
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=saved (Complete)")
    assert "Answered" in page.inner_text(f"#query-{query.pk} [data-testid=query-status]")
    page.click("form[action$='/logout/'] button")

    login(page, "damien", PASSWORD)
    page.goto(crf_page)
    page.click(f"#query-{query.pk} >> button:has-text('Close the query')")
    page.wait_for_selector(f"text=Query #{query.pk} closed.")
    assert page.inner_text(f"#query-{query.pk} [data-testid=query-status]") == "Closed"
    query.refresh_from_db()
    record.refresh_from_db()
    assert query.status == "closed" and record.data["weight_kg"] == "75.0"
    assert [m.kind for m in query.messages.order_by("at", "pk")] == ["raised", "corrected",
                                                                     "closed"]
    screenshot(page, f"query-closed-{request.node.callspec.id}")
