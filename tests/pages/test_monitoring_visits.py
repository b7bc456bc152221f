"""The monitoring visits page: the monitor records a visit to one of their sites with its
findings (errors next to the fields), everyone who reads a site's monitoring sees its past
visits and downloads the monitoring visit report (PDF) for a period; bad dates are refused with
a message; other sites stay out of reach."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from crfs import verification
from crfs.models import MonitoringVisit


@pytest.fixture
def monitor(rectal, site, make_user):
    return make_user("monitor", rectal, site, first_name="Monique", last_name="Itor")


def _url(trial, name="monitoring_visits", **params):
    from urllib.parse import urlencode
    return reverse(name, args=[trial.slug]) + ("?" + urlencode(params) if params else "")


def test_the_monitor_records_a_visit_and_sees_it_listed(rectal, site, monitor, client_for):
    client = client_for(monitor)
    html = client.get(_url(rectal)).content.decode()
    assert 'data-testid="visit-form"' in html and "No monitoring visit recorded yet." in html
    day = timezone.localdate() - dt.timedelta(days=2)
    response = client.post(_url(rectal), {"site": site.pk, "visited_on": day.isoformat(),
                                          "findings": "Consent form v2 missing for 0003."})
    assert response.status_code == 302
    visit = MonitoringVisit.objects.get()
    assert (visit.site, visit.monitor, visit.visited_on) == (site, monitor, day)
    html = client.get(_url(rectal)).content.decode()
    assert "Consent form v2 missing for 0003." in html and "Monique Itor" in html
    # The trial's page links to it.
    assert _url(rectal) in client.get(reverse("trial_detail", args=[rectal.slug])
                                      ).content.decode()


@pytest.mark.parametrize("post, error", [
    ({"visited_on": "2026-01-01", "findings": "x"}, "Choose the site."),
    ({"site": "other", "visited_on": "2026-01-01", "findings": "x"},
     "You do not monitor this site."),
    ({"site": "own", "visited_on": "yesterday", "findings": "x"}, "Enter a date as YYYY-MM-DD."),
    ({"site": "own", "visited_on": "2999-01-01", "findings": "x"},
     "The visit date cannot be in the future."),
    ({"site": "own", "visited_on": "2026-01-01", "findings": "  "}, "Write the findings"),
])
def test_a_bad_visit_is_refused_next_to_its_field(rectal, sites, site, monitor, client_for,
                                                  post, error):
    other = next(s for s in sites if s != site)
    post = {**post}
    if "site" in post:
        post["site"] = {"own": site.pk, "other": other.pk}[post["site"]]
    response = client_for(monitor).post(_url(rectal), post)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not MonitoringVisit.objects.exists()


def test_who_records_and_who_reads(rectal, site, sites, monitor, coordinator, data_manager,
                                   make_user, client_for):
    MonitoringVisit.objects.create(trial=rectal, site=site, visited_on=timezone.localdate(),
                                   monitor=monitor, findings="Own site finding")
    other = next(s for s in sites if s != site)
    other_monitor = make_user("monitor", rectal, other)
    MonitoringVisit.objects.create(trial=rectal, site=other, visited_on=timezone.localdate(),
                                   monitor=other_monitor, findings="Other site finding")
    # The coordinator: neither reads nor records.
    assert client_for(coordinator).get(_url(rectal)).status_code == 403
    # The data manager reads every site, records nothing.
    html = client_for(data_manager).get(_url(rectal)).content.decode()
    assert "Own site finding" in html and "Other site finding" in html
    assert 'data-testid="visit-form"' not in html
    assert client_for(data_manager).post(_url(rectal), {}).status_code == 403
    # A monitor sees their own sites' visits only, and reports on them only.
    html = client_for(monitor).get(_url(rectal)).content.decode()
    assert "Own site finding" in html and "Other site finding" not in html
    today = timezone.localdate().isoformat()
    response = client_for(monitor).get(_url(rectal, "monitoring_report_pdf", site=other.pk,
                                            start=today, end=today))
    assert response.status_code == 400 and "You do not follow this site." in \
        response.content.decode()


def test_the_report_pdf_lists_visits_verifications_and_queries(
        rectal, site, monitor, complete, participant, investigator, client_for):
    from crfs import services
    from scheduling.services import save_crf_and_replan as save_crf
    from tests.crf_world import demographics
    from tests.outcomes.test_outcomes_pages import pdf_text

    verification.verify(complete, by=monitor, paths=["weight_kg", "height_cm"])
    save_crf(participant, "demographics", demographics(participant, weight_kg="88.0"),
             by=investigator, complete=True, record=complete, reason="re-weighed")
    services.raise_query(complete, by=monitor, field_path="height_cm", text="Height in cm?")
    client = client_for(monitor)
    today = timezone.localdate()
    client.post(_url(rectal), {"site": site.pk, "visited_on": today.isoformat(),
                               "findings": "Delegation log not signed."})
    response = client.get(_url(rectal, "monitoring_report_pdf", site=site.pk,
                               start=(today - dt.timedelta(days=7)).isoformat(),
                               end=today.isoformat()))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = pdf_text(response.content)
    assert "Delegation log not signed." in text and "Height in cm?" in text
    assert participant.study_id in text and "re-weighed" in text


@pytest.mark.parametrize("params, error", [
    ({"start": "2026-02-30", "end": "2026-03-01"}, "Enter a date as YYYY-MM-DD."),
    ({"start": "2026-03-02", "end": "2026-03-01"}, "The end of the period is before its start."),
    ({"end": "2026-03-01"}, "Give the first day."),
    ({"start": "2026-03-01", "end": "2026-03-02", "site": "9999"}, "You do not follow this site."),
])
def test_bad_dates_are_refused_with_a_message(rectal, site, monitor, client_for, params, error):
    params = {"site": site.pk, **params}
    response = client_for(monitor).get(_url(rectal, "monitoring_report_pdf", **params))
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html and "The monitoring visit report was not built" in html


def test_the_page_costs_the_same_queries_for_one_visit_as_for_many(
        rectal, site, monitor, client_for):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    client = client_for(monitor)
    client.get(_url(rectal))

    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(_url(rectal)).status_code == 200
        return len(ctx.captured_queries)

    MonitoringVisit.objects.create(trial=rectal, site=site, visited_on=timezone.localdate(),
                                   monitor=monitor, findings="one")
    before = count()
    for n in range(5):
        MonitoringVisit.objects.create(trial=rectal, site=site, visited_on=timezone.localdate(),
                                       monitor=monitor, findings=f"more {n}")
    assert count() == before
