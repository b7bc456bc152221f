"""Data queries: the data manager (or a soft edit check) questions one answer of one CRF; the
site answers or corrects it; the data manager closes or re-opens it. The conversation is kept
whole, and open queries show where people work: next to the field, on the participant page
and on the visit worklist."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from crfs import services
from crfs.models import CRFRecord, DataQuery, MessageKind, QueryMessage, QueryStatus
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.crf_world import crf_url, demographics, query_url, record_url


def raise_on(record, by, path="weight_kg", text="71.5 kg differs from the source (75 kg)."):
    return services.raise_query(record, by=by, field_path=path, text=text)


def thread(query):
    return [(m.kind, m.author, m.text) for m in query.messages.order_by("at", "pk")]


# --------------------------------------------------------------------------- the life of a query


def test_a_data_manager_raises_a_query_on_one_field_of_one_crf(complete, data_manager):
    query = raise_on(complete, data_manager)
    assert (query.record, query.field_path, query.status) == (complete, "weight_kg", "open")
    assert query.raised_by == data_manager and not query.automatic
    assert thread(query) == [("raised", data_manager,
                              "71.5 kg differs from the source (75 kg).")]


def test_the_site_answers_and_the_data_manager_closes(complete, investigator, data_manager):
    query = raise_on(complete, data_manager)
    services.answer_query(query, by=investigator, text="Checked: 71.5 kg is right, the source "
                                                       "note was from another visit.")
    assert DataQuery.objects.get(pk=query.pk).status == QueryStatus.ANSWERED
    services.close_query(query, by=data_manager)
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by == data_manager
    assert [k for k, *_ in thread(query)] == ["raised", "answered", "closed"]
    assert CRFRecord.objects.get(pk=complete.pk).data["weight_kg"] == "71.5"  # unchanged


def test_a_correction_goes_through_save_crf_with_the_answer_as_its_reason(
        complete, investigator, data_manager):
    services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    query = raise_on(complete, data_manager)
    p = complete.participant
    services.answer_query(query, by=investigator, text="Corrected from the source: 75 kg",
                          correction=demographics(p, weight_kg="75.0"))
    record = CRFRecord.objects.get(pk=complete.pk)
    latest = record.history.order_by("-history_id").first()
    assert record.data["weight_kg"] == "75.0"
    assert latest.history_change_reason == f"Query #{query.pk}: Corrected from the source: 75 kg"
    assert latest.history_user == investigator
    message = query.messages.order_by("-pk").first()
    assert (message.kind, message.correction_id) == (MessageKind.CORRECTED, latest.history_id)
    assert record.signatures.get().voided_at is not None, "a correction voids the signature"


def test_the_data_manager_reopens_an_answered_query_with_a_comment(complete, investigator,
                                                                   data_manager):
    query = raise_on(complete, data_manager)
    services.answer_query(query, by=investigator, text="Fine.")
    with pytest.raises(ValidationError) as caught:
        services.reopen_query(query, by=data_manager, text="")
    assert "text" in caught.value.message_dict
    services.reopen_query(query, by=data_manager, text="Please attach the source value.")
    assert DataQuery.objects.get(pk=query.pk).status == QueryStatus.OPEN
    with pytest.raises(ValidationError, match="already open"):
        services.reopen_query(query, by=data_manager, text="again")
    services.close_query(query, by=data_manager, text="Resolved at monitoring visit")
    services.reopen_query(query, by=data_manager, text="New source document")
    assert [k for k, *_ in thread(query)] == ["raised", "answered", "reopened", "closed",
                                             "reopened"]


def test_a_closed_query_cannot_be_answered_or_closed_again(complete, investigator,
                                                           data_manager):
    query = raise_on(complete, data_manager)
    services.close_query(query, by=data_manager)
    with pytest.raises(ValidationError, match="This query is closed"):
        services.answer_query(query, by=investigator, text="late answer")
    with pytest.raises(ValidationError, match="already closed"):
        services.close_query(query, by=data_manager)
    assert query.messages.count() == 2


@pytest.mark.parametrize("path, error", [
    ("wieght_kg", "This CRF has no field “wieght_kg”."),
    ("", "This CRF has no field “”."),
    ("weight_kg[0].term", "This CRF has no field “weight_kg[0].term”."),
    ("metastatic_sites; DROP TABLE", "This CRF has no field “metastatic_sites; DROP TABLE”."),
])
def test_a_query_on_an_unknown_field_is_refused(complete, data_manager, path, error):
    with pytest.raises(ValidationError) as caught:
        raise_on(complete, data_manager, path=path)
    assert caught.value.message_dict == {"field_path": [error]}
    assert not DataQuery.objects.exists()


def test_a_query_on_a_row_of_a_group_names_an_existing_row(participant, investigator,
                                                           data_manager):
    follow_up = Visit.objects.filter(participant=participant, code="follow_up").first()
    day = timezone.localdate().isoformat()
    record = save_crf(participant, "adverse_events", {"any_event": True, "events": [
        {"term": "Nausea", "grade": 2, "start_date": day}]}, by=investigator, complete=False,
        visit=follow_up)
    query = raise_on(record, data_manager, path="events[0].grade", text="Grade 2 or 3?")
    assert query.field_path == "events[0].grade"
    with pytest.raises(ValidationError) as caught:
        raise_on(record, data_manager, path="events[1].grade")
    assert caught.value.message_dict == {"field_path": ["“Adverse events” has no row 2."]}


def test_a_query_needs_its_question_and_an_answer_needs_its_text(complete, investigator,
                                                                 data_manager):
    with pytest.raises(ValidationError) as caught:
        raise_on(complete, data_manager, text="   ")
    assert caught.value.message_dict == {"text": ["Write the question."]}
    query = raise_on(complete, data_manager)
    with pytest.raises(ValidationError) as caught:
        services.answer_query(query, by=investigator, text="")
    assert caught.value.message_dict == {"text": ["Say what you checked or changed."]}
    assert DataQuery.objects.get(pk=query.pk).status == QueryStatus.OPEN


def test_who_may_raise_answer_and_close(complete, investigator, coordinator, data_manager,
                                        other_investigator, rectal, make_user):
    sponsor = make_user("sponsor", rectal)
    for user in (investigator, coordinator, sponsor):
        with pytest.raises(PermissionDenied):
            raise_on(complete, user)
    query = raise_on(complete, data_manager)
    for user in (data_manager, sponsor, other_investigator):
        with pytest.raises(PermissionDenied):
            services.answer_query(query, by=user, text="x")
    services.answer_query(query, by=coordinator, text="Checked by the coordinator.")
    for user in (investigator, coordinator):
        with pytest.raises(PermissionDenied):
            services.close_query(query, by=user)


def test_messages_and_queries_are_never_deleted(complete, data_manager):
    query = raise_on(complete, data_manager)
    with pytest.raises(Exception, match="never deleted"):
        query.delete()
    with pytest.raises(Exception, match="never deleted"):
        QueryMessage.objects.get().delete()


# --------------------------------------------------------------------------- automatic queries


def surgery(participant, by, *, days_after: int, record=None, reason=""):
    randomised = timezone.localdate(participant.allocation.randomised_at)
    visit = Visit.objects.get(participant=participant, code="surgery")
    return save_crf(participant, "surgery", {
        "surgery_date": (randomised + dt.timedelta(days=days_after)).isoformat(),
        "approach": "laparoscopy"}, by=by, complete=False, record=record, visit=visit,
        reason=reason)


def test_a_failing_soft_check_raises_an_automatic_query_on_its_field_once(participant,
                                                                         investigator):
    record = surgery(participant, investigator, days_after=25)
    assert [w.code for w in record.warnings] == ["surgery_within_21_days"]
    query = DataQuery.objects.get()
    assert (query.field_path, query.check_code, query.raised_by, query.automatic) == (
        "surgery_date", "surgery_within_21_days", None, True)
    [(kind, author, text)] = thread(query)
    assert kind == "raised" and author is None and text.startswith("Automatic query: Surgery is later")

    surgery(participant, investigator, days_after=26, record=record)
    assert DataQuery.objects.count() == 1, "not raised again while it is unresolved"


def test_correcting_the_value_marks_the_automatic_query_answered_for_review(
        participant, investigator, data_manager):
    record = surgery(participant, investigator, days_after=25)
    surgery(participant, investigator, days_after=20, record=record)
    query = DataQuery.objects.get()
    assert query.status == QueryStatus.ANSWERED
    assert thread(query)[-1] == ("answered", None, "The edit check passes after this change.")
    services.close_query(query, by=data_manager)
    surgery(participant, investigator, days_after=25, record=record)
    assert DataQuery.objects.count() == 1, "a closed automatic query (accepted) is not re-raised"


def test_a_crf_without_soft_checks_costs_no_query_lookup(complete, investigator,
                                                         django_assert_num_queries):
    from crfs.services import _automatic_queries

    with django_assert_num_queries(0):
        _automatic_queries(complete, complete.definition, [])


# --------------------------------------------------------------------------- on the pages


def test_raising_answering_and_closing_on_the_crf_page(complete, investigator, data_manager,
                                                       client, client_for):
    client_for(data_manager)
    response = client.post(record_url("query_raise", complete),
                           {"field_path": "weight_kg", "text": "Source says 75 kg."})
    query = DataQuery.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"#query-{query.pk}")

    client_for(investigator)
    page = client.get(crf_url(complete)).content.decode()
    field = page[page.index('id="weight_kg-field"'):]
    field = field[:field.index('id="primary_location-field"')]
    assert 'data-testid="field-query"' in field and "Source says 75 kg." in field
    empty = client.post(query_url("query_answer", query), {"text": ""})
    assert empty.status_code == 400 and "Say what you checked or changed." in empty.content.decode()
    assert client.post(query_url("query_answer", query),
                       {"text": "75 kg is right"}).status_code == 302

    client_for(data_manager)
    assert client.post(query_url("query_close", query), {"text": ""}).status_code == 302
    again = client.post(query_url("query_close", query), {"text": ""})
    assert again.status_code == 400 and "already closed" in again.content.decode()
    client_for(investigator)
    late = client.post(query_url("query_answer", query), {"text": "one more thing"})
    assert late.status_code == 400
    assert "This query is closed; the data manager may re-open it." in late.content.decode()
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.messages.count() == 3


def test_a_query_on_an_unknown_field_is_refused_on_the_page_next_to_the_field(
        complete, data_manager, client, client_for):
    client_for(data_manager)
    response = client.post(record_url("query_raise", complete),
                           {"field_path": "shoe_size", "text": ""})
    assert response.status_code == 400
    form = response.context["raise_form"]
    assert form.errors == {"field_path": ["This CRF has no such field."],
                           "text": ["Write the question."]}
    assert not DataQuery.objects.exists()


def test_correcting_a_value_from_the_crf_form_answers_the_query(complete, investigator,
                                                                data_manager, client, client_for):
    query = raise_on(complete, data_manager)
    client_for(investigator)
    post = {"sex": "male", "year_of_birth": "1958", "ecog": "0", "height_cm": "172.0",
            "weight_kg": "75.0", "primary_location": "low_rectum",
            "distance_anal_verge_cm": "0", "metastatic_sites": "liver",
            "answers_query": str(query.pk), "action": "complete"}
    missing = client.post(crf_url(complete), post)
    assert missing.status_code == 400
    assert missing.context["reason_errors"] == ["Say what you checked or changed."]
    assert CRFRecord.objects.get(pk=complete.pk).data["weight_kg"] == "71.5"

    done = client.post(crf_url(complete), dict(post, reason="Source: 75 kg"))
    assert done.status_code == 302 and done.url.endswith(f"#query-{query.pk}")
    assert CRFRecord.objects.get(pk=complete.pk).data["weight_kg"] == "75.0"
    assert DataQuery.objects.get(pk=query.pk).status == QueryStatus.ANSWERED
    assert query.messages.order_by("-pk").first().kind == MessageKind.CORRECTED


def test_another_sites_query_is_not_found(complete, data_manager, other_investigator, client, client_for):
    query = raise_on(complete, data_manager)
    client_for(other_investigator)
    for name in ("query_answer", "query_close", "query_reopen"):
        assert client.post(query_url(name, query), {"text": "x"}).status_code == 404, name
    p = complete.participant
    assert client.post(reverse("query_answer", args=[p.trial.slug, p.study_id, 999999]),
                       {"text": "x"}).status_code == 404


def test_open_queries_show_on_the_participant_page_and_the_worklist(
        complete, investigator, data_manager, client, rectal, sites, make_user, client_for):
    raise_on(complete, data_manager)
    coordinator_there = make_user("coordinator", rectal, sites[1])
    elsewhere = factories.randomised(rectal, sites[1], by=coordinator_there, days_ago=30)
    visit = Visit.objects.get(participant=elsewhere, code="baseline")
    there = save_crf(elsewhere, "demographics", demographics(elsewhere), by=coordinator_there,
                     complete=True, visit=visit)
    raise_on(there, data_manager, path="sex", text="Question at the second site")

    client_for(investigator)
    p = complete.participant
    page = client.get(reverse("participant_detail", args=[p.trial.slug, p.study_id]))
    html = page.content.decode()
    assert 'data-testid="participant-queries"' in html and "differs from the source" in html

    worklist = client.get(reverse("visit_worklist", args=[rectal.slug])).content.decode()
    counts = worklist[worklist.index('data-testid="query-counts"'):]
    assert sites[0].code in counts and sites[1].code not in counts
    assert "differs from the source" in worklist and "Question at the second site" not in worklist

    client_for(data_manager)
    worklist = client.get(reverse("visit_worklist", args=[rectal.slug])).content.decode()
    assert "Question at the second site" in worklist and "differs from the source" in worklist
    assert response_counts(worklist) == {sites[0].code: ("1", "0"), sites[1].code: ("1", "0")}


def response_counts(html: str) -> dict[str, tuple[str, str]]:
    import re

    table = html[html.index('data-testid="query-counts"'):]
    table = table[:table.index("</table>")]
    return {code: (a, b) for code, a, b in
            re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td><td>(\d+)</td></tr>", table)}
