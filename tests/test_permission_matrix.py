"""Who gets what, on every route of the project: pages and API, every role, on their own
site, another site of their trial, and another trial.

``MATRIX`` is the specification: one row per (route name, method), one cell per role, each
cell the statuses for (own site / other site / another trial), or one status for all three.
The test walks every URL pattern (the admin aside: it has its own login and permissions),
fills its parameters with real objects of that scope, sends the request (writes with an empty
body, in a transaction rolled back afterwards) and compares. A route with no row fails the
test, saying which: a new route must say who may use it.

How to read a row: a site-scoped role (investigator, coordinator at the first site) gets 404
for another site's participant, as for another trial's; all-sites roles (data manager,
sponsor, statistician, supply manager) see both sites. The supply manager (unblinded to kits)
sees no participant: their pages of participants are 404, their lists empty; so does the
data monitoring committee member (dmc), who reads reports (the closed ones included). 403: may see, may not do. 405: the route exists but
not with this method. 400/200 on a write with an empty body: allowed (and refused for the
missing input). Anonymous: pages 302 to the login page, the API 401.

Adding a route (lead, after a merge): add its rows below, e.g. for the API's list of reports
(``Perm.VIEW_REPORTS``: data manager, sponsor, statistician)
``("api_reports", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 401"``
and run ``pytest tests/test_permission_matrix.py``; ``MATRIX_PRINT=1`` prints what every route
answered, in this format, to compare with what the policy says it should.
"""
from __future__ import annotations

import copy
import os

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from tests import factories
from tests.api import world
from tests.conftest import PASSWORD
from tests.routes import url_patterns

ROLES = ["investigator", "coordinator", "data_manager", "sponsor", "statistician",
         "supply_manager", "dmc", "superuser", "anonymous"]
SCOPES = ["own", "other", "another"]
SITE_ROLES = {"investigator", "coordinator"}  # members of the first site only

