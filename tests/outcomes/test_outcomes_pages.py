"""The Outcomes page and the outcomes report: who reads them, what a blinded reader sees (pooled
figures, never an arm), the end-of-trial unblinding that opens the arms to every member, and a
PDF that parses and says what it should."""
from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from demo.data import crf_answers
from reports.outcomes_report import build_outcomes_report
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.randomisation.test_blinding import assert_no_arm
from trials.models import Trial, crf_of
from trials.locks import step_trial
from trials.services import unblind_trial


def pdf_text(content: bytes) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("needs pdftotext (poppler-utils) to read the PDF")
    done = subprocess.run(["pdftotext", "-", "-"], input=content, capture_output=True,
                          check=True)
    return " ".join(done.stdout.decode().split())  # lines wrap where the layout wraps them


def event(participant, crf_code, by, on_day: int, **answers):
    randomised_on = timezone.localdate(participant.allocation.randomised_at)
    crf = crf_of(participant.protocol_version_id, crf_code)
    save_crf(participant, crf_code, crf_answers(crf, on=randomised_on + dt.timedelta(days=on_day),
                                                **answers), by=by, complete=True)


@pytest.fixture
def reminet_with_outcomes(reminet, statistician, coordinator_factory):
    """REMINET with six participants randomised a year ago (arms alternate), three progressed."""
    factories.scripted_list(reminet, by=statistician, arms=["LAN", "PBO"])
    coordinator = coordinator_factory(reminet)
    people = [factories.randomised(reminet, by=coordinator, days_ago=365) for _ in range(6)]
    for p, day in zip(people, (60, 150, 250)):
        event(p, "progression", coordinator, day)
    event(people[3], "tumour_assessment", coordinator, 200)
    return reminet


def test_the_statistician_sees_each_arm_with_the_log_rank_test(reminet_with_outcomes,
                                                                statistician, client_for):
    page = client_for(statistician).get(reverse("trial_outcomes", args=["reminet"]))
    text = page.content.decode()
    assert page.status_code == 200
    assert "Lanreotide autogel 120 mg" in text and "Placebo" in text
    assert "Log-rank test" in text and text.count("<svg") == 2
    assert "Progression-free survival at 6 months, exact 90 % CI" in text
    assert "Number at risk" in text and "Clopper-Pearson" in text
    assert "Hazard ratio, PBO vs LAN: " in text and "Wald p" in text
    assert "(stratified by grade, l1_response)" in text
    assert "the convention of R&#x27;s survfit" in text and "log(-log) scale" in text


@pytest.mark.parametrize("role", ["sponsor", "data_manager"])
def test_a_blinded_reader_gets_pooled_figures_only(reminet_with_outcomes, make_user, client_for,
                                                   role):
    trial = reminet_with_outcomes
    reader = make_user(role, trial)
    client = client_for(reader)
    page = client.get(reverse("trial_outcomes", args=["reminet"])).content.decode()
    assert "All participants" in page and "Pooled figures only" in page
    assert "Log-rank" not in page and "Hazard ratio" not in page and "stratified" not in page
    assert "the convention of R&#x27;s survfit" in page, "the median's method is stated"
    assert_no_arm(trial, page, "outcomes page")
    pdf = client.get(reverse("trial_outcomes_pdf", args=["reminet"]))
    text = pdf_text(pdf.content)
    assert "All participants" in text and "pooled (blinded)" in text
    assert "Hazard ratio" not in text and "Log-rank" not in text
    assert_no_arm(trial, text, "outcomes report")


@pytest.mark.parametrize("role", ["investigator", "coordinator"])
def test_roles_without_reports_may_not_open_the_page(reminet_with_outcomes, make_user, client_for,
                                                     role):
    trial = reminet_with_outcomes
    client = client_for(make_user(role, trial, trial.sites.order_by("code").first()))
    # A member of the trial: may see it, may not do this (403, as the API answers).
    assert client.get(reverse("trial_outcomes", args=["reminet"])).status_code == 403
    assert client.get(reverse("trial_outcomes_pdf", args=["reminet"])).status_code == 403
    with pytest.raises(PermissionDenied):
        build_outcomes_report(trial, viewer=make_user(role, trial), stream=io.BytesIO())


def test_the_report_parses_and_states_what_it_should(reminet_with_outcomes, statistician):
    stream, steps = io.BytesIO(), []
    build_outcomes_report(reminet_with_outcomes, viewer=statistician, stream=stream,
                          progress=lambda percent, step: steps.append(percent))
    text = pdf_text(stream.getvalue())
    for expected in ("Outcomes report", "Progression-free survival", "primary endpoint",
                     "Overall survival", "Number at risk", "Lanreotide autogel 120 mg",
                     "Log-rank test", "Adverse events", "Methods", "Clopper-Pearson",
                     "No direct identifiers", "Hazard ratio, PBO vs LAN", "Wald p",
                     "stratified by grade, l1_response", "Cox proportional-hazards"):
        assert expected in text, expected
    assert "REMINET-01-0001" not in text, "no study IDs"
    assert steps[0] < steps[-1] == 100 and steps == sorted(steps)


