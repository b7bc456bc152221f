"""Every list's filters are checked: an empty value, a malformed date, an unknown choice or a
site that is not one of the reader's is a 400 naming the parameter, never an unfiltered (or
silently empty) list."""
from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD  # noqa: F401

# (route, needs a site code in the path, parameter, bad value)
CASES = [
    ("api_participants", False, "site", ""),
    ("api_participants", False, "site", "NOWHERE"),
    ("api_participants", False, "status", ""),
    ("api_participants", False, "status", "sleeping"),
    ("api_trial_visits", False, "site", ""),
    ("api_trial_visits", False, "state", "later"),
    ("api_trial_visits", False, "due_after", "not-a-date"),
    ("api_trial_visits", False, "due_before", ""),
    ("api_queries", False, "status", "pending"),
    ("api_queries", False, "site", ""),
    ("api_queries", False, "study_id", ""),
    ("api_subject_matrix", False, "site", ""),
    ("api_subject_matrix", False, "state", "odd"),
    ("api_subject_matrix", False, "page_size", "many"),
    ("api_audit_log", False, "start", "not-a-date"),
    ("api_audit_log", False, "site", ""),
    ("api_audit_log", False, "kind", ""),
    ("api_site_kits", True, "status", "lost-in-space"),
    ("api_site_kits", True, "status", ""),
    ("api_site_accountability", True, "start", "yesterday"),
    ("api_site_accountability", True, "end", ""),
    ("api_monitoring_report", False, "start", "not-a-date"),
    ("api_export_csv", False, "form", ""),
    ("api_export_zip", False, "form", "tall"),
]


@pytest.mark.parametrize("name, site_in_path, parameter, value", CASES)
def test_a_bad_filter_value_is_a_400_naming_the_parameter(places, api, name, site_in_path,
                                                           parameter, value):
    trial, site = places.trial, places.own.site
    args = [trial.slug, site.code] if site_in_path else [trial.slug]
    if name == "api_export_csv":
        args = [trial.slug, "demographics"]
    query = {parameter: value}
    if name == "api_monitoring_report":
        query = {"site": site.code, "start": value, "end": "2026-01-31"}
    response = api(places.data_manager).get(reverse(name, args=args), query)
    assert response.status_code == 400, (name, parameter, value, response.content[:300])
    assert parameter in response.json(), response.json()


def test_good_filters_still_filter(places, api):
    trial = places.trial
    url = reverse("api_participants", args=[trial.slug])
    response = api(places.data_manager).get(url, {"site": places.own.site.code})
    assert response.status_code == 200
    assert {row["site"] for row in response.json()["results"]} == {places.own.site.code}
