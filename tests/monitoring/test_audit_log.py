"""The audit log of a trial (issue 20, item 5): who reads which entries (site scoping), the
filters and their errors, blinding, the page, its CSV and the API, with fixed query counts."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core import audit
from core.models import AuditEvent
from randomisation import services as randomisation
from reports.audit_log import CONCEALED, AuditFilters, audit_log_for, parse_filters, rows
from tests.conftest import PASSWORD
from tests.monitoring.conftest import NOW, days_ago


def fresh(user):
    """The user as a new request gets it (no membership cached)."""
    return get_user_model().objects.get(pk=user.pk)


def actions(entries) -> list[str]:
    return [e.action for e in entries]


@pytest.fixture
def logged(world):
    """Besides the set-up's entries (protocol loads, the list, consents, confirmations),
    a randomisation at each site on known days and an emergency unblinding at the first,
    whose reason quotes an arm as a person might type it."""
    trial = world.trial
    for i, days in ((0, 20), (1, 10)):
        with time_machine.travel(days_ago(days), tick=False):
            randomisation.randomise(world.participants[i], by=world.coordinators[i])
    allocation = world.participants[0].allocation
    arm = allocation.arm
    with time_machine.travel(days_ago(5), tick=False):
        randomisation.emergency_unblind(
            allocation, by=world.investigators[0], password=PASSWORD,
            reason=f"Anaphylaxis: is it {arm.label} ({arm.code})?")
    world.arm = arm
    return world


# --------------------------------------------------------------------------- what entries say


def test_entries_name_the_site_and_participant_they_concern(logged):
    p = logged.participants[1]
    entry = AuditEvent.objects.get(action="participant.randomised", study_id=p.study_id)
    assert entry.site == p.site
    loaded = AuditEvent.objects.filter(trial=logged.trial, action="protocol.loaded").get()
    assert loaded.site is None and loaded.study_id == ""


# --------------------------------------------------------------------------- who sees what


def test_a_reader_of_the_whole_trial_sees_every_entry(logged):
    entries = list(audit_log_for(fresh(logged.data_manager), logged.trial))
    assert {e.site for e in entries} == {None, *logged.sites}
    assert "protocol.loaded" in actions(entries) and "allocation_list.sealed" in actions(entries)
    assert actions(entries) == actions(sorted(entries, key=lambda e: (e.at, e.pk),
                                              reverse=True))  # newest first


def test_a_reader_of_one_site_sees_its_entries_only_and_no_trial_wide_one(logged, make_user):
    reader = make_user("data_manager", logged.trial, logged.sites[0])
    entries = list(audit_log_for(reader, logged.trial))
    assert entries and {e.site for e in entries} == {logged.sites[0]}
    other = logged.participants[1].study_id
    assert not [e for e in entries if other in e.message or e.study_id == other]


def test_roles_without_the_permission_and_other_trials_read_nothing(logged, rectal, make_user):
    assert not audit_log_for(logged.investigators[0], logged.trial).exists()
    assert not audit_log_for(make_user("sponsor", logged.trial), logged.trial).exists()
    assert not audit_log_for(make_user("data_manager", rectal), logged.trial).exists()


# --------------------------------------------------------------------------- filters


def filtered(world, **params):
    user = fresh(world.data_manager)
    return list(audit_log_for(user, world.trial, parse_filters(user, world.trial, params)))


def test_filters_by_site_participant_user_kind_and_dates(logged):
    site, p = logged.sites[1], logged.participants[1]
    assert {e.site for e in filtered(logged, site=site.code)} == {site}
    assert {e.study_id for e in filtered(logged, participant=p.study_id)} == {p.study_id}
    by = logged.investigators[0].get_username()
    assert actions(filtered(logged, user=by)) == ["participant.emergency_unblinded"]
    assert actions(filtered(logged, kind="participant.randomised")) == [
        "participant.randomised"] * 2
    day = lambda d: (NOW - dt.timedelta(days=d)).date().isoformat()  # noqa: E731
    assert actions(filtered(logged, start=day(12), end=day(3))) == [
        "participant.emergency_unblinded", "participant.randomised"]
    assert actions(filtered(logged, start=day(10), end=day(10))) == ["participant.randomised"]
    assert filtered(logged, kind="participant.randomised", site=logged.sites[0].code,
                    start=day(15)) == []


@pytest.mark.parametrize("params, field, says", [
    ({"start": "2026-13-01"}, "start", "2026-13-01 is not a date"),
    ({"end": "yesterday"}, "end", "yesterday is not a date: write it as YYYY-MM-DD"),
    ({"start": "2026-06-10", "end": "2026-06-01"}, "end", "is before the start date"),
    ({"user": "nobody-here"}, "user", "No user named nobody-here"),
    ({"site": "XX-99"}, "site", "No site XX-99"),
    ({"participant": "REMINET-99-9999"}, "participant", "No participant REMINET-99-9999"),
    ({"kind": "no.such_kind"}, "kind", "No entry of the kind no.such_kind"),
])
def test_a_bad_filter_is_refused_saying_which_and_why(logged, params, field, says):
    with pytest.raises(ValidationError) as caught:
        parse_filters(logged.data_manager, logged.trial, params)
    assert says in " ".join(caught.value.message_dict[field])


def test_another_sites_participant_is_not_found_like_a_made_up_one(logged, make_user):
    reader = make_user("data_manager", logged.trial, logged.sites[0])
    other = logged.participants[1].study_id
    with pytest.raises(ValidationError) as caught:
        parse_filters(reader, logged.trial, {"participant": other})
    assert caught.value.message_dict["participant"] == [
        f"No participant {other} at the sites whose audit log you may read."]
    with pytest.raises(ValidationError):
        parse_filters(reader, logged.trial, {"site": logged.sites[1].code})


# --------------------------------------------------------------------------- blinding


def test_a_blinded_reader_never_sees_an_arm_nor_the_detail(logged):
    arm = logged.arm
    shown = rows(fresh(logged.data_manager), logged.trial, audit_log_for(
        fresh(logged.data_manager), logged.trial, AuditFilters(kind="participant.emergency_unblinded")))
    assert len(shown) == 1 and shown[0].detail is None
    assert arm.label not in shown[0].message and f"({arm.code})" not in shown[0].message
    assert shown[0].message.count(CONCEALED) == 2
    for row in rows(logged.data_manager, logged.trial, audit_log_for(logged.data_manager,
                                                                      logged.trial)):
        for other in logged.trial.arms.all():
            assert other.label.lower() not in row.message.lower()


def test_the_unblinded_statistician_reads_messages_and_details_as_written(logged, statistician):
    entry = AuditEvent.objects.get(action="participant.emergency_unblinded")
    [row] = rows(statistician, logged.trial, [entry])
    assert row.message == entry.message and logged.arm.label in row.message
    sealed = AuditEvent.objects.get(trial=logged.trial, action="allocation_list.sealed")
    assert rows(statistician, logged.trial, [sealed])[0].detail == sealed.detail


# --------------------------------------------------------------------------- the page


def page(client, world, **params):
    return client.get(reverse("audit_log", args=[world.trial.slug]), params)


def test_the_page_lists_entries_for_the_data_manager_and_links_from_the_trial(
        logged, client_for):
    client = client_for(logged.data_manager)
    response = page(client, logged, participant=logged.participants[1].study_id)
    assert response.status_code == 200
    body = response.content.decode()
    assert "participant.randomised" in body and logged.participants[0].study_id not in body
    assert logged.arm.label not in body and CONCEALED not in body
    trial_page = client.get(reverse("trial_detail", args=[logged.trial.slug])).content.decode()
    assert reverse("audit_log", args=[logged.trial.slug]) in trial_page
    assert reverse("query_metrics", args=[logged.trial.slug]) in trial_page


def test_the_trial_page_has_no_audit_link_for_site_staff(logged, client_for):
    client = client_for(logged.coordinators[0])
    trial_page = client.get(reverse("trial_detail", args=[logged.trial.slug])).content.decode()
    assert reverse("audit_log", args=[logged.trial.slug]) not in trial_page
    assert page(client, logged).status_code == 403


def test_bad_filters_on_the_page_are_said_with_a_400(logged, client_for):
    response = page(client_for(logged.data_manager), logged, start="2026-06-10",
                    end="2026-06-01", user="ghost")
    assert response.status_code == 400
    body = response.content.decode()
    assert "is before the start date" in body and "No user named ghost" in body
    assert 'data-testid="audit-log"' not in body


def test_the_page_is_paged(logged, client_for):
    for n in range(60):
        audit.record("test.entry", f"entry {n}", trial=logged.trial)
    client = client_for(logged.data_manager)
    first = page(client, logged, kind="test.entry").content.decode()
    second = page(client, logged, kind="test.entry", page=2).content.decode()
    assert "entry 59<" in first and "entry 10<" in first and "entry 9<" not in first
    assert "entry 9<" in second and "entry 0<" in second
    assert "kind=test.entry&amp;page=2" in first


def test_the_page_takes_as_many_queries_for_many_entries_as_for_few(
        logged, client_for, django_assert_num_queries):
    client = client_for(logged.data_manager)
    page(client, logged)  # the session's first request checks the second factor
    with CaptureQueriesContext(connection) as few:
        page(client, logged, start="2026-01-01")
    for n in range(40):
        audit.record("test.entry", f"entry {n}", trial=logged.trial,
                     actor=logged.coordinators[n % 2], participant=logged.participants[n % 2])
    with django_assert_num_queries(len(few)):
        assert page(client, logged, start="2026-01-01").status_code == 200


# --------------------------------------------------------------------------- the CSV


def csv_rows(response) -> list[dict]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


def test_the_csv_streams_the_filtered_log_and_is_audited(logged, client_for):
    client = client_for(logged.data_manager)
    site = logged.sites[0]
    response = client.get(reverse("audit_log_csv", args=[logged.trial.slug]),
                          {"site": site.code, "kind": "participant.emergency_unblinded"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    [row] = csv_rows(response)
    assert row["site"] == site.code and row["study_id"] == logged.participants[0].study_id
    assert logged.arm.label not in row["message"] and CONCEALED in row["message"]
    assert "detail" not in row  # blinded reader: no detail column
    exported = AuditEvent.objects.filter(action="data.exported").latest("pk")
    assert exported.actor == logged.data_manager
    assert exported.detail["audit_log"] == {"site": site.code,
                                            "kind": "participant.emergency_unblinded"}


def test_the_statisticians_csv_has_the_detail(logged, statistician, client_for):
    response = client_for(statistician).get(
        reverse("audit_log_csv", args=[logged.trial.slug]), {"kind": "allocation_list.sealed"})
    [row] = csv_rows(response)
    assert '"sha256"' in row["detail"]


def test_a_bad_filter_on_the_csv_is_a_400_saying_which(logged, client_for):
    response = client_for(logged.data_manager).get(
        reverse("audit_log_csv", args=[logged.trial.slug]), {"start": "31/12/2026"})
    assert response.status_code == 400
    assert "31/12/2026 is not a date" in response.content.decode()
    assert not AuditEvent.objects.filter(action="data.exported").exists()


# --------------------------------------------------------------------------- the API


def api(client, world, **params):
    return client.get(reverse("api_audit_log", args=[world.trial.slug]), params)


def test_the_api_lists_with_the_same_filters_and_pages(logged, client_for):
    client = client_for(logged.data_manager)
    body = api(client, logged, kind="participant.randomised", page_size=1).json()
    assert body["count"] == 2 and len(body["results"]) == 1 and body["next"]
    entry = body["results"][0]
    assert entry["kind"] == "participant.randomised" and entry["detail"] is None
    assert entry["study_id"] == logged.participants[1].study_id
    assert entry["site"] == logged.sites[1].code


def test_the_api_masks_arms_for_the_blinded(logged, client_for, statistician):
    blinded = api(client_for(logged.data_manager), logged,
                  kind="participant.emergency_unblinded").json()["results"][0]
    assert logged.arm.label not in blinded["message"]
    unblinded = api(client_for(statistician), logged,
                    kind="participant.emergency_unblinded").json()["results"][0]
    assert logged.arm.label in unblinded["message"] and unblinded["detail"] is not None


def test_the_api_refuses_bad_filters_and_other_roles(logged, client_for, make_user):
    response = api(client_for(logged.data_manager), logged, start="2026-06-10", end="2026-06-01")
    assert response.status_code == 400 and "end" in response.json()
    assert api(client_for(make_user("sponsor", logged.trial)), logged).status_code == 403


def test_the_api_takes_as_many_queries_for_many_entries_as_for_few(
        logged, client_for, django_assert_num_queries):
    client = client_for(logged.data_manager)
    api(client, logged)  # the session's first request checks the second factor
    with CaptureQueriesContext(connection) as few:
        api(client, logged)
    for n in range(30):
        audit.record("test.entry", f"entry {n}", trial=logged.trial,
                     participant=logged.participants[n % 2], actor=logged.coordinators[n % 2])
    with django_assert_num_queries(len(few)):
        assert api(client, logged).status_code == 200
