"""Celery tasks of the visit reminders: the daily job and its per-person digests.

Thin on purpose: the work is in ``patients.reminders``, which the management command
``send_visit_reminders`` also calls. Beat runs ``send_visit_reminders`` daily at 07:00 in
``CELERY_TIMEZONE`` (Europe/Paris), see ``CELERY_BEAT_SCHEDULE`` in the settings.
"""
from __future__ import annotations

import datetime as dt
import uuid
from smtplib import SMTPException

from celery import shared_task
from django.utils import timezone

from . import reminders


@shared_task(name="patients.send_visit_reminders")
def send_visit_reminders(today: str | None = None) -> dict:
    """Find today's reminders (set-wise) and enqueue one digest task per recipient."""
    day = dt.date.fromisoformat(today) if today else timezone.localdate()
    result = reminders.run(day, lambda user_id: send_reminder_digest.delay(user_id,
                                                                           day.isoformat()))
    return {"reminders": result.reminders, "deliveries": result.deliveries,
            "recipients": result.recipients}


@shared_task(bind=True, name="patients.send_reminder_digest",
             autoretry_for=(SMTPException, OSError), retry_backoff=60, retry_backoff_max=3600,
             retry_jitter=True, max_retries=6)
def send_reminder_digest(self, user_id: int, day: str) -> int:
    """One person's digest. A failed send raises, leaves the rows unsent (and unclaimed), and
    is retried with exponential back-off (about 1, 2, 4… minutes, at most an hour, six times);
    after that the next daily run picks the rows up. The task id is the claim token."""
    token = self.request.id or f"local-{uuid.uuid4()}"
    return reminders.send_digest(user_id, today=dt.date.fromisoformat(day), token=token)
