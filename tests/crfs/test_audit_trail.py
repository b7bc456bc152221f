"""The audit trail: every change of every answer is kept (who, when, old value, new value,
reason), shown per CRF, never deleted, and cannot be edited by any page, admin screen or — on
PostgreSQL — SQL statement."""
from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from core.models import AuditEvent
from crfs import selectors, services
from crfs.models import CRFRecord, CRFSignature, DataQuery, QueryMessage
from crfs.trail import differences, flatten
from scheduling.services import save_crf_and_replan as save_crf
from tests.conftest import PASSWORD
from tests.crf_world import demographics, record_url


def test_answers_are_compared_field_by_field_and_row_by_row():
    before = {"weight_kg": "71.5", "events": [{"term": "Nausea", "grade": 1}]}
    after = {"weight_kg": "73.0", "events": [{"term": "Nausea", "grade": 2},
                                             {"term": "Fatigue", "grade": 1}]}
    assert flatten(after)["events[1].term"] == "Fatigue"
    assert [(d.path, d.old, d.new) for d in differences(before, after)] == [
        ("weight_kg", "71.5", "73.0"), ("events[0].grade", 1, 2),
        ("events[1].term", None, "Fatigue"), ("events[1].grade", None, 1)]
    assert [d.path for d in differences(after, {"weight_kg": "73.0", "events": []})] == [
        "events[0].term", "events[0].grade", "events[1].term", "events[1].grade"]
    assert differences({"events": [], "note": ""}, {"events": None, "note": None}) == [], \
        "unanswered is unanswered, however stored"


def test_every_change_is_kept_with_who_when_old_value_new_value_and_reason(
        participant, baseline, investigator, coordinator):
    p = participant
    record = save_crf(p, "demographics", {"sex": "male", "weight_kg": "70.0"}, by=coordinator,
                      complete=False, visit=baseline)
    record = save_crf(p, "demographics", demographics(p, weight_kg="70.0"), by=investigator,
                      complete=True, record=record)
    record = save_crf(p, "demographics", demographics(p, weight_kg="72.5"), by=investigator,
                      complete=True, record=record, reason="Scale recalibrated")

    first, second, third = selectors.crf_history(record)
    assert first.created and first.row.history_user == coordinator
    assert [(c.label, c.old, c.new) for c in first.changes if c.path == "weight_kg"] == [
        ("Weight", "—", "70.0 kg")]
    assert second.status_change == ("Draft", "Complete")
    assert second.row.history_user == investigator and second.row.history_change_reason is None
    assert [(c.path, c.old, c.new) for c in third.changes] == [
        ("weight_kg", "70.0 kg", "72.5 kg")]
    assert third.row.history_change_reason == "Scale recalibrated"
    assert third.row.history_date <= timezone.now()


def test_the_history_page_shows_each_version_field_by_field(complete, investigator,
                                                           data_manager, client, client_for):
    p = complete.participant
    save_crf(p, "demographics", demographics(p, sex="female"), by=investigator, complete=True,
             record=complete, reason="Wrong box ticked at entry")
    client_for(data_manager)
    response = client.get(record_url("crf_history", complete))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('data-testid="version"') == 2
    row = html[html.index('data-path="sex"', html.index("Wrong box") - 600):]
    assert "Male" in row[:400] and "Female" in row[:400]
    assert "Wrong box ticked at entry" in html and "Irène Curie" in html


def test_the_history_page_cannot_change_anything(complete, data_manager, client, client_for):
    client_for(data_manager)
    assert client.post(record_url("crf_history", complete)).status_code == 405
    assert client.post(record_url("crf_pdf", complete)).status_code == 405


def test_a_long_reason_is_kept_whole(complete, investigator):
    reason = "Source document review: " + "the weight was copied from the wrong visit; " * 8
    p = complete.participant
    save_crf(p, "demographics", demographics(p, weight_kg="80.0"), by=investigator,
             complete=True, record=complete, reason=reason)
    assert complete.history.order_by("-history_id").first().history_change_reason \
        == reason.strip()


def test_signing_locking_and_unlocking_are_in_the_trail_with_their_author(
        complete, investigator, data_manager):
    services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    services.lock_crf(complete, by=data_manager)
    services.unlock_crf(complete, by=data_manager, reason="Typo found at monitoring")
    versions = selectors.crf_history(CRFRecord.objects.get(pk=complete.pk))
    assert [(v.status_change[1], v.row.history_user) for v in versions[1:]] == [
        ("Signed", investigator), ("Locked", data_manager), ("Signed", data_manager)]
    assert versions[-1].row.history_change_reason == "Unlocked: Typo found at monitoring"


