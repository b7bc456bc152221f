"""The API's list reads: the selectors' querysets, filtered as a client asks, with what each
serializer reads already joined, so a page of 200 rows costs the same few queries as a page
of 1 (tests/api/test_queries.py counts them).

Every queryset starts from ``trials.policy.site_filter``: a site-scoped user's lists hold their
sites' rows only.
"""
from __future__ import annotations

import datetime as dt

from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from crfs.models import UNRESOLVED, CRFRecord, CRFSignature, DataQuery, QueryMessage
from patients.models import Participant, Visit, VisitState, VisitStatus
from patients.selectors import participants_for
from supply.models import KitList
from trials import policy
from trials.models import Trial


def participants(user, trial: Trial, *, status: str | None = None,
                 site: str | None = None) -> QuerySet[Participant]:
    rows = participants_for(user, trial)
    if status:
        rows = rows.filter(status=status)
    if site:
        rows = rows.filter(site__code=site)
    return rows.order_by("study_id")


def visits(user, trial: Trial, *, site: str | None = None, state: str | None = None,
           due_after: dt.date | None = None, due_before: dt.date | None = None,
           today: dt.date | None = None) -> QuerySet[Visit]:
    """Visits of the sites ``user`` may see; ``state`` as ``Visit.state`` computes it on
    ``today``; ``due_after``/``due_before`` bound the window's closing date (inclusive)."""
    today = today or timezone.localdate()
    rows = (Visit.objects.filter(participant__trial=trial)
            .filter(policy.site_filter(user, trial, field="participant__site"))
            .select_related("participant__site"))
    if site:
        rows = rows.filter(participant__site__code=site)
    if state:
        planned = Q(status=VisitStatus.PLANNED)
        rows = rows.filter({
            VisitState.PLANNED: planned & Q(window_opens__gt=today),
            VisitState.OPEN: planned & Q(window_opens__lte=today, window_closes__gte=today),
            VisitState.OVERDUE: planned & Q(window_closes__lt=today),
        }.get(state, Q(status=state)))
    if due_after:
        rows = rows.filter(window_closes__gte=due_after)
    if due_before:
        rows = rows.filter(window_closes__lte=due_before)
    return rows.order_by("window_closes", "participant__study_id", "code", "occurrence")


def participant_visits(participant: Participant) -> QuerySet[Visit]:
    return (participant.visits.select_related("participant__site")
            .order_by("target_date", "code", "occurrence"))


def crf_records(participant: Participant) -> QuerySet[CRFRecord]:
    """The participant's CRF records, each with its count of unresolved queries and its
    signatures (``signature_list``, oldest first: the serializer says which still hold)."""
    return (CRFRecord.objects.filter(participant=participant)
            .select_related("participant")
            .prefetch_related(Prefetch("signatures", to_attr="signature_list",
                                       queryset=CRFSignature.objects.order_by("signed_at", "pk")))
            .annotate(unresolved=Count("queries", filter=Q(queries__status__in=UNRESOLVED)))
            .order_by("created_at", "pk"))


def _question() -> Subquery:
    return Subquery(QueryMessage.objects.filter(query=OuterRef("pk"), kind="raised")
                    .order_by("at", "pk").values("text")[:1])


def queries(user, trial: Trial, *, status: str | None = None, site: str | None = None,
            study_id: str | None = None) -> QuerySet[DataQuery]:
    """Data queries of the sites ``user`` may see, each with its question."""
    rows = (DataQuery.objects.filter(record__participant__trial=trial)
            .filter(policy.site_filter(user, trial, field="record__participant__site"))
            .select_related("record__participant__site")
            .annotate(question=_question()))
    if status:
        rows = rows.filter(status=status)
    if site:
        rows = rows.filter(record__participant__site__code=site)
    if study_id:
        rows = rows.filter(record__participant__study_id=study_id)
    return rows.order_by("raised_at", "pk")


def query_with_thread(user, trial: Trial, query_id: int) -> DataQuery | None:
    return (queries(user, trial)
            .prefetch_related(Prefetch("messages", queryset=QueryMessage.objects
                                       .select_related("author").order_by("at", "pk"),
                                       to_attr="thread"))
            .filter(pk=query_id).first())


def kit_lists(trial: Trial) -> QuerySet[KitList]:
    """The trial's kit lists, newest first, each with its number of kits (the statistician's:
    the caller checks)."""
    return (KitList.objects.filter(trial=trial).select_related("created_by", "sealed_by")
            .annotate(kit_count=Count("kits")).order_by("-number"))
