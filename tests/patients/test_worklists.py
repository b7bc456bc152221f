"""Worklists, the participant timeline and the home page counts: what a site user sees of the
visits, scoped to their sites, in a fixed number of queries, never revealing a blinded arm."""
from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from patients import selectors
from patients.models import Visit, VisitState, VisitStatus
from scheduling import services as scheduling
from scheduling.selectors import timeline
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm

TODAY = timezone.localdate


def days(n: int) -> dt.timedelta:
    return dt.timedelta(days=n)


@pytest.fixture
def two_sites(rectal, rectal_coordinator, make_user):
    """One participant randomised 100 days ago at each of two sites (an all-sites coordinator
    does the data entry)."""
    first, second = rectal.sites.order_by("code")[:2]
    everywhere = make_user("coordinator", rectal)
    here = factories.randomised(rectal, first, by=everywhere, days_ago=100)
    there = factories.randomised(rectal, second, by=everywhere, days_ago=100)
    return first, second, here, there


def expected_states(participant, today):
    states = {VisitState.OVERDUE: 0, VisitState.OPEN: 0, "upcoming": 0}
    for v in Visit.objects.filter(participant=participant, status=VisitStatus.PLANNED):
        state = v.state(today)
        if state == VisitState.PLANNED:
            if v.window_opens <= today + days(14):
                states["upcoming"] += 1
        else:
            states[state] += 1
    return states


def test_worklist_sorts_planned_visits_into_overdue_open_and_upcoming(two_sites, rectal,
                                                                      rectal_coordinator):
    first, _, here, there = two_sites
    r = timezone.localdate(here.allocation.randomised_at)
    worklist = selectors.worklist(rectal_coordinator, rectal)
    # Randomised 100 days ago in arm A: baseline (closed day 0) and surgery (closed day 21) are
    # overdue; follow-up 1 (day 3 months ± 14) is open.
    assert [v.code for v in worklist.overdue] == ["baseline", "surgery"]
    assert [v.code for v in worklist.open_now] == ["follow_up"]
    assert all(v.participant == here for v in worklist.overdue + worklist.open_now)
    assert worklist.counts.overdue == expected_states(here, TODAY())[VisitState.OVERDUE]
    # Later: as of the day follow-up 2's window opens, it is open and follow-up 1 overdue.
    fu2 = Visit.objects.get(participant=here, code="follow_up", occurrence=2)
    later = selectors.worklist(rectal_coordinator, rectal, today=fu2.window_opens)
    assert fu2 in later.open_now
    assert Visit.objects.get(participant=here, code="follow_up", occurrence=1) in later.overdue
    soon = selectors.worklist(rectal_coordinator, rectal, today=fu2.window_opens - days(10))
    assert fu2 in soon.upcoming and r < soon.today


def test_another_sites_visits_are_not_on_the_worklist(two_sites, rectal, rectal_coordinator):
    first, second, here, there = two_sites
    worklist = selectors.worklist(rectal_coordinator, rectal)
    seen = {v.participant_id for v in worklist.overdue + worklist.open_now + worklist.upcoming}
    assert seen == {here.pk}


def test_an_all_sites_role_sees_both_and_can_narrow_to_one(two_sites, rectal, make_user):
    first, second, here, there = two_sites
    data_manager = make_user("data_manager", rectal)
    both = selectors.worklist(data_manager, rectal)
    assert {v.participant_id for v in both.overdue} == {here.pk, there.pk}
    one = selectors.worklist(data_manager, rectal, site=second)
    assert {v.participant_id for v in one.overdue} == {there.pk}


def test_worklist_runs_five_queries_whatever_the_number_of_visits(
        two_sites, rectal, make_user, django_assert_num_queries):
    first, *_ = two_sites
    data_manager = make_user("data_manager", rectal)
    selectors.worklist(data_manager, rectal)  # memberships read once and cached on the user
    # The three counts in one aggregate, a page of each section, the deviation count.
    with django_assert_num_queries(5):
        small = selectors.worklist(data_manager, rectal)
        [(v.participant.study_id, v.participant.site.code) for v in small.overdue + small.open_now]
    factories.randomised(rectal, first, by=make_user("coordinator", rectal), days_ago=200)
    with django_assert_num_queries(5):
        large = selectors.worklist(data_manager, rectal)
        [(v.participant.study_id, v.participant.site.code) for v in large.overdue + large.open_now]
    assert large.counts.overdue > small.counts.overdue