# One cell per role, in ROLES order; "a/b/c" = own site / other site / another trial.
MATRIX: dict[tuple[str, str], str] = {
    # Pages (and the account pages of django.contrib.auth). An empty POST to a page whose form
    # is built from ``request.POST or None`` is read as a GET (200).
    ("add_unscheduled_visit", "GET"): "405 405 405 405 405 405 405 405 302",
    ("add_unscheduled_visit", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("allocation_balance", "GET"): "404 404 404 404 200/200/404 404 404 200 302",
    ("allocation_certificate", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("allocation_detail", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("allocation_lists", "GET"): "404 404 404 404 200/200/404 404 404 200 302",
    ("allocation_lists", "POST"): "404 404 404 404 200/200/404 404 404 200 302",
    ("emergency_allocations", "GET"): "404 404 404 404 200/200/404 404 404 200 302",
    ("emergency_allocations", "POST"): "404 404 404 404 200/200/404 404 404 200 302",
    ("correct_stratum", "GET"): "405 405 405 405 405 405 405 405 302",
    ("correct_stratum", "POST"): "403/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("confirm_eligibility", "GET"): "200/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("confirm_eligibility", "POST"): "400/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("crf_edit", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("crf_edit", "POST"): "302/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("crf_history", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("crf_lock", "GET"): "405 405 405 405 405 405 405 405 302",
    ("crf_lock", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 302",
    ("crf_pdf", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("crf_sign", "GET"): "200/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("crf_sign", "POST"): "400/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("crf_unlock", "GET"): "405 405 405 405 405 405 405 405 302",
    ("crf_unlock", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 302",
    ("emergency_unblind", "GET"): "200/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("emergency_unblind", "POST"): "200/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("health", "GET"): "200 200 200 200 200 200 200 200 200",
    ("home", "GET"): "200 200 200 200 200 200 200 200 302",
    ("login", "GET"): "200 200 200 200 200 200 200 200 200",
    ("login", "POST"): "200 200 200 200 200 200 200 200 200",
    ("logout", "GET"): "405 405 405 405 405 405 405 405 302",
    ("logout", "POST"): "302 302 302 302 302 302 302 302 302",
    ("participant_detail", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("participant_list", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 302",
    ("password_change", "GET"): "200 200 200 200 200 200 200 200 302",
    ("password_change", "POST"): "200 200 200 200 200 200 200 200 302",
    ("password_change_done", "GET"): "200 200 200 200 200 200 200 200 302",
    ("password_reset", "GET"): "200 200 200 200 200 200 200 200 200",
    ("password_reset", "POST"): "200 200 200 200 200 200 200 200 200",
    ("password_reset_complete", "GET"): "200 200 200 200 200 200 200 200 200",
    ("password_reset_confirm", "GET"): "200 200 200 200 200 200 200 200 200",
    ("password_reset_confirm", "POST"): "200 200 200 200 200 200 200 200 200",
    ("password_reset_done", "GET"): "200 200 200 200 200 200 200 200 200",
    ("query_answer", "GET"): "405 405 405 405 405 405 405 405 302",
    ("query_answer", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("query_close", "GET"): "405 405 405 405 405 405 405 405 302",
    ("query_close", "POST"): "403/404/404 403/404/404 302/302/404 403/403/404 403/403/404 404 404 302 302",
    ("query_raise", "GET"): "405 405 405 405 405 405 405 405 302",
    ("query_raise", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 302",
    ("query_reopen", "GET"): "405 405 405 405 405 405 405 405 302",
    ("query_reopen", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 302",
    ("randomise", "GET"): "403/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("randomise", "POST"): "403/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("record_consent", "GET"): "403/404/404 200/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("record_consent", "POST"): "403/404/404 200/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("record_withdrawal", "GET"): "403/404/404 200/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("record_withdrawal", "POST"): "403/404/404 200/404/404 403/403/404 403/403/404 403/403/404 404 404 200 302",
    ("reconsent_worklist", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 302",
    # Issue 17. Re-screening a screen failure: Perm.SCREEN, own site (the coordinator). The
    # screening log: read by every role of the trial (Perm.VIEW_SCREENING_LOG, a site-scoped
    # reader sees their site's entries), kept by those with Perm.SCREEN (an empty POST is
    # read as a GET). Randomised in error: Perm.RECORD_RANDOMISED_IN_ERROR, the coordinator
    # (own site) and the data manager (every site).
    ("rescreen", "GET"): "405 405 405 405 405 405 405 405 302",
    ("rescreen", "POST"): "403/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("screening_log", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("screening_log", "POST"): "403/403/404 200/200/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 200 302",
    ("record_randomised_in_error", "GET"): "405 405 405 405 405 405 405 405 302",
    ("record_randomised_in_error", "POST"): "403/404/404 302/404/404 302/302/404 403/403/404 403/403/404 404 404 302 302",
    ("screen_participant", "GET"): "404 200/200/404 404 404 404 404 404 200 302",
    ("screen_participant", "POST"): "404 200/200/404 404 404 404 404 404 200 302",
    ("set_language", "GET"): "302 302 302 302 302 302 302 302 302",
    ("set_language", "POST"): "302 302 302 302 302 302 302 302 302",
    ("set_profile_language", "GET"): "405 405 405 405 405 405 405 405 302",
    ("set_profile_language", "POST"): "400 400 400 400 400 400 400 400 302",
    ("trial_detail", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 302",
    ("update_visit", "GET"): "405 405 405 405 405 405 405 405 302",
    ("update_visit", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("visit_crf_edit", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("visit_crf_edit", "POST"): "302/404/404 302/404/404 403/403/404 403/403/404 403/403/404 404 404 302 302",
    ("visit_timeline", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 302",
    ("visit_worklist", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 302",
    # Issue 20: the subject matrix (Perm.VIEW_PARTICIPANTS; a site-scoped role sees its site's
    # rows only, tests/pages/test_subject_matrix.py).
    ("subject_matrix", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    # Trial-level pages of reports, outcomes, exports and unblinding: a member whose role lacks
    # the permission may see the trial, not do this (403, as the API); another trial is a 404.
    # Perm.EXPORT_DATA and Perm.VIEW_REPORTS: data manager, sponsor, statistician.
    # Issue 20. Blank CRFs (no participant data): every role that sees participants
    # (Perm.VIEW_PARTICIPANTS). A casebook: Perm.VIEW_REPORTS at the participant's site (data
    # manager, sponsor, monitor, statistician); a site-scoped role without it is refused its own
    # site's participant (403) and gets 404 for another site's; the supply manager sees no
    # participant (404).
    ("blank_crf_list", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("blank_crf_pdf", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("casebook_request", "GET"): "405 405 405 405 405 405 405 405 302",
    ("casebook_request", "POST"): "403/404/404 403/404/404 302/302/404 302/302/404 302/302/404 404 404 302 302",
    ("export_all_csv", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("export_crf_csv", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("export_list", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("export_odm", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 302",
    ("report_list", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    ("report_request", "GET"): "405 405 405 405 405 405 405 405 302",
    ("report_request", "POST"): "403/403/404 403/403/404 400/400/404 400/400/404 400/400/404 403/403/404 400/400/404 400 302",
    ("report_status", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    # The report was built by the (blinded, all-sites) data manager: every reader of reports
    # has at least those rights (reports.services.Rights).
    ("report_download", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    ("trial_outcomes", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    ("trial_outcomes", "POST"): "405 405 405 405 405 405 405 405 302",
    ("trial_outcomes_pdf", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    # Issue 20. The audit log page and its CSV: Perm.VIEW_AUDIT (data manager, statistician).
    # Query metrics: Perm.VIEW_REPORTS (data manager, sponsor, statistician).
    ("audit_log", "GET"): "403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    ("audit_log_csv", "GET"): "403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    ("query_metrics", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    # Monitoring (issue 20): the monitor (not a role of this walk: tests/pages/
    # test_monitoring_visits.py and tests/api/test_monitoring_api.py) verifies and records
    # visits; the readers of reports list visits and download a site's report (empty query
    # string: 400 naming the site and dates).
    ("crf_verify", "GET"): "405 405 405 405 405 405 405 405 302",
    ("crf_verify", "POST"): "403/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 400 302",
    ("monitoring_visits", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 302",
    ("monitoring_visits", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 302",
    ("monitoring_report_pdf", "GET"): "403/403/404 403/403/404 400/400/404 400/400/404 400/400/404 403/403/404 400/400/404 400 302",
    ("monitoring_report_pdf", "POST"): "405 405 405 405 405 405 405 405 302",
    # Perm.MANAGE_ALLOCATION: the statistician (and superusers). An empty POST is read as a GET.
    # Freeze and lock (Perm.LOCK_DATA: the data manager; the whole trial only for one of all
    # its sites). An empty POST is read as a GET (the form again, 200).
    ("casebook_data_lock", "GET"): "403/404/404 403/404/404 200/200/404 403/403/404 403/403/404 404 404 200 302",
    ("casebook_data_lock", "POST"): "403/404/404 403/404/404 200/200/404 403/403/404 403/403/404 404 404 200 302",
    ("site_data_lock", "GET"): "403/404/404 403/404/404 200/200/404 403/403/404 403/403/404 404 404 200 302",
    ("site_data_lock", "POST"): "403/404/404 403/404/404 200/200/404 403/403/404 403/403/404 404 404 200 302",
    ("trial_data_lock", "GET"): "403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 403/403/404 403/403/404 200 302",
    ("trial_data_lock", "POST"): "403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 403/403/404 403/403/404 200 302",
    # Going live (ending test mode): the data manager and the statistician (Perm.GO_LIVE).
    ("trial_go_live", "GET"): "403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    ("trial_go_live", "POST"): "403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    ("unblind_trial", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    ("unblind_trial", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 200 302",
    # Two-factor pages, for oneself: no trial involved. Roles that must use two factors
    # (investigator: signs; statistician: lists; superuser) log in with their device already
    # set up, so setup sends them to manage (302); the others may set one up (200). Verify
    # sends a verified session on (302), and one without a device to setup (302).
    ("two_factor_manage", "GET"): "200 200 200 200 200 200 200 200 302",
    ("two_factor_manage", "POST"): "200 200 200 200 200 200 200 200 302",
    ("two_factor_setup", "GET"): "302 200 200 200 302 302 302 302 302",
    ("two_factor_setup", "POST"): "302 200 200 200 302 302 302 302 302",
    ("two_factor_verify", "GET"): "302 302 302 302 302 302 302 302 302",
    ("two_factor_verify", "POST"): "302 302 302 302 302 302 302 302 302",
    # SAE reporting (pages/safety.py). Perm.VIEW_SAFETY: investigator, coordinator (their
    # site), data manager, sponsor; drafts and follow-ups: Perm.ENTER_CRF; signatures:
    # Perm.SIGN_CRF; the assessment and the pharmacovigilance unblinding: the safety officer
    # only (not a column here: tests/safety/test_safety_pages.py walks its routes). The place's
    # report is signed: saving a draft is refused (400), a follow-up begins (302).
    ("sae_list", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 302",
    ("sae_listing", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 302",
    ("sae_detail", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 302",
    ("sae_pdf", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 302",
    ("sae_save_draft", "GET"): "405 405 405 405 405 405 405 405 302",
    ("sae_save_draft", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 302",
    ("sae_sign", "GET"): "405 405 405 405 405 405 405 405 302",
    ("sae_sign", "POST"): "302/404/404 403/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 302 302",
    ("sae_follow_up", "GET"): "405 405 405 405 405 405 405 405 302",
    ("sae_follow_up", "POST"): "302/404/404 302/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 302 302",
    ("sae_assess", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 302 302",
    ("sae_assess", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 302",
    ("sae_susar_submitted", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 302 302",
    ("sae_susar_submitted", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 302",
    ("sae_unblind", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 200 302",
    ("sae_unblind", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 200 302",
    # Supply (pages/supply.py; the rectal trial, another trial here, has no kits: 404 with a
    # message for its own members). Perm.VIEW_SUPPLY: every role but the safety officer, each
    # at its sites; a shipment, stock or excursion of another site is 404. Receipts,
    # excursions and returns: Perm.RECEIVE_SUPPLY (the coordinator, own site); dispatch,
    # destruction and an excursion's decision: Perm.MANAGE_SUPPLY (the supply manager). An
    # empty POST is refused for its missing fields (400).
    ("supply_overview", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_site", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_shipment", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_accountability_csv", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_accountability_pdf", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_receive", "GET"): "405 405 405 405 405 405 405 405 302",
    ("supply_receive", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 302",
    ("supply_excursion", "GET"): "405 405 405 405 405 405 405 405 302",
    ("supply_excursion", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 302",
    ("supply_returns", "GET"): "405 405 405 405 405 405 405 405 302",
    ("supply_returns", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 302",
    ("supply_destruction", "GET"): "405 405 405 405 405 405 405 405 302",
    ("supply_destruction", "POST"): "403/404/404 403/404/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 400/400/404 302",
    ("supply_decide", "GET"): "405 405 405 405 405 405 405 405 302",
    ("supply_decide", "POST"): "403/404/404 403/404/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 400/400/404 302",
    ("supply_dispatch", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 302",
    ("supply_dispatch", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 400/400/404 302",
    # The REST API (api/urls.py).
    ("api_allocation", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_consent", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_consent", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_withdrawals", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_withdrawals", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_reconsent", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_crf", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_crf", "PUT"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_crfs", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_crfs", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_docs", "GET"): "200 200 200 200 200 200 200 200 302",
    ("api_eligibility", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_participant", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_participants", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_participants", "POST"): "403/403/404 400/400/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 401",
    ("api_queries", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_query", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_query_answer", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_query_answer", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_query_close", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_query_close", "POST"): "403/404/404 403/404/404 200/200/404 403/403/404 403/403/404 404 404 200 401",
    ("api_query_reopen", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_query_reopen", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 401",
    ("api_randomise", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_randomise", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_record_queries", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_record_queries", "POST"): "403/404/404 403/404/404 400/400/404 403/403/404 403/403/404 404 404 400 401",
    ("api_randomised_in_error", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_randomised_in_error", "POST"): "403/404/404 400/404/404 400/400/404 403/403/404 403/403/404 404 404 400 401",
    ("api_rescreen", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405 401",
    ("api_rescreen", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_screening_log", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_screening_log", "POST"): "403/403/404 400/400/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 401",
    ("api_schema", "GET"): "200 200 200 200 200 200 200 200 401",
    ("api_sites", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 401",
    ("api_token", "GET"): "200 200 200 200 200 200 200 200 302",
    ("api_token", "POST"): "400 400 400 400 400 400 400 400 302",
    ("api_trial", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200 401",
    ("api_trial_visits", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_trials", "GET"): "200 200 200 200 200 200 200 200 401",
    ("api_visit", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_visit", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    ("api_visits", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_visits", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400 401",
    # Issue 19. Kit lists: Perm.MANAGE_ALLOCATION, as the allocation lists (the rectal trial,
    # without product supply, answers with a message). Assigning and replacing a visit's kit:
    # Perm.DISPENSE (investigator, coordinator: own site); the place's visit (baseline)
    # dispenses no kit, so an allowed empty POST is refused (400); the rectal trial: 404.
    ("kit_lists", "GET"): "404 404 404 404 200/200/404 404 404 200 302",
    ("kit_lists", "POST"): "404 404 404 404 200/200/404 404 404 200 302",
    ("assign_kit", "GET"): "405 405 405 405 405 405 405 405 302",
    ("assign_kit", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400/400/404 302",
    ("replace_kit", "GET"): "405 405 405 405 405 405 405 405 302",
    ("replace_kit", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404 404 400/400/404 302",
    ("api_subject_matrix", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    # Reports (Perm.VIEW_REPORTS) and exports (Perm.EXPORT_DATA): data manager, sponsor,
    # statistician. POST of a report with an empty body: 400 (no kind) where allowed.
    ("api_reports", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 401",
    ("api_reports", "POST"): "403/403/404 403/403/404 400/400/404 400/400/404 400/400/404 403/403/404 400/400/404 400 401",
    ("api_report", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 401",
    ("api_report_download", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 401",
    ("api_export_csv", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_export_zip", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_export_odm", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 200 401",
    # The audit log (Perm.VIEW_AUDIT), read-only.
    ("api_audit_log", "GET"): "403/403/404 403/403/404 200/200/404 403/403/404 200/200/404 403/403/404 403/403/404 200 401",
    ("api_record_verifications", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404 404 200 401",
    ("api_record_verifications", "POST"): "403/404/404 403/404/404 403/403/404 403/403/404 403/403/404 404 404 201 401",
    ("api_monitoring_visits", "GET"): "403/403/404 403/403/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 200 401",
    ("api_monitoring_visits", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400 401",
    ("api_monitoring_report", "GET"): "403/403/404 403/403/404 400/400/404 400/400/404 400/400/404 403/403/404 400/400/404 400 401",
    # SAE reports (Perm.VIEW_SAFETY), read-only.
    ("api_sae_reports", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 401",
    ("api_sae_report", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 403/403/404 403/403/404 403/403/404 200 401",
    # Supply (issue 19). Perm.VIEW_SUPPLY: every role here, site-scoped for the site's staff
    # (another site's kits, shipment, accountability: 404). Receipts, excursions and returns:
    # Perm.RECEIVE_SUPPLY (the coordinator); dispatch, excursion decisions: the supply manager
    # (its column); kit assignment and replacement: Perm.DISPENSE (investigator,
    # coordinator); kit lists: Perm.MANAGE_ALLOCATION (statistician); resupply requests: the
    # roles unblinded to kits (403 for the blinded). The rectal trial has no kits: 404, the
    # superuser's included.
    ("api_supply_stock", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 401",
    ("api_site_kits", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 404 200/200/404 401",
    ("api_site_accountability", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 404 200/200/404 401",
    ("api_site_kit_records", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 405/405/404 404 405/405/404 401",
    ("api_site_kit_records", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 400/400/404 404 400/400/404 401",
    ("api_shipments", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 401",
    ("api_shipments", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 400/400/404 401",
    ("api_shipment", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 200/200/404 404 200/200/404 401",
    ("api_shipment_receipt", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 405/405/404 404 405/405/404 401",
    ("api_shipment_receipt", "POST"): "403/404/404 400/404/404 403/403/404 403/403/404 403/403/404 403/403/404 404 400/400/404 401",
    ("api_excursions", "GET"): "200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 200/200/404 403/403/404 200/200/404 401",
    ("api_excursions", "POST"): "403/403/404 400/400/404 403/403/404 403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 401",
    ("api_excursion_decision", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 405/405/404 404 405/405/404 401",
    ("api_excursion_decision", "POST"): "403/404/404 403/404/404 403/403/404 403/403/404 403/403/404 400/400/404 404 400/400/404 401",
    ("api_resupply_requests", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 200/200/404 403/403/404 200/200/404 401",
    ("api_participant_kits", "GET"): "200/404/404 200/404/404 200/200/404 200/200/404 200/200/404 404/404/404 404 200/200/404 401",
    ("api_participant_kits", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404/404/404 404 400/400/404 401",
    ("api_replace_kit", "GET"): "405/404/404 405/404/404 405/405/404 405/405/404 405/405/404 404 404 405/405/404 401",
    ("api_replace_kit", "POST"): "400/404/404 400/404/404 403/403/404 403/403/404 403/403/404 404/404/404 404 400/400/404 401",
    ("api_kit_lists", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 200/200/404 401",
    ("api_kit_lists", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 403/403/404 400/400/404 401",
    ("api_kit_list_import", "GET"): "405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 401",
    ("api_kit_list_import", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 403/403/404 400/400/404 401",
    ("api_kit_list_seal", "GET"): "405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 405/405/404 401",
    ("api_kit_list_seal", "POST"): "403/403/404 403/403/404 403/403/404 403/403/404 400/400/404 403/403/404 403/403/404 400/400/404 401",
    ("api_kit_list_verify", "GET"): "403/403/404 403/403/404 403/403/404 403/403/404 200/200/404 403/403/404 403/403/404 200/200/404 401",
}


def routes():
    """(name, route, pattern) of every URL pattern but the admin's."""
    for route, pattern in url_patterns():
        yield pattern.name, route, pattern


def methods_of(name: str) -> list[str]:
    if os.environ.get("MATRIX_PRINT"):
        return ["GET", "POST", "PUT"] if name == "api_crf" else ["GET", "POST"]
    return sorted({method for (route, method) in MATRIX if route == name}) or ["GET"]


def expected(row: str) -> dict[tuple[str, str], int]:
    cells = row.split()
    assert len(cells) == len(ROLES), row
    out = {}
    for role, cell in zip(ROLES, cells):
        codes = cell.split("/")
        codes = codes * 3 if len(codes) == 1 else codes
        assert len(codes) == 3, row
        out.update({(role, scope): int(code) for scope, code in zip(SCOPES, codes)})
    return out


@pytest.fixture
def setting(reminet, rectal, statistician, make_user):
    """REMINET at two sites, the rectal trial as "another trial", and one user per role, all
    members of REMINET only."""
    staff, data_manager = world.ready(reminet, statistician=statistician, make_user=make_user)
    own_site, other_site = reminet.sites.order_by("code")[:2]
    other_staff, other_dm = world.ready(rectal, statistician=statistician, make_user=make_user)
    places = {
        "own": world.build(reminet, own_site, staff=staff, data_manager=data_manager),
        "other": world.build(reminet, other_site, staff=staff, data_manager=data_manager),
        "another": world.build(rectal, rectal.sites.order_by("code").first(), staff=other_staff,
                               data_manager=other_dm),
    }
    # One report per trial, built by its data manager (blinded, every site): whoever holds
    # ``Perm.VIEW_REPORTS`` in the trial may download it.
    places["own"].report = places["other"].report = world.built_report(reminet, by=data_manager)
    places["another"].report = world.built_report(rectal, by=other_dm)
    # One signed SAE report per place (its investigator: a member of that trial and site).
    for place in places.values():
        world.signed_sae(place, investigator=make_user("investigator", place.trial, place.site),
                         password=PASSWORD)
    # A shipment on its way to each REMINET site, an excursion reported there, the kit list and
    # the participant's first kit.
    for place in places.values():
        world.with_supply(place)
    users = {role: make_user(role, reminet, own_site if role in SITE_ROLES else None)
             for role in ROLES[:-2]}
    users["superuser"] = make_user(is_superuser=True, is_staff=True)
    users["anonymous"] = None
    return places, users


def _request(client, method: str, url: str):
    if url.startswith("/api/"):
        return getattr(client, method.lower())(url, {}, content_type="application/json")
    return getattr(client, method.lower())(url, {})


def test_every_route_answers_every_role_as_the_matrix_says(setting):
    places, users = setting
    unknown = sorted({name for name, _, _ in routes() if not any(r == name for r, _ in MATRIX)})
    assert not unknown or os.environ.get("MATRIX_PRINT"), (f"Routes without a row in MATRIX (tests/test_permission_matrix.py): "
                         f"{unknown}. Say who may use each.")
    # One client per role, logged in once (outside the rolled-back requests below).
    clients = {}
    for role in ROLES:
        c = Client()
        if users[role] is not None:
            c.force_login(users[role])
            if factories.needs_second_factor(users[role]):
                factories.verify_session(c, factories.totp_device(users[role]))
        clients[role] = c
    observed, wrong = {}, []
    for name, route, pattern in routes():
        for method in methods_of(name):
            want = expected(MATRIX.get((name, method), " ".join(["0"] * len(ROLES))))
            for role in ROLES:
                for scope in SCOPES:
                    kwargs = {k: places[scope].kwargs()[k] for k in pattern.pattern.converters}
                    url = reverse(name, kwargs=kwargs)
                    # Rolled back, and the client's cookies put back: a logout or a login
                    # step answered here leaves the next request's session as it was.
                    cookies = copy.deepcopy(clients[role].cookies)
                    with transaction.atomic():
                        status = _request(clients[role], method, url).status_code
                        transaction.set_rollback(True)
                    clients[role].cookies = cookies
                    observed[(name, method, role, scope)] = status
                    if status != want[(role, scope)]:
                        wrong.append(f"{method} {name} as {role} ({scope}): {status}, "
                                     f"expected {want[(role, scope)]}")
    if os.environ.get("MATRIX_PRINT"):
        _print(observed)
    assert not wrong, "\n".join(wrong)


def _print(observed):
    """MATRIX_PRINT=1: the observed answers in MATRIX's format (to review, never to paste
    blindly)."""
    keys = sorted({(n, m) for n, m, _, _ in observed})
    for name, method in keys:
        cells = []
        for role in ROLES:
            codes = [str(observed[(name, method, role, s)]) for s in SCOPES]
            cells.append(codes[0] if len(set(codes)) == 1 else "/".join(codes))
        print(f'    ("{name}", "{method}"): "{" ".join(cells)}",')
