"""Query metrics (issue 20, item 4): open queries by age, the median times to answer and to
close, per site and per form, computed by the database on a data set of known durations."""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crfs.metrics import query_metrics
from reports.models import ReportStatus
from tests.monitoring.conftest import NOW, _query
from tests.reports.test_reports import built, pdf_text, pdftotext  # noqa: F401 (a fixture)

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


# --------------------------------------------------------------------------- the page


def metrics_page(client, world):
    return client.get(reverse("query_metrics", args=[world.trial.slug]))


def test_the_page_shows_the_figures_to_readers_of_reports(queried, make_user, client_for):
    sponsor = make_user("sponsor", queried.trial)
    with time_machine.travel(NOW, tick=False):
        response = metrics_page(client_for(sponsor), queried)
    assert response.status_code == 200
    body = " ".join(response.content.decode().split())
    site = queried.sites[1]
    # Second site: 2 raised, 1 open (over 30 days), 1 answered in 1 day, 1 closed in 8 days.
    assert (f"<td>{site.code} — {site.name}</td><td>2</td><td>1</td> <td>0</td><td>0</td>"
            f"<td>1</td> <td>1</td><td>1.0</td> <td>1</td><td>8.0</td>") in body
    assert "<td>6.5</td>" in body  # all sites: the median time to close


def test_the_page_is_refused_to_site_staff(queried, client_for):
    assert metrics_page(client_for(queried.coordinators[0]), queried).status_code == 403


def test_the_page_takes_as_many_queries_with_many_queries_as_with_few(
        queried, client_for, django_assert_num_queries):
    client = client_for(queried.data_manager)
    metrics_page(client, queried)  # the session's first request checks the second factor
    with CaptureQueriesContext(connection) as few:
        metrics_page(client, queried)
    with time_machine.travel(NOW, tick=False):
        for days in range(12):
            _query(queried, days % 2, raised=days + 1, answered=days / 2 if days % 3 else None)
    with django_assert_num_queries(len(few)):
        assert metrics_page(client, queried).status_code == 200


# --------------------------------------------------------------------------- the report


@pytest.mark.usefixtures("pdftotext")
def test_the_enrolment_report_has_a_data_queries_section(
        queried, make_user, tmp_path, django_capture_on_commit_callbacks):
    sponsor = make_user("sponsor", queried.trial)
    with time_machine.travel(NOW, tick=False):
        report = built(queried.trial, sponsor, django_capture_on_commit_callbacks)
    assert report.status == ReportStatus.DONE, report.error
    text = " ".join(pdf_text(bytes(report.content), tmp_path).split())
    section = text[text.index("Data queries"):]
    # Per site (raised, open, by age, median days to answer, closed, median days to close),
    # then all sites; then per form.
    assert "REMINET site 01 (place... 3 2 1 1 0 3.0 1 5.0" in section
    assert "REMINET site 02 (place... 2 1 0 0 1 1.0 1 8.0 All 5 3 1 1 1 2.0 2 6.5" in section
    assert "eligibility - Screening and eligibi... 5 3 1 1 1 2.0 2 6.5" in section
