"""Celery tasks of reports. Thin: the work, the claim and the recovery are in
``reports.services``.

``build_report`` is acknowledged late and rejected (so redelivered) when its worker is lost:
a worker killed mid-build loses nothing, the next delivery builds it again. The periodic
``redispatch_reports`` (beat, every minute) hands over what the broker never got.
"""
from __future__ import annotations

import uuid

from celery import shared_task

from . import services as reports


@shared_task(bind=True, name="outcomes.build_report", acks_late=True,
             reject_on_worker_lost=True)
def build_report(self, request_id: int) -> str:
    token = self.request.id or f"local-{uuid.uuid4()}"
    return reports.build(request_id, token=token)


@shared_task(name="outcomes.redispatch_reports")
def redispatch_reports() -> int:
    return reports.redispatch_unfinished()
