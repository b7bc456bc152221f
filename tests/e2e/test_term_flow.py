"""An investigator records an adverse event in a real browser: the term is picked from the
NCI-CTCAE v4.03 list (a datalist), the grades the term lacks cannot be chosen, a term not in the
list is refused by the server with its message, and the event is stored with the list's term."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from crfs.models import CRFRecord
from scheduling import services as scheduling
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_investigator_picks_a_ctcae_term_and_a_grade_it_has(page, protocols, make_user, request):
    trial = protocols["rectal-resection"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    coordinator = make_user("coordinator", trial, site)
    participant = factories.randomised(trial, site, by=coordinator, days_ago=20)
    visit = scheduling.add_unscheduled_visit(participant, on=timezone.localdate(),
                                             reason="Toxicity check", crfs=["adverse_events"],
                                             by=coordinator)
    make_user("investigator", trial, site, username="irene")

    login(page, "irene", PASSWORD)
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, visit.pk,
                                              "adverse_events"]))
    page.check("input[name='any_event'][value='true']")
    assert page.locator("datalist#terms-ctcae-4\\.03 option").count() == 790
    page.fill("input[name='events-0-term']", "Tiredness")
    grade = "select[name='events-0-grade']"
    assert not page.locator(f"{grade} option[value='4']").is_disabled()  # no term yet
    page.select_option(grade, "2")
    page.select_option("select[name='events-0-serious']", "false")
    page.select_option("select[name='events-0-attribution']", "possible")
    page.fill("input[name='events-0-start_date']", timezone.localdate().isoformat())
    page.select_option("select[name='events-0-ongoing']", "true")
    page.click("button:has-text('Save as complete')")
    # Next to the field, and in the error summary at the top, a link to the field.
    error = page.locator(".crf-cell .errorlist >> text=“Tiredness” is not a term of NCI-CTCAE "
                         "v4.03")
    assert error.is_visible()
    assert page.locator("[data-testid=error-summary] a[href='#id_events-0-term']").is_visible()
    assert not CRFRecord.objects.filter(participant=participant,
                                        crf_code="adverse_events").exists()

    page.fill("input[name='events-0-term']", "fatigue")
    assert page.locator(f"{grade} option[value='4']").is_disabled()  # Fatigue: grades 1-3
    assert page.locator(f"{grade} option[value='5']").is_disabled()
    assert not page.locator(f"{grade} option[value='3']").is_disabled()
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=saved (Complete)")
    record = CRFRecord.objects.get(participant=participant, crf_code="adverse_events")
    assert record.data["events"][0]["term"] == "Fatigue"
    assert record.data["events"][0]["grade"] == 2
    screenshot(page, f"ae-term-{request.node.callspec.id}")
    page.goto(reverse("visit_crf_edit", args=[trial.slug, participant.study_id, visit.pk,
                                              "adverse_events"]))
    assert page.is_visible("text=MedDRA 10016256 · General disorders and administration site "
                           "conditions")
    page.click("summary:has-text('Grade definitions')")
    assert page.is_visible("text=Fatigue not relieved by rest; limiting instrumental ADL")
    screenshot(page, f"ae-term-form-{request.node.callspec.id}")
