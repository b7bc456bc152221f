"""The lean writers of ``core.history`` store what the ORM and django-simple-history store."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from simple_history.utils import bulk_create_with_history

from patients.models import Participant, Status, Visit
from tests import factories
from core import audit
from trials import sql
from core.history import create_with_history, insert, one_statement, update_with_history
from core.models import AuditEvent

IGNORED = {"id", "history_id", "participant_id", "participant", "history_date", "created_at",
           "updated_at", "study_id", "history_relation"}


def _visits(participant) -> list[Visit]:
    day = dt.date(2026, 3, 2)
    return [Visit(participant=participant, code=f"injection_{n}", label=f"Injection {n}",
                  occurrence=n, anchor_code="randomisation", anchor_date=day,
                  target_date=day + dt.timedelta(days=28 * n),
                  window_opens=day + dt.timedelta(days=28 * n - 3),
                  window_closes=day + dt.timedelta(days=28 * n + 3),
                  crfs=["injection", "adverse_events"]) for n in (1, 2, 3)]


def _rows(queryset) -> list[dict]:
    return sorted(({k: v for k, v in row.items() if k not in IGNORED} for row in queryset.values()),
                  key=repr)


def test_visits_and_their_history_rows_are_those_of_simple_history(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    by_orm, by_lean = (factories.participant(reminet, by=coordinator) for _ in range(2))
    bulk_create_with_history(_visits(by_orm), Visit, default_user=coordinator,
                             default_change_reason="schedule created at randomisation")
    lean = _visits(by_lean)
    create_with_history(lean, user=coordinator, reason="schedule created at randomisation",
                        match=("code", "occurrence"))

    assert _rows(Visit.objects.filter(participant=by_lean)) == \
        _rows(Visit.objects.filter(participant=by_orm))
    assert _rows(Visit.history.filter(participant=by_lean)) == \
        _rows(Visit.history.filter(participant=by_orm))
    # Each object got the key of its own row, and is saved like one the ORM created.
    for visit in lean:
        stored = Visit.objects.get(pk=visit.pk)
        assert (stored.code, stored.occurrence) == (visit.code, visit.occurrence)
        assert stored.created_at == visit.created_at
        assert not visit._state.adding
    history = Visit.history.filter(participant=by_lean).get(code="injection_2")
    assert (history.history_type, history.history_user, history.id) == \
        ("+", coordinator, Visit.objects.get(participant=by_lean, code="injection_2").pk)


def test_an_update_and_its_history_row_are_those_of_a_save(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    by_orm, by_lean = (factories.participant(reminet, by=coordinator) for _ in range(2))
    by_orm.status, by_orm._change_reason, by_orm._history_user = \
        Status.RANDOMISED, "randomised", coordinator
    by_orm.save(update_fields=["status"])
    by_lean.status = Status.RANDOMISED
    update_with_history(by_lean, ["status"], user=coordinator, reason="randomised")

    assert Participant.objects.get(pk=by_lean.pk).status == Status.RANDOMISED
    assert _rows(Participant.history.filter(id=by_lean.pk)) == \
        _rows(Participant.history.filter(id=by_orm.pk))
    newest = Participant.history.filter(id=by_lean.pk).latest("history_id")
    assert (newest.history_type, newest.history_user, newest.history_change_reason,
            newest.status) == ("~", coordinator, "randomised", Status.RANDOMISED)


def test_an_inserted_audit_event_is_the_one_create_would_write(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    event = audit.record("test.lean", "Written by insert.", actor=coordinator, trial=reminet,
                         obj=reminet, detail={"n": 1, "arm": None})
    same = AuditEvent.objects.create(action="test.lean", message="Written by insert.",
                                     actor=coordinator, trial=reminet, object_type="trials.Trial",
                                     object_id=str(reminet.pk), detail={"n": 1, "arm": None})
    stored = AuditEvent.objects.get(pk=event.pk)
    fields = ["action", "message", "actor_id", "trial_id", "object_type", "object_id", "detail"]
    assert [getattr(stored, f) for f in fields] == [getattr(same, f) for f in fields]
    assert stored.at == event.at <= same.at  # stamped when written, as ``create`` stamps


def test_the_history_manager_class_is_built_once_and_bound_per_instance(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    first, second = (factories.participant(reminet, by=coordinator) for _ in range(2))
    assert type(first.history) is type(second.history) is type(Participant.history)
    assert list(first.history.values_list("id", flat=True)) == [first.pk]
    assert list(second.history.values_list("id", flat=True)) == [second.pk]


def test_insert_sets_the_key_of_a_model_without_history(reminet):
    event = insert(AuditEvent(action="test.key", message="x"))
    assert event.pk is not None and AuditEvent.objects.get(pk=event.pk).message == "x"
    assert AuditEvent.objects.get(pk=event.pk).at is not None


def test_values_without_a_json_type_are_written_as_their_columns_read_them():
    """PostgreSQL's many-row insert sends the rows as one JSON document (``_populate_sql``)."""
    import decimal
    import json

    from django.core.serializers.json import DjangoJSONEncoder
    from psycopg.types.json import Jsonb

    from core.history import _as_json

    moment = dt.datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=dt.timezone.utc)
    assert _as_json(moment) == "2026-03-02T09:30:00.123456+00:00"  # microseconds kept
    assert _as_json(dt.date(2026, 3, 2)) == "2026-03-02"
    assert _as_json(decimal.Decimal("1.10")) == "1.10"
    assert _as_json(Jsonb(["injection"])) == ["injection"]
    # A JSON field's own encoder still decides how its value is written.
    encoded = Jsonb({"on": dt.date(2026, 3, 2)},
                    dumps=lambda obj: json.dumps(obj, cls=DjangoJSONEncoder))
    assert _as_json(encoded) == {"on": "2026-03-02"}
    with pytest.raises(TypeError, match="bytes value .* has no JSON form"):
        _as_json(b"\x00")


