from django.shortcuts import render

from trials.selectors import get_trial_for

from . import selectors


def participant_list(request, slug: str):
    trial = get_trial_for(request.user, slug)
    participants = selectors.participants_for(request.user, trial)
    return render(request, "patients/participant_list.html",
                  {"trial": trial, "participants": participants})


def participant_detail(request, slug: str, study_id: str):
    trial = get_trial_for(request.user, slug)
    participant = selectors.get_participant_for(request.user, trial, study_id)
    return render(request, "patients/participant_detail.html",
                  {"trial": trial, "participant": participant})
