"""Query metrics (issue 20, item 4): open queries by age, the median times to answer and to
close, per site and per form, computed by the database on a data set of known durations."""
from __future__ import annotations

import datetime as dt

from django.contrib.auth import get_user_model

from crfs.metrics import query_metrics
from tests.monitoring.conftest import NOW

DAY = dt.timedelta(days=1)


def test_figures_per_site_and_for_the_whole_trial(queried, django_assert_num_queries):
    reader = get_user_model().objects.get(pk=queried.data_manager.pk)  # nothing cached
    with django_assert_num_queries(5):  # memberships, sites, by site, by form, all together
        m = query_metrics(reader, queried.trial, now=NOW)
    first, second = m.by_site[:2]
    assert (first.code, first.raised, first.open, first.young, first.middle, first.old) == (
        queried.sites[0].code, 3, 2, 1, 1, 0)
    assert (first.answered, first.median_to_answer) == (2, 3 * DAY)       # 2 and 4 days
    assert (first.closed, first.median_to_close) == (1, 5 * DAY)
    assert (second.raised, second.open, second.young, second.middle, second.old) == (2, 1, 0, 0, 1)
    assert (second.answered, second.median_to_answer) == (1, 1 * DAY)
    assert (second.closed, second.median_to_close) == (1, 8 * DAY)
    t = m.total
    assert (t.raised, t.open, t.young, t.middle, t.old) == (5, 3, 1, 1, 1)
    assert t.median_to_answer == 2 * DAY                                   # 2, 4, 1 days
    assert t.median_to_close == dt.timedelta(days=6.5)                     # 5 and 8 days
    assert [(f.code, f.raised, f.open) for f in m.by_form] == [("eligibility", 5, 3)]
    assert m.by_form[0].label == "Screening and eligibility"


def test_sites_without_queries_are_listed_with_nothing(world):
    m = query_metrics(world.data_manager, world.trial, now=NOW)
    assert all(s.raised == 0 and s.median_to_answer is None for s in m.by_site)
    assert m.total.raised == 0 and m.total.median_to_close is None and m.by_form == []


def test_the_age_bands_move_with_time(queried):
    later = query_metrics(queried.data_manager, queried.trial, now=NOW + 5 * DAY).total
    assert (later.young, later.middle, later.old) == (0, 2, 1)  # 3 days old is now 8


def test_a_site_scoped_reader_sees_only_its_site(queried, make_user):
    reader = make_user("data_manager", queried.trial, queried.sites[0])
    m = query_metrics(reader, queried.trial, now=NOW)
    assert [s.code for s in m.by_site] == [queried.sites[0].code]
    assert (m.total.raised, m.total.open, m.total.median_to_close) == (3, 2, 5 * DAY)


def test_a_role_without_the_permission_sees_nothing(queried):
    m = query_metrics(queried.investigators[0], queried.trial, now=NOW)
    assert m.by_site == [] and m.total.raised == 0
