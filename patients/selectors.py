"""Reads of participants, already restricted to what the asking user may see."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from trials import policy
from trials.models import Trial

from .models import Participant


def participants_for(user, trial: Trial) -> QuerySet[Participant]:
    return (
        Participant.objects.filter(trial=trial)
        .filter(policy.site_filter(user, trial))
        .select_related("site")
    )


def get_participant_for(user, trial: Trial, study_id: str) -> Participant:
    """The participant, or 404 when it does not exist *or* is at a site the user cannot see."""
    try:
        return participants_for(user, trial).get(study_id=study_id)
    except Participant.DoesNotExist:
        raise Http404("No such participant in this trial.")