def test_worklist_sections_are_paged_with_their_full_counts(two_sites, rectal,
                                                           rectal_coordinator, client_for):
    full = selectors.worklist(rectal_coordinator, rectal)
    assert full.counts.overdue == 2
    first = selectors.worklist(rectal_coordinator, rectal, per_page=1)
    second = selectors.worklist(rectal_coordinator, rectal, per_page=1, pages={"overdue": 2})
    beyond = selectors.worklist(rectal_coordinator, rectal, per_page=1, pages={"overdue": 9})
    assert first.counts == full.counts
    assert first.overdue + second.overdue == full.overdue
    assert beyond.overdue == second.overdue  # past the end: the last page
    assert first.overdue_section.has_next and not second.overdue_section.has_next
    # A page number that is not a number is page 1, not an error.
    page = client_for(rectal_coordinator).get(
        reverse("visit_worklist", args=[rectal.slug]) + "?overdue_page=abc")
    assert page.status_code == 200


def test_worklist_page(two_sites, rectal, rectal_coordinator, client_for):
    first, second, here, there = two_sites
    page = client_for(rectal_coordinator).get(reverse("visit_worklist", args=[rectal.slug]))
    html = page.content.decode()
    assert page.status_code == 200
    assert here.study_id in html and there.study_id not in html
    assert "2 overdue" in html and "1 open now" in html
    # Another site's worklist by URL: not found.
    response = client_for(rectal_coordinator).get(
        reverse("visit_worklist", args=[rectal.slug]) + f"?site={second.code}")
    assert response.status_code == 404


def test_worklist_page_query_count_does_not_grow_with_visits(two_sites, rectal, make_user,
                                                             client, django_assert_max_num_queries, client_for):
    first, *_ = two_sites
    user = make_user("data_manager", rectal)
    client_for(user)
    url = reverse("visit_worklist", args=[rectal.slug])
    client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as small:
        client.get(url)
    for _ in range(3):
        factories.randomised(rectal, first, by=make_user("coordinator", rectal), days_ago=150)
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(url)


def test_home_page_counts_per_trial(two_sites, rectal, rectal_coordinator, client_for,
                                    django_assert_num_queries):
    _, _, here, _ = two_sites
    counts = selectors.visit_counts(rectal_coordinator, [rectal])
    assert counts[rectal.pk] == selectors.worklist(rectal_coordinator, rectal).counts
    html = client_for(rectal_coordinator).get(reverse("home")).content.decode()
    assert "2 overdue" in html and "1 open now" in html
    assert reverse("visit_worklist", args=[rectal.slug]) in html
    with django_assert_num_queries(1):
        selectors.visit_counts(rectal_coordinator, [rectal])


def test_timeline_shows_every_visit_its_window_and_state(two_sites, rectal, rectal_coordinator,
                                                         client_for):
    _, _, here, _ = two_sites
    html = client_for(rectal_coordinator).get(
        reverse("visit_timeline", args=[rectal.slug, here.study_id])).content.decode()
    for visit in Visit.objects.filter(participant=here):
        assert f'id="visit-{visit.pk}"' in html
        assert f"{visit.window_opens:%Y-%m-%d} → {visit.window_closes:%Y-%m-%d}" in html
    assert "Overdue" in html and "Open" in html and "Planned" in html
    assert "Waiting for a date" in html and "Primary tumour resection (arm A)" in html


def test_another_sites_participant_timeline_is_not_found(two_sites, rectal, rectal_coordinator,
                                                         client_for):
    _, _, _, there = two_sites
    client = client_for(rectal_coordinator)
    assert client.get(reverse("visit_timeline", args=[rectal.slug, there.study_id])
                      ).status_code == 404
    visit = Visit.objects.filter(participant=there).first()
    response = client.post(reverse("update_visit", args=[rectal.slug, there.study_id, visit.pk]),
                           {"action": "done", "done_on": TODAY().isoformat()})
    assert response.status_code == 404
    visit.refresh_from_db()
    assert visit.status == VisitStatus.PLANNED


def test_marking_done_from_the_timeline_records_a_deviation_shown_on_both_pages(
        two_sites, rectal, rectal_coordinator, client_for):
    _, _, here, _ = two_sites
    surgery = Visit.objects.get(participant=here, code="surgery")
    client = client_for(rectal_coordinator)
    response = client.post(reverse("update_visit", args=[rectal.slug, here.study_id, surgery.pk]),
                           {"action": "done", "done_on": (TODAY() - days(70)).isoformat()})
    assert response.status_code == 302
    surgery.refresh_from_db()
    assert surgery.status == VisitStatus.DONE
    timeline = client.get(reverse("visit_timeline", args=[rectal.slug, here.study_id]))
    detail = client.get(reverse("participant_detail", args=[rectal.slug, here.study_id]))
    for page in (timeline, detail):
        html = page.content.decode()
        assert 'data-testid="deviations"' in html
        assert "after its window closed" in html


