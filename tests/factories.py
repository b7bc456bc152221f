"""Factories for the tests' data. Each builds the smallest valid object of its kind."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone

from patients.services import register_participant
from trials.demo import eligibility_answers  # noqa: F401  (tests use it from here)
from trials.models import Site, Trial


def participant(trial: Trial, site: Site | None = None, *, by, screened_on: dt.date | None = None):
    site = site or trial.sites.order_by("code").first()
    return register_participant(trial, site, by=by,
                                screened_on=screened_on or timezone.localdate())


def eligible_participant(trial: Trial, site: Site | None = None, *, by, consent=True,
                         complete=True, **answers):
    """A participant registered, consented and with a completed eligibility CRF."""
    from outcomes.services import save_crf
    from patients.services import record_consent

    p = participant(trial, site, by=by)
    if consent:
        p = record_consent(p, consent_date=timezone.localdate(), version="1.0", by=by)
    save_crf(p, "eligibility", eligibility_answers(trial, **answers), by=by, complete=complete)
    return p


def sealed_list(trial: Trial, *, by, seed: str = "test-seed", slots_per_stratum: int | None = None):
    from randomization.services import generate_list, seal_and_activate

    return seal_and_activate(generate_list(trial, by=by, seed=seed,
                                           slots_per_stratum=slots_per_stratum), by=by)
