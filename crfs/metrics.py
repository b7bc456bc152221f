"""Query metrics: how many data queries wait, for how long, and how fast sites answer and the
data manager closes them, per site and per CRF form (issue 20, item 4).

Everything is aggregated by the database: one query per grouping (by site, by form, all
together), each one scan of the queries with a correlated look-up of the first answer, plus
the policy's one for the sites. No query row is read into Python.

Definitions (docs/monitoring.md):
- *open*: open or answered, awaiting review (``UNRESOLVED``), as everywhere else; its age runs
  from ``raised_at`` to now, in bands of under 7 days, 7 to 30 days and over 30 days.
- *time to answer*: from ``raised_at`` to the site's first reply (an answer, or a correction of
  the value), for every query that has one.
- *time to close*: from ``raised_at`` to ``closed_at``, for the queries closed now (a re-opened
  query counts again once closed again).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import (Count, DateTimeField, DurationField, Exists, ExpressionWrapper, F,
                              OuterRef, Q, Subquery)
from django.utils import timezone

from core.db import Median
from trials import policy
from trials.models import Trial, crf_of
from trials.policy import Perm

from .models import UNRESOLVED, DataQuery, MessageKind, QueryMessage, QueryStatus

YOUNG_DAYS, OLD_DAYS = 7, 30  # the age bands' limits: < 7 days, 7-30 days, > 30 days
SITE_REPLIES = [MessageKind.ANSWERED, MessageKind.CORRECTED]


@dataclass(frozen=True)
class QueryFigures:
    """The figures of one site, one form, or all of them (``code`` empty)."""

    code: str
    label: str
    open: int = 0
    young: int = 0         # open for less than 7 days
    middle: int = 0        # open for 7 to 30 days
    old: int = 0           # open for more than 30 days
    answered: int = 0      # queries with a reply of the site
    median_to_answer: dt.timedelta | None = None
    closed: int = 0
    median_to_close: dt.timedelta | None = None
    raised: int = 0

    @property
    def days_to_answer(self) -> float | None:
        return _days(self.median_to_answer)

    @property
    def days_to_close(self) -> float | None:
        return _days(self.median_to_close)


def _days(duration: dt.timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds() / 86400


@dataclass(frozen=True)
class QueryMetrics:
    as_of: dt.datetime
    by_site: list[QueryFigures]
    by_form: list[QueryFigures]
    total: QueryFigures


def _aggregates(now: dt.datetime) -> dict:
    young, old = now - dt.timedelta(days=YOUNG_DAYS), now - dt.timedelta(days=OLD_DAYS)
    unresolved = Q(status__in=UNRESOLVED)
    replies = QueryMessage.objects.filter(query=OuterRef("pk"), kind__in=SITE_REPLIES)
    first_reply = Subquery(replies.order_by("at", "pk").values("at")[:1],
                           output_field=DateTimeField())
    return {
        "raised": Count("pk"),
        "open": Count("pk", filter=unresolved),
        "young": Count("pk", filter=unresolved & Q(raised_at__gt=young)),
        "middle": Count("pk", filter=unresolved & Q(raised_at__lte=young, raised_at__gt=old)),
        "old": Count("pk", filter=unresolved & Q(raised_at__lte=old)),
        "answered": Count("pk", filter=Exists(replies)),
        "median_to_answer": Median(ExpressionWrapper(first_reply - F("raised_at"),
                                                     output_field=DurationField())),
        "closed": Count("pk", filter=Q(status=QueryStatus.CLOSED)),
        "median_to_close": Median(ExpressionWrapper(F("closed_at") - F("raised_at"),
                                                    output_field=DurationField()),
                                  filter=Q(status=QueryStatus.CLOSED)),
    }


def query_metrics(user, trial: Trial, *, perm: Perm = Perm.VIEW_REPORTS,
                  now: dt.datetime | None = None) -> QueryMetrics:
    """The query metrics of ``trial`` over the sites where ``user`` holds ``perm``: four
    queries whatever the number of queries, sites and forms."""
    now = now or timezone.now()
    sites = list(policy.sites_for(user, trial, perm).order_by("code").only("code", "name"))
    queries = DataQuery.objects.filter(record__participant__trial=trial,
                                       record__participant__site__in=[s.pk for s in sites])
    aggregates = _aggregates(now)
    fields = list(aggregates)
    per_site = {row["site"]: row for row in queries.order_by().values(
        site=F("record__participant__site_id")).annotate(**aggregates).values("site", *fields)}
    per_form = queries.order_by().values(crf=F("record__crf_code")).annotate(
        **aggregates).values("crf", *fields).order_by("crf")
    total = queries.aggregate(**aggregates)
    by_site = [QueryFigures(code=s.code, label=s.name or s.code, **_figures(per_site.get(s.pk), fields))
               for s in sites]
    by_form = [QueryFigures(code=row["crf"], label=_form_label(trial, row["crf"]),
                            **_figures(row, fields)) for row in per_form]
    return QueryMetrics(as_of=now, by_site=by_site, by_form=by_form,
                        total=QueryFigures(code="", label="", **_figures(total, fields)))


def _figures(row: dict | None, fields: list[str]) -> dict:
    if row is None:
        return {}
    return {name: row[name] if row[name] is not None or name.startswith("median") else 0
            for name in fields}


def _form_label(trial: Trial, code: str) -> str:
    crf = crf_of(trial.current_version_id, code)
    return (crf or {}).get("label") or code
