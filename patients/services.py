"""State changes of participants. Views, API, commands and tasks all call these."""
from __future__ import annotations

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from trials.models import Site, Trial

from .models import Participant


@transaction.atomic
def register_participant(
    trial: Trial, site: Site, *, by, screened_on: dt.date | None = None
) -> Participant:
    """Register a new participant at screening and give them the site's next study ID."""
    if site.trial_id != trial.pk:
        raise ValidationError({"site": _("This site does not belong to the trial.")})
    if not site.active:
        raise ValidationError({"site": _("Site %(code)s no longer recruits.") % {
            "code": site.code}})
    screened_on = screened_on or timezone.localdate()
    if screened_on > timezone.localdate():
        raise ValidationError({"screened_on": _("The screening date cannot be in the future.")})
    # Lock the site row so that two coordinators of one site never draw the same number.
    Site.objects.select_for_update().get(pk=site.pk)
    number = Participant.objects.filter(site=site).count() + 1
    return Participant.objects.create(
        trial=trial,
        site=site,
        study_id=f"{site.code}-{number:04d}",
        protocol_version_id=trial.current_version_id,
        screened_on=screened_on,
        created_by=by,
    )


@transaction.atomic
def record_consent(participant: Participant, *, consent_date: dt.date, version: str, by
                   ) -> Participant:
    """Record the signed informed consent. Dates before screening or in the future are refused."""
    errors = {}
    if consent_date > timezone.localdate():
        errors["consent_date"] = _("The consent date cannot be in the future.")
    elif consent_date < participant.screened_on - dt.timedelta(days=60):
        errors["consent_date"] = _("The consent date is more than 60 days before screening "
                                   "(%(screened_on)s); check it.") % {
            "screened_on": f"{participant.screened_on:%Y-%m-%d}"}
    if not version.strip():
        errors["consent_version"] = _("Give the version of the consent form signed.")
    if participant.is_randomised:
        errors["consent_date"] = _("The participant is already randomised; consent cannot change.")
    if errors:
        raise ValidationError(errors)
    participant = Participant.objects.select_for_update().get(pk=participant.pk)
    participant.consent_date = consent_date
    participant.consent_version = version.strip()
    participant._change_reason = "consent recorded"  # stored in the history: English
    participant.save(update_fields=["consent_date", "consent_version"])
    return participant
