"""Reads of the visit schedule for the pages: a participant's timeline."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Prefetch
from django.utils import timezone

from crfs.facts import randomisation_date, read_facts
from patients.models import Deviation, Participant, Visit

from .services import pending_anchors


@dataclass(frozen=True)
class Timeline:
    participant: Participant
    today: dt.date
    randomised_on: dt.date | None
    visits: list[Visit]                  # each with ``deviation_list`` (open ones) prefetched
    deviations: list[Deviation]          # open deviations, newest last
    waiting: list[dict]                  # anchors whose date is not known yet, with their visits


def timeline(participant: Participant, *, today: dt.date | None = None) -> Timeline:
    """Every visit of one participant, with its deviations, and what waits for an anchor date.

    The arm is read only to know which templates apply; it is never part of the result, so a
    blinded user's page cannot show it (and blinded protocols have no arm-specific visits).
    """
    today = today or timezone.localdate()
    open_deviations = Deviation.objects.filter(voided_at__isnull=True)
    visits = list(participant.visits.order_by("target_date", "code", "occurrence")
                  .prefetch_related(Prefetch("deviations", queryset=open_deviations,
                                             to_attr="deviation_list")))
    deviations = [d for v in visits for d in v.deviation_list]
    deviations.sort(key=lambda d: d.detected_at)
    try:  # the allocation, through the relation ``randomisation`` declares (the layer above)
        allocation = (Participant.objects.select_related("allocation__arm")
                      .get(pk=participant.pk).allocation)
    except ObjectDoesNotExist:
        allocation = None
    waiting, randomised_on = [], None
    if allocation is not None:
        facts = read_facts(participant, allocation)
        randomised_on = randomisation_date(allocation)
        waiting = pending_anchors(participant, allocation.arm.code, facts)
    return Timeline(participant, today, randomised_on, visits, deviations, waiting)