def _written_together(participant, coordinator, *, key=None) -> tuple[AuditEvent, list[Visit]]:
    visits = _visits(participant)
    with one_statement():
        event = insert(AuditEvent(pk=key, action="test.together", message="x",
                                  actor=coordinator))
        create_with_history(visits, user=coordinator, reason="schedule created at randomisation",
                            match=("code", "occurrence"))
        participant.status = Status.RANDOMISED
        update_with_history(participant, ["status"], user=coordinator, reason="randomised")
    return event, visits


def test_writes_in_one_statement_are_those_written_apart(reminet, make_user):
    """On PostgreSQL the block's writes run as one statement when it ends; on SQLite each runs
    at once. Either way the rows, history rows and keys are those of the writes run apart."""
    coordinator = make_user("coordinator", reminet)
    apart, together = (factories.participant(reminet, by=coordinator) for _ in range(2))
    alone = insert(AuditEvent(action="test.together", message="x", actor=coordinator))
    create_with_history(_visits(apart), user=coordinator,
                        reason="schedule created at randomisation", match=("code", "occurrence"))
    apart.status = Status.RANDOMISED
    update_with_history(apart, ["status"], user=coordinator, reason="randomised")

    with CaptureQueriesContext(connection) as queries:
        event, visits = _written_together(together, coordinator)
    assert len(queries) == (1 if connection.vendor == "postgresql" else 5)

    assert _rows(Visit.objects.filter(participant=together)) == \
        _rows(Visit.objects.filter(participant=apart))
    assert _rows(Visit.history.filter(participant=together)) == \
        _rows(Visit.history.filter(participant=apart))
    assert _rows(Participant.history.filter(id=together.pk)) == \
        _rows(Participant.history.filter(id=apart.pk))
    assert Participant.objects.get(pk=together.pk).status == Status.RANDOMISED
    # Keys the database gave are set once the block has ended, each on its own object.
    assert AuditEvent.objects.get(pk=event.pk).action == "test.together" != alone.pk
    for visit in visits:
        stored = Visit.objects.get(pk=visit.pk)
        assert (stored.participant_id, stored.code, stored.occurrence) == \
            (together.pk, visit.code, visit.occurrence)
        assert not visit._state.adding


def test_a_key_reserved_before_the_block_names_the_row_inside_it(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    participant = factories.participant(reminet, by=coordinator)
    key = sql.reserve_key(AuditEvent)
    if connection.vendor == "postgresql":
        assert key is not None and not AuditEvent.objects.filter(pk=key).exists()
    else:
        assert key is None  # SQLite: the insert, run at once, gives it
    event, _ = _written_together(participant, coordinator, key=key)
    assert AuditEvent.objects.get(pk=event.pk).action == "test.together"
    if key is not None:
        assert event.pk == key


def test_an_error_in_the_block_writes_nothing_of_it(reminet, make_user):
    coordinator = make_user("coordinator", reminet)
    participant = factories.participant(reminet, by=coordinator)
    before = (AuditEvent.objects.count(), Visit.history.count(), Participant.history.count())
    with pytest.raises(RuntimeError, match="stop"):
        with transaction.atomic():  # what a caller's transaction undoes on SQLite
            with one_statement():
                insert(AuditEvent(action="test.together", message="x"))
                create_with_history(_visits(participant), user=coordinator, reason="r",
                                    match=("code", "occurrence"))
                raise RuntimeError("stop")
    assert (AuditEvent.objects.count(), Visit.history.count(), Participant.history.count()) \
        == before
    assert not Visit.objects.filter(participant=participant).exists()


def test_a_block_inside_another_adds_its_writes_to_the_outer_one(reminet):
    with CaptureQueriesContext(connection) as queries:
        with one_statement():
            first = insert(AuditEvent(action="test.outer", message="x"))
            with one_statement():
                second = insert(AuditEvent(action="test.inner", message="y"))
            if connection.vendor == "postgresql":
                assert second.pk is None  # not written yet: the outer block writes it
    assert len(queries) == (1 if connection.vendor == "postgresql" else 2)
    assert {AuditEvent.objects.get(pk=first.pk).action,
            AuditEvent.objects.get(pk=second.pk).action} == {"test.outer", "test.inner"}


def test_the_audit_log_refuses_an_object_without_a_key():
    """Inside ``one_statement`` an inserted row has no key until the block ends: an audit entry
    naming it then would name nothing."""
    with pytest.raises(ValueError, match="core.AuditEvent has no key yet"):
        audit.record("test.nokey", "x", obj=AuditEvent(action="x"))