def test_the_rectal_report_has_the_clavien_dindo_table(rectal, statistician, coordinator_factory,
                                                       client_for):
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    coordinator = coordinator_factory(rectal)
    p = factories.randomised(rectal, by=coordinator, days_ago=120)
    event(p, "surgery", coordinator, 10)
    event(p, "clavien_dindo", coordinator, 40, any_complication=False)
    page = client_for(statistician).get(reverse("trial_outcomes", args=[rectal.slug]))
    text = page.content.decode()
    assert "worst Clavien-Dindo grade" in text
    assert "<td>Grade 0 (no complication)</td><td>1 (100 %)</td>" in text
    assert "Time to progression" in text and "Overall survival at 24 months" in text
    # The primary analysis of overall survival: stratified by the randomisation strata, with
    # the hazard ratio (not estimable here, and saying why), the median on R's log scale.
    assert "Log-rank test stratified by the randomisation strata (site, metastatic_extent)" in text
    assert "Hazard ratio, B vs A: not estimable (no participant in arm B)" in text
    assert "log scale (R&#x27;s conf.type &quot;log&quot;, its default)" in text
    pdf = client_for(statistician).get(reverse("trial_outcomes_pdf", args=[rectal.slug]))
    assert "Post-operative morbidity" in pdf_text(pdf.content)


def test_unblinding_the_trial_at_its_end_opens_the_arms_to_every_member(
        reminet_with_outcomes, statistician, make_user, client_for):
    trial = reminet_with_outcomes
    sponsor = make_user("sponsor", trial)
    with pytest.raises(PermissionDenied):
        unblind_trial(trial, by=sponsor, reason="end", password=PASSWORD)
    with pytest.raises(ValidationError):
        unblind_trial(trial, by=statistician, reason="end", password="wrong")
    with pytest.raises(ValidationError):
        unblind_trial(trial, by=statistician, reason="  ", password=PASSWORD)
    with pytest.raises(ValidationError, match="the data manager locks the trial before"):
        unblind_trial(trial, by=statistician, reason="end", password=PASSWORD)
    assert Trial.objects.get(pk=trial.pk).unblinded_at is None

    _lock(trial, make_user)
    # Locked but still blinded: the comparison stays closed (the data monitoring committee's).
    page = client_for(sponsor).get(reverse("trial_outcomes", args=[trial.slug])).content.decode()
    assert "Log-rank test" not in page

    client = client_for(statistician)
    response = client.post(reverse("unblind_trial", args=[trial.slug]),
                           {"reason": "Database locked after the last follow-up.",
                            "password": PASSWORD})
    assert response.status_code == 302
    assert Trial.objects.get(pk=trial.pk).unblinded_at is not None
    entry = AuditEvent.objects.get(action="trial.unblinded")
    assert entry.actor == statistician and "Database locked" in entry.message

    # Locked and unblinded: every member reads the comparison.
    page = client_for(sponsor).get(reverse("trial_outcomes", args=[trial.slug])).content.decode()
    assert "Lanreotide autogel 120 mg" in page and "Log-rank test" in page
    with pytest.raises(ValidationError):
        unblind_trial(trial, by=statistician, reason="again", password=PASSWORD)


def _lock(trial, make_user):
    """The data manager freezes then locks the trial, as the unblinding requires."""
    data_manager = make_user("data_manager", trial)
    for step in ("freeze", "lock"):
        step_trial(trial, step, by=data_manager, reason="Last follow-up done.",
                   password=PASSWORD)


def test_the_command_unblinds_too(reminet, statistician, make_user):
    _lock(reminet, make_user)
    call_command("unblind_trial", "reminet", by=statistician.username,
                 reason="End of trial", password=PASSWORD, stdout=io.StringIO())
    assert not Trial.objects.get(pk=reminet.pk).is_blinded


def test_the_trial_page_links_the_outcomes(reminet, statistician, client_for):
    page = client_for(statistician).get(reverse("trial_detail", args=["reminet"])).content.decode()
    assert reverse("trial_outcomes", args=["reminet"]) in page
    assert reverse("unblind_trial", args=["reminet"]) in page


def test_the_page_costs_the_same_queries_whatever_the_size(reminet_with_outcomes, statistician,
                                                           client_for,
                                                           django_assert_max_num_queries):
    client = client_for(statistician)
    client.get(reverse("trial_outcomes", args=["reminet"]))
    with django_assert_max_num_queries(16):
        client.get(reverse("trial_outcomes", args=["reminet"]))
