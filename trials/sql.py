"""Reads in plain SQL, for the few queries on the randomisation's path.

Django's ORM builds every query anew: about 0.5–1 ms of Python a query on this project's
2-core machine, against 0.1–0.2 ms to run the same SQL through the cursor (README,
"Benchmarks"). A randomisation's request runs a dozen statements, so the reads it makes on
every call (the trial and memberships in ``policy.visible_trial``, the participant in
``patients.selectors.get_participant_for``, both at once in
``trials.selectors.get_trial_and_participant_for``, the participant's lock and CRFs in
``scheduling.services.locked_fact_records``, the slot in ``randomization.services``), and the
signed-in user with their profile that every request reads (``accounts.backends``), are SQL
written with these helpers, which keep what the ORM gives: the columns are the model's own
fields, each value goes through the converters the ORM applies (dates and booleans on SQLite,
JSON on every database), and rows become model instances by ``Model.from_db``, as the ORM
builds them. Everything else reads through the ORM. ``next_key`` and ``reserve_key`` give a
row's primary key before it is inserted, for writes that ``history.one_statement`` runs later.
"""
from __future__ import annotations

import functools
from typing import Any, Sequence

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model


def columns(fields: Sequence[Field], alias: str) -> str:
    """``alias."column", …`` for ``fields``, to put after SELECT."""
    return _columns(tuple(fields), alias, connection.vendor)


@functools.cache
def _columns(fields: tuple[Field, ...], alias: str, vendor: str) -> str:
    # The same text on every request: built once (quoting each name goes through the
    # ``connection`` proxy, a few microseconds each, dozens a request).
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(f.column)}" for f in fields)


def fields_of(model: type[Model]) -> list[Field]:
    """The columns ``instance`` needs, in its order."""
    return list(model._meta.concrete_fields)


@functools.cache
def _converters(field: Field, vendor: str) -> tuple[Any, list]:
    # What the ORM's compiler applies to a column of ``field`` (``get_converters``); the same
    # for every query on one database.
    col = field.get_col(field.model._meta.db_table)
    return col, connection.ops.get_db_converters(col) + field.get_db_converters(connection)


def converted(fields: Sequence[Field], values: Sequence[Any]) -> list[Any]:
    """``values`` as read from the cursor, made what the ORM would return for ``fields``."""
    # The request's connection, resolved once: each attribute read through the
    # ``django.db.connection`` proxy looks it up again (1.5 µs here, per value).
    db = connections[DEFAULT_DB_ALIAS]
    out = []
    for field, value in zip(fields, values):
        col, converters = _converters(field, db.vendor)
        for convert in converters:
            value = convert(value, col, db)
        out.append(value)
    return out


def select(model: type[Model], alias: str) -> str:
    """The columns of ``model`` that ``instance`` needs, for a SELECT from its table ``alias``."""
    return columns(fields_of(model), alias)


def instance(model: type[Model], values: Sequence[Any]) -> Model:
    """A ``model`` instance from the values of ``select(model, …)``, as the ORM builds it (the
    instance is "from the database": saving it updates the row)."""
    fields = fields_of(model)
    return model.from_db(connection.alias, [f.attname for f in fields],
                         converted(fields, values))


def width(*models: type[Model]) -> int:
    """How many columns ``select`` gives for ``models`` together: where in a joined row the
    columns selected after theirs start."""
    return sum(len(fields_of(model)) for model in models)


def instances(row: Sequence[Any], *models: type[Model]) -> list[Model | None]:
    """One instance of each of ``models`` from a row of ``select(model, …)`` for each in turn;
    None for a model whose primary key is NULL (nothing found by a LEFT JOIN)."""
    out, start = [], 0
    for model in models:
        end = start + width(model)
        out.append(instance(model, row[start:end]) if row[start] is not None else None)
        start = end
    return out


def fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def for_update(of: str) -> str:
    """`` FOR UPDATE OF <of>`` (a table's alias: only its rows are locked) where the database
    locks rows (PostgreSQL); SQLite, which has no row locks, serialises whole write
    transactions instead, as the ORM's ``select_for_update``."""
    return f" FOR UPDATE OF {of}" if connection.features.has_select_for_update else ""


def table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def next_key(model: type[Model]) -> str:
    """An SQL expression giving a new primary key for ``model``'s table, taken from its
    sequence before the row is inserted, on PostgreSQL (so that a write of
    ``history.one_statement`` can name the row before the block ends); ``NULL`` on SQLite,
    where the INSERT gives the key."""
    if connection.vendor != "postgresql":
        return "NULL"
    meta = model._meta
    return (f"nextval(pg_get_serial_sequence('{table(model)}', "
            f"'{meta.pk.column}'))")


def reserve_key(model: type[Model]) -> int | None:
    """A new primary key for ``model``'s table (``next_key``) on PostgreSQL; None on SQLite,
    where the INSERT, which runs at once there, gives it."""
    if connection.vendor != "postgresql":
        return None
    return fetch(f"SELECT {next_key(model)}", [])[0][0]
