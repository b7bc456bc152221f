"""A REMINET participant with a serious adverse event saved through the CRF save the pages
call (``save_crf_and_replan``), which opens its SAE report."""
from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from scheduling.services import save_crf_and_replan
from tests import factories
from tests.conftest import PASSWORD

__all__ = ["PASSWORD"]


def ae_rows(*, serious=True, grade=3, days_ago=2, term="Febrile neutropenia"):
    day = (timezone.localdate() - dt.timedelta(days=days_ago)).isoformat()
    return [{"term": term, "grade": grade, "serious": serious, "attribution": "possible",
             "start_date": day, "ongoing": True}]


def save_ae(participant, by, rows, record=None, reason=""):
    return save_crf_and_replan(participant, "adverse_events",
                               {"any_event": True, "events": rows}, by=by, complete=False,
                               record=record, reason=reason)


@pytest.fixture
def world(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    site = trial.sites.order_by("code").first()
    investigator = make_user("investigator", trial, site, first_name="Ines", last_name="Vestig")
    officer = make_user("safety_officer", trial, None, first_name="Safe", last_name="Officer")
    sponsor = make_user("sponsor", trial, None)
    participant = factories.randomised(trial, site, by=coordinator, days_ago=30)
    return {"trial": trial, "site": site, "coordinator": coordinator,
            "investigator": investigator, "officer": officer, "sponsor": sponsor,
            "participant": participant}


@pytest.fixture
def sae(world):
    """The SAE report opened by ticking "serious" on an adverse event row."""
    from safety.models import SAEReport

    save_ae(world["participant"], world["investigator"], ae_rows())
    return SAEReport.objects.get(participant=world["participant"])


def complete_values(report, **over):
    values = {"criteria": ["hospitalisation"], "onset_date": report.versions.get(number=0).onset_date,
              "aware_at": report.aware_at, "outcome": "recovering", "death_date": None,
              "causality": {"study_product": "related"},
              "narrative": "Admitted with fever and neutropenia; antibiotics."}
    values.update(over)
    return values
