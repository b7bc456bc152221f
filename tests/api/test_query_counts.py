"""No N+1: a list costs the same number of queries for 1 row as for many."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crfs import services as crfs
from tests import factories
from tests.api import world


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, {"page_size": 200})
    assert response.status_code == 200, response.content
    return len(ctx.captured_queries)


@pytest.mark.parametrize("name, needs_participant", [
    ("api_participants", False), ("api_trial_visits", False), ("api_queries", False),
    ("api_visits", True), ("api_crfs", True), ("api_trials", False), ("api_sites", False),
    ("api_reconsent", False)])
def test_lists_do_not_grow_with_rows(places, make_user, api, name, needs_participant):
    trial, own = places.trial, places.own
    user = make_user("investigator", trial, own.site)
    args = [trial.slug] + ([own.participant.study_id] if needs_participant else [])
    if name == "api_trials":
        args = []
    url = reverse(name, args=args)
    client = api(user)
    client.get(url)  # warm the per-process protocol cache
    before = _count(client, url)
    # More of everything at the site: participants, visits, CRFs, queries.
    for _ in range(3):
        extra = world.build(trial, own.site, staff=places.staff,
                            data_manager=places.data_manager)
        crfs.raise_query(extra.record, by=places.data_manager, field_path="INC1", text="?")
    factories.participant(trial, own.site, by=places.staff)
    crfs.raise_query(own.record, by=places.data_manager, field_path="INC2", text="?")
    assert _count(client, url) == before, name
