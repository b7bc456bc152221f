"""Row history (django-simple-history), and lean writes for the randomisation's transaction.

django-simple-history's ``HistoryDescriptor`` calls ``HistoryManager.from_queryset`` on every
access to ``Model.history`` or ``instance.history``, and ``from_queryset`` builds a new class
(it walks the queryset class with ``inspect.getmembers``). Every save of a tracked row goes
through that descriptor to write its history row, so the class was rebuilt for each one: about
a millisecond a write, several per randomisation or CRF save. The class depends only on the
manager and queryset classes, so it is built once and reused; the manager *instance* is still
made per access, bound to the instance asked for, as before.

``insert``, ``create_with_history`` and ``update_with_history`` write what ``Model.save``,
``bulk_create_with_history`` and a tracked model's ``save`` write (the same rows, the same
history rows), as plain SQL statements; on PostgreSQL, a row and its history row in one
statement. A randomisation writes about a dozen rows in one
transaction while the stratum's row lock is held; through the ORM, writing them took about 7 ms
of the 19 ms of Python a randomisation cost (see README, "Benchmarks"). Each value is still
prepared by its own field (``pre_save`` fills ``auto_now`` dates, ``get_db_prep_save`` adapts
JSON, dates and foreign keys), so what is stored is what the ORM would store; tests compare the
rows. They bypass ``save()`` and its signals: use them only for models with neither overridden
for a purpose (the models here only refuse updates, which an insert is not).

``one_statement`` goes one step further for a transaction's last writes: on PostgreSQL those
made in its block run as one statement (each a query of its ``WITH``) when the block ends. A
randomisation's allocation, visits, status and audit entry are written so, while the stratum's
row lock is held: one round trip instead of four.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import datetime as dt
import decimal
import functools
import json
import uuid
from typing import Callable

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model
from django.utils import timezone
from psycopg.types.json import Json, Jsonb
from simple_history import manager, models


class HistoryManager(manager.HistoryManager):
    _classes: dict[tuple, type] = {}

    @classmethod
    def from_queryset(cls, queryset_class, class_name=None):
        key = (cls, queryset_class, class_name)
        built = cls._classes.get(key)
        if built is None:
            built = cls._classes[key] = super().from_queryset(queryset_class, class_name)
        return built


def HistoricalRecords(**options) -> models.HistoricalRecords:  # noqa: N802 (reads as the class)
    """``simple_history.models.HistoricalRecords`` with the manager above."""
    return models.HistoricalRecords(history_manager=HistoryManager, **options)


def _prepared(obj: Model, fields, *, add: bool) -> dict:
    # The connection resolved once, not through the ``django.db.connection`` proxy for each
    # field (which halves the time: a randomisation prepares about ninety values).
    db = connections[DEFAULT_DB_ALIAS]
    return {f.attname: f.get_db_prep_save(f.pre_save(obj, add), db) for f in fields}


# PostgreSQL writes a row and its history row in one statement: the row's INSERT or UPDATE in
# a ``WITH`` whose ``RETURNING *`` the history's INSERT selects from (the values as stored,
# defaults included). SQLite has no such ``WITH``, and takes a second statement that copies
# the stored rows.
_ONE_STATEMENT = {"postgresql"}


def _insert_sql(table: str, columns: list[str], rows: list[dict]) -> tuple[str, list]:
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return (f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) VALUES "
            + ", ".join([placeholders] * len(rows)),
            [row[c] for row in rows for c in columns])


@functools.cache
def _populate_statement(model, vendor: str) -> str:
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    names = ", ".join(quote(f.column) for f in model._meta.concrete_fields if not f.primary_key)
    return (f"INSERT INTO {table} ({names}) SELECT {names}"
            f" FROM json_populate_recordset(NULL::{table}, %s)")


def _populate_sql(model, rows: list[dict]) -> tuple[str, list]:
    """PostgreSQL's ``INSERT … SELECT … FROM json_populate_recordset(NULL::<table>, <rows>)``:
    the rows as one JSON parameter, each value read by its column's type. One text and one
    parameter whatever the number of rows, where a multi-row VALUES has a parameter per value
    and psycopg parses again every statement of more than 50 parameters (0.7 ms of a
    randomisation's four visits)."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    return (_populate_statement(model, connection.vendor),
            [Json([{f.column: row[f.attname] for f in fields} for row in rows],
                  dumps=_dumps)])


