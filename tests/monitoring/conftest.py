"""A REMINET with two sites and data queries of known ages and durations (``queried``), and
audit entries of both sites (``audited``), shared by the monitoring tests."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest
import time_machine

from crfs import services as crfs
from crfs.models import CRFRecord
from tests import factories

# The instant every figure is computed at.
NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.timezone.utc)


def days_ago(days: float) -> dt.datetime:
    return NOW - dt.timedelta(days=days)


@dataclass
class World:
    trial: object
    sites: list
    participants: list     # one per site
    data_manager: object
    investigators: list    # one per site
    coordinators: list     # one per site


@pytest.fixture
def world(reminet, statistician, make_user):
    factories.sealed_list(reminet, by=statistician)
    sites = list(reminet.sites.order_by("code")[:2])
    coordinators = [make_user("coordinator", reminet, s) for s in sites]
    investigators = [make_user("investigator", reminet, s) for s in sites]
    with time_machine.travel(days_ago(60), tick=False):
        participants = [factories.eligible_participant(reminet, s, by=c)
                        for s, c in zip(sites, coordinators)]
    return World(reminet, sites, participants, make_user("data_manager", reminet),
                 investigators, coordinators)


def _query(world, i: int, raised: float, answered: float | None = None,
           closed: float | None = None):
    """A query on participant ``i``'s eligibility form, raised, answered and closed that many
    days before ``NOW``."""
    record = CRFRecord.objects.get(participant=world.participants[i], crf_code="eligibility")
    with time_machine.travel(days_ago(raised), tick=False):
        query = crfs.raise_query(record, by=world.data_manager, field_path="screening_date",
                                 text="Please check the screening date.")
    if answered is not None:
        with time_machine.travel(days_ago(answered), tick=False):
            query = crfs.answer_query(query, by=world.investigators[i], text="Checked: right.")
    if closed is not None:
        with time_machine.travel(days_ago(closed), tick=False):
            query = crfs.close_query(query, by=world.data_manager)
    return query


@pytest.fixture
def queried(world):
    """First site: closed after 5 days (answered after 2), answered after 4 days and open 20
    days, open 3 days. Second site: open 50 days with no answer; closed after 8 days (answered
    after 1)."""
    _query(world, 0, raised=40, answered=38, closed=35)
    _query(world, 0, raised=20, answered=16)
    _query(world, 0, raised=3)
    _query(world, 1, raised=50)
    _query(world, 1, raised=10, answered=9, closed=2)
    return world
