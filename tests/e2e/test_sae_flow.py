"""Issue 18 in a real browser: an investigator ticks "serious" on an adverse event, completes
and signs the SAE report it opened; the safety officer assesses it as a SUSAR and unblinds it
(and sees the arm); a coordinator and the sponsor's study staff still see no arm."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from randomisation.models import SafetyUnblinding
from safety.models import SAEReport
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def as_user(browser, live_server):
    contexts = []

    def open_as(username):
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      base_url=live_server.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        login(page, username, PASSWORD)
        return page
    yield open_as
    for context in contexts:
        context.close()


def test_an_sae_from_serious_to_susar_unblinded_for_pharmacovigilance_only(protocols, make_user,
                                                                          as_user):
    trial = protocols["reminet"]
    site = trial.sites.order_by("code").first()
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    make_user("coordinator", trial, site, username="camille")
    participant = factories.randomised(trial, site, by=make_user("coordinator", trial, site),
                                       days_ago=20)
    make_user("investigator", trial, site, username="irene", first_name="Irène",
              last_name="Curie")
    make_user("safety_officer", trial, None, username="sacha")
    make_user("sponsor", trial, None, username="sophie")
    arm = participant.allocation.arm.label
    onset = (timezone.localdate() - dt.timedelta(days=1)).isoformat()

    # The investigator ticks "serious" on an adverse event.
    page = as_user("irene")
    page.goto(f"/trials/{trial.slug}/participants/{participant.study_id}/crf/adverse_events/")
    page.check("input[name='any_event'][value='true']")
    page.fill("input[name='events-0-term']", "Pancreatitis")
    page.select_option("select[name='events-0-grade']", "3")
    page.select_option("select[name='events-0-serious']", "true")
    page.select_option("select[name='events-0-attribution']", "possible")
    page.fill("input[name='events-0-start_date']", onset)
    page.select_option("select[name='events-0-ongoing']", "true")
    page.click("button:has-text('Save as complete')")
    page.wait_for_selector("text=saved (Complete)")
    report = SAEReport.objects.get()
    assert page.is_visible(f"text=SAE report {report.number} (Pancreatitis) is open")

    # The clock shows on the home page; the report is completed and signed.
    page.goto("/")
    assert "1 due within 24 hours" in page.inner_text("[data-testid=sae-counts]")
    page.click("[data-testid=sae-counts] >> text=Serious adverse events")
    page.click(f"text={report.number}")
    page.check("input[name='criteria'][value='hospitalisation']")
    page.select_option("select[name='outcome']", "recovering")
    page.select_option("select[name='causality_study_product']", "related")
    page.fill("textarea[name='narrative']", "Admitted with acute pancreatitis; fasting, fluids.")
    page.click("button:has-text('Save the draft')")
    page.wait_for_selector("text=Draft saved.")
    page.fill("[data-testid=sae-sign] input[name='password']", PASSWORD)
    page.click("[data-testid=sae-sign] button:has-text('Sign')")
    page.wait_for_selector("text=CIOMS-I PDF")
    report.refresh_from_db()
    assert report.reported_at is not None and report.late_by() is None

    # The safety officer assesses it as a SUSAR, then unblinds it, and only then sees the arm.
    officer = as_user("sacha")
    officer.goto(f"/trials/{trial.slug}/safety/")
    officer.click(f"[data-testid=sae-to-assess] >> text={report.number}")
    officer.select_option("select[name='causality_study_product']", "related")
    officer.select_option("select[name='expectedness_study_product']", "unexpected")
    officer.click("button:has-text('Record the assessment')")
    officer.wait_for_selector("[data-testid=sae-assessment] >> text=SUSAR")
    assert arm not in officer.content()
    officer.click("text=Unblind for pharmacovigilance…")
    officer.fill("textarea[name='reason']", "Expedited SUSAR report to the authorities")
    officer.fill("input[name='password']", PASSWORD)
    officer.click("button:has-text('Unblind this participant')")
    officer.wait_for_selector("[data-testid=sae-arm]")
    assert arm in officer.inner_text("[data-testid=sae-arm]")
    assert SafetyUnblinding.objects.filter(user__username="sacha").count() == 1
    screenshot(officer, "sae-susar-unblinded")

    # The study team: still no arm, on the report, the participant's page or the allocation.
    for username in ("camille", "sophie"):
        member = as_user(username)
        for url in (f"/trials/{trial.slug}/safety/{report.pk}/",
                    f"/trials/{trial.slug}/safety/",
                    f"/trials/{trial.slug}/participants/{participant.study_id}/",
                    f"/trials/{trial.slug}/participants/{participant.study_id}/allocation/"):
            member.goto(url)
            assert arm not in member.content(), (username, url)
