"""Factories for the tests' data. Each builds the smallest valid object of its kind."""
from __future__ import annotations

import datetime as dt

from django.utils import timezone

from patients.services import register_participant
from demo.data import eligibility_answers  # noqa: F401  (tests use it from here)
from trials.models import Site, Trial


def participant(trial: Trial, site: Site | None = None, *, by, screened_on: dt.date | None = None):
    site = site or trial.sites.order_by("code").first()
    return register_participant(trial, site, by=by,
                                screened_on=screened_on or timezone.localdate())


INVESTIGATOR_PASSWORD = "investigator-password-2026"


def site_investigator(trial: Trial, site: Site):
    """An investigator of ``site`` (one per trial and site, made once), who confirms
    eligibility in the factories; password ``INVESTIGATOR_PASSWORD``."""
    from django.contrib.auth import get_user_model

    from trials.models import Membership

    User = get_user_model()
    username = f"site-investigator-{trial.slug}-{site.code}".lower()
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username=username, password=INVESTIGATOR_PASSWORD,
                                        first_name="Site", last_name=f"Investigator {site.code}")
        Membership.objects.create(user=user, trial=trial, site=site, role="investigator")
    return user


def confirm_eligibility(p, *, by=None):
    """The investigator's confirmation of ``p``'s eligibility, through the service (an
    investigator of ``p``'s site unless ``by`` is given, with the factories' password)."""
    from crfs.services import confirm_eligibility as confirm

    by = by or site_investigator(p.trial, p.site)
    return confirm(p, by=by, password=INVESTIGATOR_PASSWORD)


def eligible_participant(trial: Trial, site: Site | None = None, *, by, consent=True,
                         complete=True, confirmed=True, **answers):
    """A participant registered, consented and with a completed eligibility CRF, confirmed by
    an investigator of the site (``confirmed``) when complete, eligible and the protocol asks
    for it."""
    from crfs import eligibility
    from scheduling.services import save_crf_and_replan as save_crf
    from patients.services import record_consent

    p = participant(trial, site, by=by)
    if consent:
        p = record_consent(p, consent_date=timezone.localdate(), version="1.0", by=by)
    save_crf(p, "eligibility", eligibility_answers(trial, **answers), by=by, complete=complete)
    if (confirmed and eligibility.confirmation_required(p)
            and eligibility.evaluate(p).eligible):
        confirm_eligibility(p)
    return p


def sealed_list(trial: Trial, *, by, seed: str = "test-seed", slots_per_stratum: int | None = None):
    from randomisation.services import generate_list, seal_and_activate

    return seal_and_activate(generate_list(trial, by=by, seed=seed,
                                           slots_per_stratum=slots_per_stratum), by=by)


def scripted_list(trial: Trial, *, by, arms: list[str], slots_per_stratum: int = 20):
    """A sealed list whose every stratum allocates ``arms`` in turn (A, B, A, B…), so a test
    knows which arm its participant gets. Kit codes, when the trial is blinded, are distinct."""
    import itertools

    from randomisation import generator
    from randomisation.services import import_list, seal_and_activate, stratification

    keys = generator.strata_keys(stratification(trial))
    blinded = trial.masking != "open"
    length = trial.definition["randomisation"].get("kit_code_length", 6)
    codes = ("".join(c) for c in itertools.product(generator.KIT_ALPHABET, repeat=length))
    rows = ["stratum,sequence,arm,kit_code"]
    for key in keys:
        for n in range(1, slots_per_stratum + 1):
            rows.append(f"{key},{n},{arms[(n - 1) % len(arms)]},{next(codes) if blinded else ''}")
    return seal_and_activate(import_list(trial, "\n".join(rows), by=by), by=by)


def randomised(trial: Trial, site: Site | None = None, *, by, days_ago: int = 0, **answers):
    """A participant screened, consented, eligible and randomised ``days_ago`` days ago (the
    schedule computed from that day). Needs an active list."""
    from scheduling.services import save_crf_and_replan as save_crf
    from patients.models import Participant
    from patients.services import record_consent
    from randomisation.services import randomise
    from demo.data import backdate_randomisation

    p = participant(trial, site, by=by,
                    screened_on=timezone.localdate() - dt.timedelta(days=days_ago + 7))
    p = record_consent(p, consent_date=p.screened_on, version="1.0", by=by)
    save_crf(p, "eligibility", eligibility_answers(trial, **answers), by=by, complete=True)
    confirm_eligibility(p)
    randomise(p, by=by)
    if days_ago:
        backdate_randomisation(p, days_ago, by=by)
    return Participant.objects.get(pk=p.pk)


# Two-factor authentication (accounts): devices and verified sessions for the test client.
def needs_second_factor(user) -> bool:
    from accounts.services import has_device
    from trials.policy import requires_two_factor

    return requires_two_factor(user) or has_device(user)


def totp_device(user):
    """The user's confirmed authenticator device (made once)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test", confirmed=True)


def totp_code(device) -> str:
    """The code an authenticator app would show now for ``device``."""
    from accounts.services import current_code

    return current_code(device)


def verify_session(client, device) -> None:
    """Mark the test client's session OTP-verified with ``device``, through django_otp.login."""
    from django.http import HttpRequest
    from django_otp import login as otp_login

    request = HttpRequest()
    request.session = client.session
    request.user = device.user
    otp_login(request, device)
    request.session.save()
