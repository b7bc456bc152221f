"""A coordinator meets a re-consent after an amendment and records a withdrawal, in a real
browser (issue 17, items 4-5)."""
from __future__ import annotations

import copy

import pytest
from django.utils import timezone

from demo.data import demo_amendment
from patients.models import Participant, Withdrawal
from tests import factories
from tests.conftest import PASSWORD
from tests.e2e.conftest import login
from trials.services import store_protocol

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_coordinator_records_a_reconsent_then_a_withdrawal(page, protocols, make_user):
    trial = protocols["reminet"]
    factories.sealed_list(trial, by=make_user("statistician", trial), slots_per_stratum=8)
    site = trial.sites.order_by("code").first()
    coordinator = make_user("coordinator", trial, site, username="camille")
    p = factories.randomised(trial, site, by=coordinator, days_ago=20)
    store_protocol(demo_amendment(copy.deepcopy(trial.current_version.definition)),
                   source_file="test")
    trial.refresh_from_db()

    login(page, "camille", PASSWORD)
    page.click(f"text={trial.short_title}")
    page.click("text=Re-consent worklist")
    page.click(f"text={p.study_id}")
    page.wait_for_selector("[data-testid=reconsent-pending]")

    page.click("text=Record a re-consent or a correction")
    page.fill("#id_consent_date", timezone.localdate().isoformat())
    page.select_option("#id_consent_version", "2.0")
    page.select_option("#id_item_qol_contact", "yes")
    page.click("button:has-text('Record consent')")
    page.wait_for_selector("text=Consent recorded.")
    assert not page.is_visible("[data-testid=reconsent-pending]")

    page.click("text=Record a withdrawal")
    page.check("input[name='level'][value='visits']")
    page.fill("#id_withdrawn_on", timezone.localdate().isoformat())
    page.fill("#id_reason", "Moved away, agrees to be called")
    page.click("button:has-text('Record the withdrawal')")
    page.wait_for_selector("text=Withdrawal recorded.")
    assert page.is_visible("text=Moved away, agrees to be called")
    assert Withdrawal.objects.get(participant=p).level == "visits"
    assert Participant.objects.get(pk=p.pk).protocol_version_id == trial.current_version_id
