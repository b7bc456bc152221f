"""Celery tasks of the SAE clock (the work is in ``safety.reminders``). Beat runs
``check_sae_clock`` every 15 minutes (``CELERY_BEAT_SCHEDULE`` in the settings)."""
from __future__ import annotations

import uuid
from smtplib import SMTPException

from celery import shared_task
from django.utils import timezone

from . import reminders


@shared_task(name="safety.check_sae_clock")
def check_sae_clock() -> dict:
    new, pending = reminders.run(timezone.now(), lambda pk: send_sae_reminder.delay(pk))
    return {"new": new, "pending": pending}


@shared_task(bind=True, name="safety.send_sae_reminder",
             autoretry_for=(SMTPException, OSError), retry_backoff=60, retry_backoff_max=3600,
             retry_jitter=True, max_retries=6)
def send_sae_reminder(self, reminder_id: int) -> int:
    token = self.request.id or f"local-{uuid.uuid4()}"
    return reminders.send(reminder_id, token=token)
