"""The subject matrix: a trial's participants by the forms expected at their visits, each cell a
form's state (colour, symbol and text) and a link to the form; filters, keyset pages, sites,
blinding, and a cost in queries that does not grow with the trial."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crfs import services, verification
from crfs.form_states import FormState, form_state, missing_forms
from patients.models import Visit, VisitStatus
from reports import matrix
from tests import factories
from tests.crf_world import demographics
from tests.randomisation.test_blinding import assert_no_arm
from scheduling.services import save_crf_and_replan as save_crf


def _url(trial, **params) -> str:
    from urllib.parse import urlencode
    return reverse("subject_matrix", args=[trial.slug]) + ("?" + urlencode(params) if params
                                                            else "")


def _cells(html: str, study_id: str) -> dict[str, str]:
    """href → state class of the row of ``study_id``."""
    row = re.search(r'<tr><th scope="row" class="sticky"><a [^>]*>' + re.escape(study_id)
                    + r"</a></th>(.*?)</tr>", html, re.S)
    assert row, f"no row for {study_id}"
    return {href: state for state, href in
            re.findall(r'<td class="fs fs-(\w+)[^"]*"><a href="([^"]+)"', row.group(1))}


def test_form_state_follows_the_visit_and_the_record():
    today = dt.date(2026, 6, 1)
    past, future = today - dt.timedelta(days=1), today + dt.timedelta(days=3)
    assert form_state(VisitStatus.PLANNED, future, None, today) == FormState.NOT_STARTED
    assert form_state(VisitStatus.PLANNED, today, None, today) == FormState.NOT_STARTED
    assert form_state(VisitStatus.PLANNED, past, None, today) == FormState.MISSING
    assert form_state(VisitStatus.DONE, future, None, today) == FormState.MISSING
    assert form_state(VisitStatus.MISSED, past, None, today) == FormState.NOT_DONE
    assert form_state(VisitStatus.NOT_APPLICABLE, past, None, today) == FormState.NOT_DONE
    assert form_state(VisitStatus.PLANNED, past, "draft", today) == "draft"
    assert form_state(VisitStatus.DONE, past, "locked", today) == "locked"


def test_a_coordinator_sees_the_missing_forms_and_each_cell_links_to_its_form(
        rectal, participant, baseline, complete, coordinator, client_for):
    client = client_for(coordinator)
    response = client.get(_url(rectal))
    assert response.status_code == 200
    html = response.content.decode()
    cells = _cells(html, participant.study_id)
    form = lambda code, visit=baseline: reverse(  # noqa: E731
        "visit_crf_edit", args=[rectal.slug, participant.study_id, visit.pk, code])
    assert cells[form("demographics")] == "complete"
    # Randomised 30 days ago: the baseline's window has closed, its other forms are missing.
    assert cells[form("qlq_c30")] == "missing"
    assert cells[form("tumour_assessment")] == "missing"
    # A follow-up three months ahead: not started. Event forms link outside visits.
    follow_up = Visit.objects.get(participant=participant, code="follow_up", occurrence=1)
    assert cells[form("qlq_c30", follow_up)] == "not_started"
    assert cells[reverse("crf_edit", args=[rectal.slug, participant.study_id,
                                           "progression"])] == "not_started"
    # Each link opens the form (the visit's form, at that visit).
    assert client.get(form("qlq_c30")).status_code == 200
    # Colour is not the only signal: a symbol and the state's name in each cell, and a legend.
    assert '<span class="sr-only"> Missing</span>' in html
    assert 'data-testid="legend"' in html and "Not started" in html
    assert '<th scope="col"' in html and '<th scope="row"' in html
    assert 'scope="colgroup"' in html
    # The open-label trial shows the arm to everyone.
    assert "<td>A</td>" in html


def test_states_draft_signed_locked_and_open_queries(
        rectal, participant, baseline, complete, investigator, data_manager, client_for):
    query = services.raise_query(complete, by=data_manager, field_path="weight_kg",
                                 text="Really?")
    save_crf(participant, "qlq_c30", {}, by=investigator, complete=False, visit=baseline)
    page = matrix.subject_matrix(data_manager, rectal)
    row = next(r for r in page.rows if r.study_id == participant.study_id)
    states = {(c.column.visit_code, c.column.crf_code): c for c in row.cells
              if c.column.occurrence <= 1 and c.state}
    assert states[("baseline", "demographics")].state == "complete"
    assert states[("baseline", "demographics")].open_queries == 1
    assert states[("baseline", "qlq_c30")].state == "draft"
    # Filters by state find the participant; a state nobody is in finds no one.
    for state in ("query", "draft", "complete", "missing", "not_started"):
        found = matrix.subject_matrix(data_manager, rectal, matrix.Filters(state=state))
        assert [r.study_id for r in found.rows] == [participant.study_id], state
    for state in ("signed", "locked"):
        assert not matrix.subject_matrix(data_manager, rectal, matrix.Filters(state=state)).rows
    # Locked: the data manager closes the query and locks the (complete) record.
    services.close_query(query, by=data_manager)
    services.lock_crf(complete, by=data_manager)
    found = matrix.subject_matrix(data_manager, rectal, matrix.Filters(state="locked"))
    assert [r.study_id for r in found.rows] == [participant.study_id]


def test_a_visit_done_without_its_forms_shows_them_missing_on_the_participant_page(
        rectal, participant, coordinator, client_for):
    follow_up = Visit.objects.get(participant=participant, code="follow_up", occurrence=1)
    Visit.objects.filter(pk=follow_up.pk).update(status=VisitStatus.DONE,
                                                 done_on=timezone.localdate())
    follow_up.refresh_from_db()
    missing = missing_forms([follow_up], [], timezone.localdate())
    assert [m.crf_code for m in missing] == follow_up.crfs
    html = client_for(coordinator).get(
        reverse("participant_detail", args=[rectal.slug, participant.study_id])).content.decode()
    assert 'data-testid="missing-forms"' in html
    assert reverse("visit_crf_edit", args=[rectal.slug, participant.study_id, follow_up.pk,
                                           "qlq_c30"]) in html
    # The visit filter of the matrix narrows the columns to that visit.
    page = matrix.subject_matrix(coordinator, rectal, matrix.Filters(visit="follow_up",
                                                                     state="missing"))
    assert [r.study_id for r in page.rows] == [participant.study_id]
    assert {c.visit_code for c in page.columns} == {"follow_up"}
    assert page.total is None  # a state filter is not counted over visits


def test_sites_are_isolated(rectal, sites, participant, coordinator, statistician, make_user,
                            data_manager, client_for):
    other = factories.randomised(rectal, sites[1], by=make_user("coordinator", rectal, sites[1]),
                                 days_ago=10)
    html = client_for(coordinator).get(_url(rectal)).content.decode()
    assert participant.study_id in html and other.study_id not in html
    # Another site's code as a filter: refused, not shown.
    response = client_for(coordinator).get(_url(rectal, site=sites[1].code))
    assert response.status_code == 400
    assert other.study_id not in response.content.decode()
    page = matrix.subject_matrix(data_manager, rectal)
    assert {r.study_id for r in page.rows} == {participant.study_id, other.study_id}
    assert page.total == 2
    only = matrix.subject_matrix(data_manager, rectal, matrix.Filters(site=sites[1]))
    assert [r.study_id for r in only.rows] == [other.study_id]


def test_search_status_and_bad_filters(rectal, participant, coordinator, client_for):
    client = client_for(coordinator)
    assert participant.study_id in client.get(
        _url(rectal, q=participant.study_id[-3:])).content.decode()
    assert 'data-testid="no-rows"' in client.get(_url(rectal, q="ZZZ-nobody")).content.decode()
    assert participant.study_id in client.get(
        _url(rectal, status=participant.status)).content.decode()
    assert 'data-testid="no-rows"' in client.get(_url(rectal, status="dead")).content.decode()
    for params, name in [({"state": "approved"}, "Form state"), ({"status": "x"}, "status"),
                         ({"visit": "nope"}, "Visit"), ({"q": "x" * 40}, "Study ID"),
                         ({"after": "a\x00b"}, "")]:
        response = client.get(_url(rectal, **params))
        assert response.status_code == 400, params
        assert 'data-testid="filter-error"' in response.content.decode(), params


def test_pages_by_study_id(rectal, coordinator, site):
    made = sorted(factories.randomised(rectal, site, by=coordinator).study_id for _ in range(5))
    first = matrix.subject_matrix(coordinator, rectal, per_page=2)
    assert [r.study_id for r in first.rows] == made[:2]
    assert first.has_next and not first.has_previous and first.total == 5
    second = matrix.subject_matrix(coordinator, rectal, per_page=2, after=first.last_key)
    assert [r.study_id for r in second.rows] == made[2:4]
    assert second.has_next and second.has_previous
    last = matrix.subject_matrix(coordinator, rectal, per_page=2, after=second.last_key)
    assert [r.study_id for r in last.rows] == made[4:] and not last.has_next
    back = matrix.subject_matrix(coordinator, rectal, per_page=2, before=last.first_key)
    assert [r.study_id for r in back.rows] == made[2:4] and back.has_previous


def test_a_blinded_role_sees_no_arm(reminet, statistician, make_user, client_for):
    factories.sealed_list(reminet, by=statistician)
    site = reminet.sites.order_by("code").first()
    coordinator = make_user("coordinator", reminet, site)
    participant = factories.randomised(reminet, site, by=coordinator, days_ago=40)
    for role in ("coordinator", "investigator", "data_manager", "sponsor"):
        user = make_user(role, reminet, site if role in ("coordinator", "investigator") else None)
        html = client_for(user).get(_url(reminet)).content.decode()
        assert participant.study_id in html
        assert ">Arm<" not in html
        assert_no_arm(reminet, html, f"subject matrix for {role}")
        assert matrix.subject_matrix(user, reminet).show_arms is False
    html = client_for(statistician).get(_url(reminet)).content.decode()
    assert ">Arm<" in html  # the unblinded statistician: the walk is real


def test_the_page_costs_the_same_queries_for_one_participant_as_for_many(
        rectal, site, coordinator, client_for, investigator, make_user):
    client = client_for(coordinator)
    p = factories.randomised(rectal, site, by=coordinator, days_ago=100)
    client.get(_url(rectal))  # warm the protocol cache and the session

    def count(**params) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(_url(rectal, **params)).status_code == 200
        return len(ctx.captured_queries)

    before = {k: count(**k_params) for k, k_params in
              [("all", {}), ("missing", {"state": "missing"})]}
    monitor = make_user("monitor", rectal, site)
    for n in range(4):
        extra = factories.randomised(rectal, site, by=coordinator, days_ago=200)
        record = save_crf(extra, "demographics", demographics(extra), by=investigator,
                          complete=True,
                          visit=Visit.objects.get(participant=extra, code="baseline"))
        # Verified against the source, whole or in part: one query for all the page's marks.
        verification.verify(record, by=monitor, paths=None if n % 2 else ["weight_kg"])
    assert {"all": count(), "missing": count(state="missing")} == before
    assert p is not None


def test_the_matrix_reads_in_french(rectal, participant, coordinator, client_for):
    from accounts.models import Profile
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})
    html = client_for(coordinator).get(_url(rectal)).content.decode()
    assert "Tableau des participants" in html and "Manquant" in html
    assert "Non commencé" in html and "Légende" in html
    assert "1 participant" in html


def test_the_visit_worklist_leads_to_the_missing_forms(rectal, site, participant, coordinator,
                                                        client_for):
    client = client_for(coordinator)
    html = client.get(reverse("visit_worklist", args=[rectal.slug])
                      + f"?site={site.code}").content.decode()
    assert 'data-testid="missing-forms-link"' in html
    assert (reverse("subject_matrix", args=[rectal.slug])
            + f"?state=missing&amp;site={site.code}") in html
    page = client.get(_url(rectal, state="missing", site=site.code)).content.decode()
    assert participant.study_id in page


def test_a_form_verified_against_the_source_shows_as_such_and_is_found_by_the_filter(
        rectal, site, participant, baseline, complete, investigator, data_manager, make_user,
        client_for):
    monitor = make_user("monitor", rectal, site)
    tumour = save_crf(participant, "tumour_assessment",
                      {"assessment_date": baseline.target_date.isoformat()},
                      by=investigator, complete=False, visit=baseline)

    def cell(code):
        page = matrix.subject_matrix(data_manager, rectal)
        row = next(r for r in page.rows if r.study_id == participant.study_id)
        return next(c for c in row.cells if c.column.visit_code == "baseline"
                    and c.column.crf_code == code)

    def found():
        return [r.study_id for r in matrix.subject_matrix(
            data_manager, rectal, matrix.Filters(state="verified")).rows]

    assert cell("demographics").state == "complete" and found() == []
    # Demographics are not key data of the plan: verified when marked whole; a single answer
    # marked is not enough.
    verification.verify(complete, by=monitor, paths=["weight_kg"])
    assert cell("demographics").state == "complete" and found() == []
    verification.verify(complete, by=monitor)
    assert cell("demographics").state == "verified" and cell("demographics").verified
    assert found() == [participant.study_id]
    html = client_for(data_manager).get(_url(rectal)).content.decode()
    assert "fs-verified" in html and "☑" in html and "Verified against source" in html
    assert client_for(data_manager).get(_url(rectal, state="verified")).status_code == 200
    # A change to the verified data: the mark goes, and with it the state.
    save_crf(participant, "demographics", demographics(participant, weight_kg="90.0"),
             by=investigator, complete=True, record=complete, reason="typo")
    assert cell("demographics").state == "complete" and found() == []
    # The tumour assessment: verified when its key data (three answers) all are.
    assert tumour.status == "draft" and cell("tumour_assessment").state == "draft"
    # A signed form verified keeps its state and carries the mark.
    verification.verify(complete, by=monitor)
    from tests.conftest import PASSWORD
    services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    assert cell("demographics").state == "signed" and cell("demographics").verified
    assert found() == [participant.study_id]
    html = client_for(data_manager).get(_url(rectal)).content.decode()
    assert 'class="fs-v"' in html


def test_key_data_need_every_listed_answer(rectal):
    rules = verification.plan(rectal.definition)
    asked = verification.paths_asked(rules, "tumour_assessment")
    assert asked == ["assessment_date", "overall_response", "new_lesions"]
    assert not verification.is_verified(rules, "tumour_assessment", "complete",
                                        {"assessment_date", "overall_response"})
    assert verification.is_verified(rules, "tumour_assessment", "complete", set(asked))
    assert verification.is_verified(rules, "tumour_assessment", "locked", {""})
    assert not verification.is_verified(rules, "tumour_assessment", "draft", {""})
    assert verification.paths_asked(rules, "demographics") == [""]