def test_clinical_data_queries_and_signatures_are_never_deleted(complete, investigator,
                                                                data_manager):
    signature = services.sign_crf(complete, by=investigator, password=PASSWORD,
                                  meaning="accurate")
    query = services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    for obj in (complete, signature, query, query.messages.get()):
        with pytest.raises(ProtectedError):
            obj.delete()


def test_the_admin_shows_the_trail_and_changes_nothing(complete, investigator, data_manager,
                                                       client, django_user_model, client_for):
    services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    query = services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    admin = django_user_model.objects.create_superuser("root", "root@example.org", PASSWORD)
    client_for(admin)
    history = complete.history.first()
    objects = {"crfrecord": complete, "historicalcrfrecord": history,
               "crfsignature": CRFSignature.objects.get(record=complete), "dataquery": query,
               "querymessage": query.messages.get()}
    for model, obj in objects.items():
        base = f"/admin/crfs/{model}/"
        assert client.get(base).status_code == 200, model
        assert client.get(f"{base}{obj.pk}/change/").status_code == 200, model
        assert client.post(f"{base}{obj.pk}/change/", {}).status_code == 403, model
        assert client.get(f"{base}add/").status_code == 403, model
        assert client.post(f"{base}{obj.pk}/delete/", {"post": "yes"}).status_code == 403, model
    assert CRFRecord.objects.get(pk=complete.pk).data == complete.data
    assert complete.history.count() == 2
    assert CRFSignature.objects.filter(record=complete).count() == 1


@pytest.mark.postgres
def test_postgresql_refuses_to_change_or_delete_the_trail(complete, investigator, data_manager):
    signature = services.sign_crf(complete, by=investigator, password=PASSWORD,
                                  meaning="accurate")
    services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    AuditEvent.objects.create(action="test", message="kept")
    refused = [
        "UPDATE outcomes_historicalcrfrecord SET data = '{}'",
        "DELETE FROM outcomes_historicalcrfrecord",
        "UPDATE outcomes_historicaldataquery SET status = 'closed'",
        "DELETE FROM outcomes_historicaldataquery",
        "UPDATE outcomes_querymessage SET text = 'rewritten'",
        "DELETE FROM outcomes_querymessage",
        "UPDATE patients_historicalparticipant SET status = 'withdrawn'",
        "DELETE FROM patients_historicalparticipant",
        "UPDATE patients_historicalvisit SET status = 'done'",
        "DELETE FROM patients_historicalvisit",
        "UPDATE trials_auditevent SET message = 'rewritten'",
        "DELETE FROM trials_auditevent",
        "UPDATE outcomes_crfsignature SET printed_name = 'Someone else'",
        "UPDATE outcomes_crfsignature SET digest = 'x', voided_at = now(), void_reason = 'r'",
        "DELETE FROM outcomes_crfsignature",
        "DELETE FROM outcomes_crfrecord",
        "DELETE FROM outcomes_dataquery",
        "DELETE FROM patients_visit",
        "DELETE FROM patients_participant",
    ]
    for sql in refused:
        with pytest.raises(IntegrityError, match="refused"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)
    assert complete.history.count() == 2 and QueryMessage.objects.count() == 1
    assert AuditEvent.objects.filter(message="kept").exists()

    # The one change a signature accepts: being voided, once.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE outcomes_crfsignature SET voided_at = now(), "
                       "void_reason = 'data changed' WHERE id = %s", [signature.pk])
    with pytest.raises(IntegrityError), transaction.atomic():
        CRFSignature.objects.filter(pk=signature.pk).update(void_reason="another story")
    # The ORM's own paths are refused alike.
    with pytest.raises(IntegrityError), transaction.atomic():
        complete.history.all().delete()
    with pytest.raises(IntegrityError), transaction.atomic():
        DataQuery.objects.all().delete()


def test_history_of_another_sites_crf_is_not_found(complete, other_investigator, client, client_for):
    client_for(other_investigator)
    assert client.get(record_url("crf_history", complete)).status_code == 404


def test_a_participants_history_rows_name_their_author_outside_any_request(
        participant, baseline, coordinator):
    record = save_crf(participant, "demographics", {"sex": "male"}, by=coordinator,
                      complete=False, visit=baseline)
    assert record.history.get().history_user == coordinator