def _as_json(value):
    # The values ``get_db_prep_save`` prepared that JSON has no type for, as the text that
    # PostgreSQL reads for their columns.
    if isinstance(value, (dt.date, dt.time)):  # datetimes too, with their UTC offset
        return value.isoformat()
    if isinstance(value, Jsonb):  # a JSON column's value, with its field's encoder
        if value.dumps in (None, json.dumps):
            return value.obj
        return json.loads(value.dumps(value.obj))
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    raise TypeError(f"{type(value).__name__} value {value!r} has no JSON form for "
                    f"json_populate_recordset")


_dumps = functools.partial(json.dumps, default=_as_json)


_HISTORY_OWN = ("history_date", "history_change_reason", "history_type", "history_user_id")


@functools.cache
def _history_statement(model, vendor: str) -> tuple[str, list]:
    meta = model._meta
    history = getattr(model, meta.simple_history_manager_attribute).model
    own = [history._meta.get_field(name) for name in _HISTORY_OWN]
    quote = connection.ops.quote_name
    tracked = ", ".join(quote(f.column) for f in history.tracked_fields)
    return (f"INSERT INTO {quote(history._meta.db_table)} ({tracked}, "
            f"{', '.join(quote(f.column) for f in own)}) SELECT {tracked}, "
            f"{', '.join(['%s'] * len(own))} FROM ", own)


def _history_sql(model, *, history_type: str, user, reason: str) -> tuple[str, list]:
    """``INSERT INTO <history> (…) SELECT <tracked columns>, <history's own> FROM`` and its
    parameters: django-simple-history's rows for the rows selected after ``FROM``, with the
    history's own date, change reason, type and user."""
    statement, own = _history_statement(model, connection.vendor)
    values = (timezone.now(), reason, history_type, user.pk if user else None)
    return statement, [f.get_db_prep_save(v, connection) for f, v in zip(own, values)]


def _copy_to_history(model, pks: list, **history) -> None:
    """Write the history rows of the stored rows ``pks`` of ``model``, copied by the database
    (a statement with a handful of parameters whatever the number of rows): SQLite's second
    statement."""
    meta = model._meta
    quote = connection.ops.quote_name
    copy, params = _history_sql(model, **history)
    with connection.cursor() as cursor:
        cursor.execute(copy + f"{quote(meta.db_table)} WHERE {quote(meta.pk.column)} IN "
                       f"({', '.join(['%s'] * len(pks))})", params + list(pks))


# --------------------------------------------------------------- one statement for several


@dataclasses.dataclass
class _Write:
    """One write of ``insert``, ``create_with_history`` or ``update_with_history``: its INSERT
    or UPDATE (no RETURNING), on PostgreSQL the history's ``INSERT … SELECT … FROM`` that
    copies the rows it wrote (None elsewhere, where ``_copy_to_history`` follows it), and, when
    the caller needs them, the columns of the rows written to give to ``done``."""
    statement: str
    params: list
    history: tuple[str, list] | None = None
    returning: list[Field] = dataclasses.field(default_factory=list)
    done: Callable[[list[tuple]], None] | None = None

    def returning_sql(self) -> str:
        quote = connection.ops.quote_name
        return (" RETURNING " + ", ".join(quote(f.column) for f in self.returning)
                if self.returning else "")


_together: contextvars.ContextVar[list[_Write] | None] = contextvars.ContextVar(
    "writes_together", default=None)


@contextlib.contextmanager
def one_statement():
    """The writes of ``insert``, ``create_with_history`` and ``update_with_history`` made in
    the block run as one statement when it ends, on PostgreSQL (each a query of its ``WITH``);
    elsewhere each runs at once, as outside the block.

    For the last writes of a transaction that holds a contended lock (a randomisation's, under
    its stratum's row lock): one round trip and one statement's overhead instead of one each,
    and the lock is released sooner. In the block, nothing may read what it wrote (PostgreSQL
    runs the writes at its end), and an object's key is known only once the block ends, unless
    it was set beforehand (``sql.next_key``). An exception raised in the block writes nothing
    of it. A block inside another adds its writes to the outer one's.
    """
    if connection.vendor not in _ONE_STATEMENT or _together.get() is not None:
        yield
        return
    token = _together.set([])
    try:
        yield
        writes = _together.get()
    finally:
        _together.reset(token)
    if writes:
        _execute_together(writes)


def _submit(write: _Write) -> None:
    pending = _together.get()
    if pending is not None:
        pending.append(write)
        return
    statement, params = write.statement, write.params
    if write.history is not None:
        copy, copy_params = write.history
        statement = f"WITH written AS ({statement} RETURNING *) {copy}written"
        params = params + copy_params
    with connection.cursor() as cursor:
        cursor.execute(statement + write.returning_sql(), params)
        if write.done is not None:
            write.done(cursor.fetchall())