@pytest.mark.parametrize("post, field, message", [
    ({"action": "done", "done_on": "2999-01-01"}, "done_on", "cannot be in the future"),
    ({"action": "done", "done_on": "2000-01-01"}, "done_on", "before randomisation"),
    ({"action": "done", "done_on": "31/02/2026"}, "done_on", "Enter a valid date"),
    ({"action": "done"}, "done_on", "Give the date the visit took place"),
    ({"action": "missed"}, "reason", "Give the reason the visit is not done"),
    ({"action": "explode"}, "action", "Select a valid choice"),
])
def test_bad_input_on_the_timeline_gets_a_clear_error_and_changes_nothing(
        two_sites, rectal, rectal_coordinator, client_for, post, field, message):
    _, _, here, _ = two_sites
    surgery = Visit.objects.get(participant=here, code="surgery")
    response = client_for(rectal_coordinator).post(
        reverse("update_visit", args=[rectal.slug, here.study_id, surgery.pk]), post)
    assert response.status_code == 400
    assert message in response.content.decode()
    surgery.refresh_from_db()
    assert surgery.status == VisitStatus.PLANNED and surgery.done_on is None


def test_an_unknown_visit_is_not_found(two_sites, rectal, rectal_coordinator, client_for):
    _, _, here, there = two_sites
    other_visit = Visit.objects.filter(participant=there).first()  # exists, not this participant's
    client = client_for(rectal_coordinator)
    for visit_id in (999999, other_visit.pk):
        response = client.post(reverse("update_visit", args=[rectal.slug, here.study_id, visit_id]),
                               {"action": "done", "done_on": TODAY().isoformat()})
        assert response.status_code == 404


def test_an_investigator_sees_the_timeline_but_cannot_change_visits(two_sites, rectal, make_user,
                                                                     client_for):
    first, _, here, _ = two_sites
    investigator = make_user("investigator", rectal, first)
    client = client_for(investigator)
    page = client.get(reverse("visit_timeline", args=[rectal.slug, here.study_id]))
    assert page.status_code == 200 and "Done on this date" not in page.content.decode()
    visit = Visit.objects.filter(participant=here).first()
    response = client.post(reverse("update_visit", args=[rectal.slug, here.study_id, visit.pk]),
                           {"action": "done", "done_on": TODAY().isoformat()})
    assert response.status_code == 403


def test_adding_an_unscheduled_visit_from_the_timeline(two_sites, rectal, rectal_coordinator,
                                                       client_for):
    _, _, here, _ = two_sites
    url = reverse("add_unscheduled_visit", args=[rectal.slug, here.study_id])
    client = client_for(rectal_coordinator)
    bad = client.post(url, {"on": "2000-01-01", "reason": "Check"})
    assert bad.status_code == 400 and "before randomisation" in bad.content.decode()
    ok = client.post(url, {"on": TODAY().isoformat(), "reason": "Toxicity check",
                           "crfs": ["adverse_events"]})
    assert ok.status_code == 302
    visit = Visit.objects.get(participant=here, unscheduled=True)
    assert visit.crfs == ["adverse_events"] and visit.status_reason == "Toxicity check"


def test_blinded_visit_pages_never_show_the_arm(reminet, reminet_coordinator, make_user,
                                                client_for):
    from scheduling.services import save_crf_and_replan as save_crf

    p = factories.randomised(reminet, by=reminet_coordinator, days_ago=60)
    r = timezone.localdate(p.allocation.randomised_at)
    factories.first_injection(p, r + days(2), by=reminet_coordinator)
    scheduling.record_visit_done(Visit.objects.get(participant=p, code="baseline"),
                                 done_on=TODAY() - days(10), by=reminet_coordinator)
    for role in ("coordinator", "investigator", "data_manager", "sponsor"):
        user = make_user(role, reminet, p.site if role in ("coordinator", "investigator")
                         else None)
        client = client_for(user)
        for url in (reverse("visit_timeline", args=[reminet.slug, p.study_id]),
                    reverse("visit_worklist", args=[reminet.slug]),
                    reverse("participant_detail", args=[reminet.slug, p.study_id]),
                    reverse("home")):
            response = client.get(url)
            assert response.status_code == 200, url
            assert_no_arm(reminet, response.content.decode(), f"{url} for {role}")


def test_the_timeline_reads_in_five_queries_whatever_the_number_of_visits(
        two_sites, rectal_coordinator, django_assert_num_queries):
    from scheduling.services import save_crf_and_replan as save_crf

    _, _, here, _ = two_sites
    with django_assert_num_queries(5):  # visits, their deviations, allocation, anchor CRFs, withdrawals
        before = timeline(here)
    r = timezone.localdate(here.allocation.randomised_at)
    save_crf(here, "surgery", {"surgery_date": (r + days(10)).isoformat(),
                               "approach": "laparoscopy"}, by=rectal_coordinator, complete=False)
    with django_assert_num_queries(5):
        after = timeline(here)
    assert len(after.visits) == len(before.visits) + 3 and not after.waiting
