"""Celery task of the visit schedule: the daily extension to the planning horizon."""
from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from . import services


# Named as before it moved from ``patients``: the beat schedule and queued messages use it.
@shared_task(name="patients.extend_schedules")
def extend_schedules(today: str | None = None) -> int:
    """Create the visits that came within the planning horizon (``scheduling.services``)."""
    day = dt.date.fromisoformat(today) if today else timezone.localdate()
    return services.extend_schedules(day)
