"""E-mail notifications. Mail leaves only after the transaction that caused it commits, from a
Celery task, so a rolled-back change never sends mail and a slow SMTP server never holds a lock.

Callers choose the recipients (by role, through ``trials.policy``) and write subjects and bodies
that are safe for every recipient: never an arm of a blinded trial.

Redis being down must break no page: ``enqueue`` catches the broker error, logs it, and sends
the mail from the web process instead (after the commit, so still never under a lock).
"""
from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger("ctms.notify")


def notify(recipients: list[str], subject: str, body: str) -> None:
    if recipients:
        transaction.on_commit(lambda: enqueue(send_notification, recipients, subject, body))


def enqueue(task, *args) -> bool:
    """Hand ``task`` to the broker; True if it was queued.

    When the broker cannot be reached the request that caused it must still succeed: the error
    is logged and the task runs here and now instead (its own failure is logged too, never
    raised to the page).
    """
    try:
        task.delay(*args)
        return True
    except BrokerError as exc:  # kombu's error when Redis cannot be reached
        logger.warning("broker unreachable (%s): running %s in this process", exc, task.name)
    except Exception:  # run eagerly (no broker configured) and failed: log, never a 500
        logger.exception("%s failed", task.name)
        return False
    try:
        task.apply(args=args, throw=True)
    except Exception:
        logger.exception("%s failed in-process after the broker was unreachable", task.name)
    return False


# Named as before the module moved to ``core``: mail already queued under that name is sent.
@shared_task(name="trials.notify.send_notification", bind=True, autoretry_for=(OSError,),
             retry_backoff=30, max_retries=8)
def send_notification(self, recipients: list[str], subject: str, body: str) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
