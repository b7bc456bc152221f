"""Closed reports (issue 22): figures that compare the arms - per-arm survival curves, log-rank
p-values, hazard ratios, per-arm safety and enrolment tables - are for the data monitoring
committee and the unblinded statistician only, until the trial is locked and unblinded. Every
other reader gets pooled figures, in the open-label rectal trial too, where the arm of one
participant stays visible."""
from __future__ import annotations

import pytest
from django.urls import reverse

from reports import services as reports
from tests import factories
from tests.api import world
from tests.conftest import PASSWORD
from tests.outcomes.test_outcomes_pages import event, pdf_text
from trials.locks import step_trial
from trials.models import Trial

# role -> sees the comparison while the trial runs
READERS = {"dmc": True, "statistician": True, "sponsor": False, "data_manager": False,
           "monitor": False}


@pytest.fixture
def rectal_with_outcomes(rectal, statistician, coordinator_factory):
    """The open-label rectal trial with four participants randomised 200 days ago (arms
    alternate A, B), two of whom died."""
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    coordinator = coordinator_factory(rectal)
    people = [factories.randomised(rectal, by=coordinator, days_ago=200) for _ in range(4)]
    for p in people[:2]:
        event(p, "death", coordinator, 90)
    return rectal


def arm_labels(trial: Trial) -> list[str]:
    return [f"{code} — {label}" for code, label in trial.arms.values_list("code", "label")]


@pytest.mark.parametrize("role", sorted(READERS))
def test_the_outcomes_page_and_pdf_compare_arms_only_for_closed_readers(
        rectal_with_outcomes, make_user, client_for, role):
    trial = rectal_with_outcomes
    client = client_for(make_user(role, trial))
    page = client.get(reverse("trial_outcomes", args=[trial.slug]))
    assert page.status_code == 200
    text = page.content.decode()
    pdf = pdf_text(client.get(reverse("trial_outcomes_pdf", args=[trial.slug])).content)
    if READERS[role]:
        assert "Results per arm." in text and "Log-rank test" in text
        assert all(label in text for label in arm_labels(trial))
        assert "Log-rank test" in pdf and "per arm" in pdf
        assert "Interim analyses (closed report)" in text and "Interim analyses" in pdf
    else:
        assert "All participants" in text and "closed reports" in text
        for shown in (text, pdf):
            assert "Log-rank" not in shown and "Hazard ratio" not in shown
            assert "Interim analys" not in shown
            assert not any(label in shown for label in arm_labels(trial))
        assert "pooled (closed)" in pdf


def test_the_outcomes_report_through_the_api_is_built_and_read_by_the_same_rule(
        rectal_with_outcomes, make_user, statistician, client_for):
    def api(user):
        return client_for(user)

    trial = rectal_with_outcomes
    sponsor, dmc = make_user("sponsor", trial), make_user("dmc", trial)
    closed = world.built_report(trial, by=dmc, kind="outcomes")
    pooled = world.built_report(trial, by=sponsor, kind="outcomes")
    assert closed.with_arms and pooled.with_arms is False
    url = reverse("api_report_download", args=[trial.slug, closed.pk])
    assert api(sponsor).get(url).status_code == 403
    assert api(dmc).get(url).status_code == 200
    assert api(statistician).get(url).status_code == 200
    for user in (sponsor, dmc):  # the pooled report is anyone's with reports
        assert api(user).get(reverse("api_report_download", args=[
            trial.slug, pooled.pk])).status_code == 200


def test_the_enrolment_report_pools_arm_counts_for_the_open_label_sponsor(
        rectal_with_outcomes, make_user):
    trial = rectal_with_outcomes
    sponsor = make_user("sponsor", trial)
    report = world.built_report(trial, by=sponsor, kind="enrolment")
    assert report.with_arms is False
    text = pdf_text(bytes(type(report).objects.get(pk=report.pk).content))
    assert "All arms (pooled: closed)" in text
    assert not any(label in text for label in arm_labels(trial))
    dmc_report = world.built_report(trial, by=make_user("dmc", trial), kind="enrolment")
    assert dmc_report.with_arms
    # A casebook shows one participant's arm: in the open-label trial, the sponsor's right.
    assert reports.KINDS["casebook"].shows_arms_to(sponsor, trial)
    assert not reports.KINDS["outcomes"].shows_arms_to(sponsor, trial)


def test_the_lock_opens_the_comparison_to_every_reader_of_the_open_label_trial(
        rectal_with_outcomes, make_user, client_for):
    trial = rectal_with_outcomes
    client = client_for(make_user("sponsor", trial))
    url = reverse("trial_outcomes", args=[trial.slug])
    assert "Log-rank test" not in client.get(url).content.decode()
    data_manager = make_user("data_manager", trial)
    for step in ("freeze", "lock"):
        step_trial(trial, step, by=data_manager, reason="Database lock.", password=PASSWORD)
    assert "Log-rank test" in client.get(url).content.decode()


def test_the_dmc_sees_no_participant(rectal_with_outcomes, make_user, client_for):
    trial = rectal_with_outcomes
    client = client_for(make_user("dmc", trial))
    page = client.get(reverse("participant_list", args=[trial.slug])).content.decode()
    assert not any(p.study_id in page for p in trial.participants.all())
    api = client.get(reverse("api_participants", args=[trial.slug])).content.decode()
    assert not any(p.study_id in api for p in trial.participants.all())
