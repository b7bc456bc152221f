"""The rectal trial with a randomised arm A participant at the first site, the people who work
on it (an investigator and a coordinator of that site, an investigator of the second site, a
data manager of all sites) and the baseline demographics CRF, the form most tests sign, lock
and query."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from demo.data import crf_answers
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from trials.models import crf_of


@pytest.fixture
def sites(rectal):
    return list(rectal.sites.order_by("code"))


@pytest.fixture
def site(sites):
    return sites[0]


@pytest.fixture
def coordinator(rectal, site, statistician, make_user):
    """A coordinator of the first site; every stratum allocates A, B, A, B…"""
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    return make_user("coordinator", rectal, site)


@pytest.fixture
def investigator(rectal, site, make_user):
    return make_user("investigator", rectal, site, first_name="Irène", last_name="Curie")


@pytest.fixture
def other_investigator(rectal, sites, make_user):
    """An investigator of the second site."""
    return make_user("investigator", rectal, sites[1])


@pytest.fixture
def data_manager(rectal, make_user):
    return make_user("data_manager", rectal, None, first_name="Damien", last_name="Manager")


@pytest.fixture
def participant(rectal, coordinator):
    """Randomised 30 days ago (arm A): the baseline visit is in the past."""
    return factories.randomised(rectal, by=coordinator, days_ago=30)


@pytest.fixture
def baseline(participant) -> Visit:
    return Visit.objects.get(participant=participant, code="baseline")


def demographics(participant, **overrides) -> dict:
    crf = crf_of(participant.protocol_version_id, "demographics")
    answers = crf_answers(crf, on=timezone.localdate(), **overrides)
    answers.update({"year_of_birth": 1958, "height_cm": "172.0", "weight_kg": "71.5"})
    answers.update(overrides)
    return answers


@pytest.fixture
def complete(participant, baseline, investigator):
    """The baseline demographics CRF, saved as complete by the investigator."""
    return save_crf(participant, "demographics", demographics(participant), by=investigator,
                    complete=True, visit=baseline)


def crf_url(record) -> str:
    p = record.participant
    return reverse("visit_crf_edit", args=[p.trial.slug, p.study_id, record.visit_id,
                                           record.crf_code])


def record_url(name: str, record) -> str:
    p = record.participant
    return reverse(name, args=[p.trial.slug, p.study_id, record.pk])


def query_url(name: str, query) -> str:
    p = query.record.participant
    return reverse(name, args=[p.trial.slug, p.study_id, query.pk])
