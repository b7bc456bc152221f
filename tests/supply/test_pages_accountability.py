"""The site's accountability log, CSV (streamed) and PDF: the columns of
``selectors.ACCOUNTABILITY_COLUMNS``, an optional period (a bad date said clearly), the
site's kits only, never an arm; audited; a fixed number of queries whatever its length."""
from __future__ import annotations

import csv
import datetime as dt
import io

from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from supply.models import KitEvent
from supply.selectors import ACCOUNTABILITY_COLUMNS
from supply.services import receive_shipment
from tests.randomisation.test_blinding import assert_no_arm
from tests.supply.pages_world import logged_in, supply_world  # noqa: F401 (fixture)


def csv_rows(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_the_csv_log_lists_the_sites_kit_events_and_no_arm(supply_world):
    w = supply_world
    client = logged_in(w.coordinator)
    url = reverse("supply_accountability_csv", args=[w.trial.slug, w.site.code])
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert f"accountability-{w.site.code}.csv" in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0] == ACCOUNTABILITY_COLUMNS
    ours = set(w.site.kits.values_list("number", flat=True))
    theirs = set(w.other.kits.values_list("number", flat=True))
    numbers = {row[0] for row in rows[1:]}
    assert numbers == ours and not numbers & theirs
    assert len(rows) - 1 == KitEvent.objects.filter(kit__site=w.site).count()
    assert {row[3] for row in rows[1:]} == {"Made (kit list sealed)", "Shipped", "Received"}
    assert_no_arm(w.trial, "\n".join(",".join(r) for r in rows), "accountability CSV")
    assert AuditEvent.objects.filter(action="supply.accountability_exported",
                                     actor=w.coordinator).count() == 1


def test_the_period_filters_and_a_bad_date_is_said(supply_world):
    w = supply_world
    client = logged_in(w.monitor)
    url = reverse("supply_accountability_csv", args=[w.trial.slug, w.site.code])
    today = timezone.localdate()
    future = (today + dt.timedelta(days=1)).isoformat()
    assert len(csv_rows(client.get(url, {"start": future}))) == 1  # the header only
    assert len(csv_rows(client.get(url, {"start": today.isoformat(),
                                         "end": today.isoformat()}))) > 1
    for params, message in [({"start": "2026-13-01"}, "Enter a date as YYYY-MM-DD."),
                            ({"end": "yesterday"}, "Enter a date as YYYY-MM-DD."),
                            ({"start": future, "end": today.isoformat()},
                             "The end of the period is before its start.")]:
        for name in ("supply_accountability_csv", "supply_accountability_pdf"):
            response = client.get(reverse(name, args=[w.trial.slug, w.site.code]), params)
            assert response.status_code == 400, (name, params)
            assert response["Content-Type"].startswith("text/html")
            assert message in response.content.decode(), (name, params)


def test_the_pdf_log_shows_kit_numbers_not_arms(supply_world):
    w = supply_world
    shipment = w.dispatch()
    number = shipment.items.order_by("kit__number").first().kit.number
    receive_shipment(shipment, by=w.coordinator, outcomes={number: "damaged"})
    response = logged_in(w.investigator).get(
        reverse("supply_accountability_pdf", args=[w.trial.slug, w.site.code]))
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    text = response.content.decode("latin-1")
    assert text.startswith("%PDF") and number in text and "Damaged" in text
    assert_no_arm(w.trial, text, "accountability PDF")


def test_the_log_reads_a_fixed_number_of_queries(supply_world, django_assert_num_queries):
    w = supply_world
    client = logged_in(w.coordinator)
    urls = [reverse(name, args=[w.trial.slug, w.site.code])
            for name in ("supply_accountability_csv", "supply_accountability_pdf")]
    counts = []
    for url in urls:
        response = client.get(url)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
            if response.streaming:
                b"".join(response.streaming_content)
        counts.append(len(queries.captured_queries))
    for _ in range(2):
        receive_shipment(w.dispatch(LAN=10, PBO=10), by=w.coordinator, outcomes={})
    for url, count in zip(urls, counts):
        with django_assert_num_queries(count):
            response = client.get(url)
            if response.streaming:
                b"".join(response.streaming_content)
