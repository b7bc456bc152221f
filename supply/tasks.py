"""Celery tasks of the supply (the work is in ``supply.resupply``). Beat runs ``check_stock``
daily; every dispensing, receipt and quarantine queues ``check_site_stock`` for its site."""
from __future__ import annotations

import uuid
from smtplib import SMTPException

from celery import shared_task

from trials.models import Site

from . import resupply


@shared_task(name="supply.check_site_stock")
def check_site_stock(site_id: int) -> bool:
    site = Site.objects.select_related("trial").get(pk=site_id)
    return resupply.raise_request(site) is not None


@shared_task(name="supply.check_stock")
def check_stock() -> dict:
    raised = resupply.check_all()
    for request_id in resupply.unsent():  # a mail that failed earlier is sent now
        send_resupply_request.delay(request_id)
    return {"raised": raised}


@shared_task(bind=True, name="supply.send_resupply_request",
             autoretry_for=(SMTPException, OSError), retry_backoff=60, retry_backoff_max=3600,
             retry_jitter=True, max_retries=6)
def send_resupply_request(self, request_id: int) -> bool:
    token = self.request.id or f"local-{uuid.uuid4()}"
    return resupply.send(request_id, token=token)
