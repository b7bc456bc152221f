"""Factories for the tests' data. Each builds the smallest valid object of its kind."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone

from patients.services import register_participant
from trials.models import Site, Trial


def participant(trial: Trial, site: Site | None = None, *, by, screened_on: dt.date | None = None):
    site = site or trial.sites.order_by("code").first()
    return register_participant(trial, site, by=by,
                                screened_on=screened_on or timezone.localdate())