def _execute_together(writes: list[_Write]) -> None:
    queries, params, wanted = [], [], []
    for i, write in enumerate(writes):
        if write.history is None:
            queries.append(f"w{i} AS ({write.statement}{write.returning_sql()})")
            params += write.params
        else:
            copy, copy_params = write.history
            queries.append(f"w{i}_rows AS ({write.statement} RETURNING *)")
            queries.append(f"w{i} AS ({copy}w{i}_rows{write.returning_sql()})")
            params += write.params + copy_params
        if write.done is not None:
            wanted.append(i)
    # One result for all: each wanted write's rows as JSON objects, tagged with the write.
    results = " UNION ALL ".join(f"SELECT {i}, row_to_json(w{i}) FROM w{i}" for i in wanted)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(queries)} "
                       + (results or "SELECT NULL, NULL"), params)
        rows: dict[int, list[tuple]] = {i: [] for i in wanted}
        for i, found in cursor.fetchall():
            if i is not None:
                fields = writes[i].returning
                rows[i].append(tuple(f.to_python(found[f.column]) for f in fields))
    for i in wanted:
        writes[i].done(rows[i])


# ---------------------------------------------------------------------------------- writes


def _saved(obj: Model) -> None:
    obj._state.adding, obj._state.db = False, connection.alias


def insert(obj: Model) -> Model:
    """Insert ``obj`` (a new row, no history) in one statement; sets its primary key, unless
    it has one already (``sql.next_key``)."""
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key or obj.pk is not None]
    row = _prepared(obj, fields, add=True)
    statement, params = _insert_sql(meta.db_table, [f.column for f in fields],
                                    [{f.column: row[f.attname] for f in fields}])

    def done(rows):
        (obj.pk,), = rows

    _submit(_Write(statement, params, returning=[] if obj.pk is not None else [meta.pk],
                   done=None if obj.pk is not None else done))
    _saved(obj)
    return obj


def create_with_history(objs: list[Model], *, user, reason: str, match: tuple[str, ...]) -> None:
    """Insert new rows of one model and their "created" history rows (one statement on
    PostgreSQL, two elsewhere).

    ``match``: fields that identify a row among ``objs`` (unique together), by which the keys
    the database returns are given back to the objects (the order of RETURNING rows is not
    guaranteed on every database). The history rows are django-simple-history's: same
    columns, ``history_type`` "+", the user and the change reason given.
    """
    if not objs:
        return
    model, meta = type(objs[0]), objs[0]._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    rows = [_prepared(obj, fields, add=True) for obj in objs]
    matched = [meta.get_field(name) for name in match]
    history = {"history_type": "+", "user": user, "reason": reason}

    def done(found):
        keys = {tuple(key[1:]): key[0] for key in found}
        for obj, row in zip(objs, rows):
            obj.pk = keys[tuple(row[f.attname] for f in matched)]

    if connection.vendor in _ONE_STATEMENT:
        # The history rows carry the new rows' keys and ``match`` columns: RETURNING them from
        # the history's INSERT gives what the rows' own RETURNING would.
        statement, params = _populate_sql(model, rows)
        _submit(_Write(statement, params, history=_history_sql(model, **history),
                       returning=[meta.pk, *matched], done=done))
    else:
        statement, params = _insert_sql(
            meta.db_table, [f.column for f in fields],
            [{f.column: row[f.attname] for f in fields} for row in rows])
        _submit(_Write(statement, params, returning=[meta.pk, *matched], done=done))
        _copy_to_history(model, [obj.pk for obj in objs], **history)
    for obj in objs:
        _saved(obj)


def update_with_history(obj: Model, fields: list[str], *, user, reason: str) -> None:
    """Save ``fields`` of ``obj`` and write its "changed" history row (one statement on
    PostgreSQL, two elsewhere)."""
    model, meta = type(obj), obj._meta
    changed = [meta.get_field(name) for name in fields]
    values = _prepared(obj, changed, add=False)
    quote = connection.ops.quote_name
    statement = (f"UPDATE {quote(meta.db_table)} SET "
                 + ", ".join(f"{quote(f.column)} = %s" for f in changed)
                 + f" WHERE {quote(meta.pk.column)} = %s")
    params = [values[f.attname] for f in changed] + [obj.pk]
    history = {"history_type": "~", "user": user, "reason": reason}
    if connection.vendor in _ONE_STATEMENT:
        _submit(_Write(statement, params, history=_history_sql(model, **history)))
    else:
        _submit(_Write(statement, params))
        _copy_to_history(model, [obj.pk], **history)
