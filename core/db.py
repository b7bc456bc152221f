"""Database helpers no domain owns: the median as an aggregate computed by the database.

PostgreSQL has ``percentile_cont``; SQLite (the embedded demo) has no median, so one is
registered on each of its connections (``CoreConfig.ready``), as Django registers its own
functions there. Either way the rows are aggregated in the database, never in Python.
"""
from __future__ import annotations

import statistics

from django.db.models import Aggregate, DurationField, FloatField


class Median(Aggregate):
    """The median of a numeric or duration expression (``NULL`` rows ignored; ``None`` when
    there is no row). For durations, PostgreSQL interpolates intervals as SQLite does
    microseconds: both give the mean of the two middle values for an even count."""

    function = "PERCENTILE_CONT"
    name = "Median"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    allow_distinct = False

    def _resolve_output_field(self):
        source = self.get_source_fields()[0]
        return DurationField() if isinstance(source, DurationField) else FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        clone = self.copy()
        clone.function, clone.template = "CTMS_MEDIAN", "%(function)s(%(expressions)s)"
        return super(Median, clone).as_sql(compiler, connection, **extra_context)


class _SQLiteMedian:
    """The ``CTMS_MEDIAN`` aggregate of SQLite connections."""

    def __init__(self):
        self.values: list[float] = []

    def step(self, value):
        if value is not None:
            self.values.append(value)

    def finalize(self):
        return statistics.median(self.values) if self.values else None


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """``connection_created`` receiver: the aggregates SQLite lacks."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate("CTMS_MEDIAN", 1, _SQLiteMedian)
