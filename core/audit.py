"""Writing to the governance audit log. Every caller goes through ``record``."""
from __future__ import annotations

import logging
from typing import Any

from django.db import models

from .models import AuditEvent

logger = logging.getLogger("ctms.audit")


def record(
    action: str,
    message: str,
    *,
    actor=None,
    trial: models.Model | None = None,
    obj: models.Model | None = None,
    detail: dict[str, Any] | None = None,
    participant: models.Model | None = None,
    site: models.Model | None = None,
) -> AuditEvent:
    """Append one event. ``message`` must be safe for every role that may read the log:
    never put an arm of a blinded trial in it (``detail`` is shown only to unblinded roles).

    ``participant`` (the one concerned, if any) stamps the entry with its study ID and site,
    ``site`` a site-level event (a screening log entry): the audit log page scopes and filters
    by them. An entry with neither is trial-wide."""
    if obj is not None and obj.pk is None:
        # An entry naming an unsaved object would name nothing (``object_id`` "None").
        raise ValueError(f"audit.record: the {obj._meta.label} has no key yet")
    event = AuditEvent.objects.create(
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        trial=trial,
        site_id=participant.site_id if participant is not None else getattr(site, "pk", None),
        study_id=participant.study_id if participant is not None else "",
        object_type=obj._meta.label if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        message=message,
        detail=detail or {},
    )
    logger.info("audit %s: %s", action, message)
    return event
