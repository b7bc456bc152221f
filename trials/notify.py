"""E-mail notifications. Mail leaves only after the transaction that caused it commits, from a
Celery task, so a rolled-back change never sends mail and a slow SMTP server never holds a lock.

Callers write subjects and bodies that are safe for every recipient: never an arm of a blinded
trial (recipients include blinded roles).
"""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from .models import Membership, Role, Trial


def members_with_role(trial: Trial, *roles: str) -> list[str]:
    return sorted(set(
        Membership.objects.filter(trial=trial, role__in=roles, active=True, user__is_active=True)
        .exclude(user__email="").values_list("user__email", flat=True)
    ))


def notify(recipients: list[str], subject: str, body: str) -> None:
    if recipients:
        transaction.on_commit(lambda: send_notification.delay(recipients, subject, body))


def notify_roles(trial: Trial, roles: list[str], subject: str, body: str) -> None:
    notify(members_with_role(trial, *roles), f"[{trial.short_title}] {subject}", body)


def notify_statisticians(trial: Trial, subject: str, body: str) -> None:
    notify_roles(trial, [Role.STATISTICIAN], subject, body)


@shared_task(bind=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=8)
def send_notification(self, recipients: list[str], subject: str, body: str) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
