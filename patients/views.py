from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from randomization.selectors import allocation_of, allocation_view
from trials import policy
from trials.policy import Perm
from trials.selectors import get_trial_for

from . import eligibility, selectors, services
from .forms import ConsentForm, ScreeningForm


def participant_list(request, slug: str):
    trial = get_trial_for(request.user, slug)
    participants = selectors.participants_for(request.user, trial)
    return render(request, "patients/participant_list.html", {
        "trial": trial, "participants": participants,
        "can_screen": policy.sites_for(request.user, trial, Perm.SCREEN).exists()})


def participant_detail(request, slug: str, study_id: str):
    trial = get_trial_for(request.user, slug)
    participant = selectors.get_participant_for(request.user, trial, study_id)
    user, site = request.user, participant.site
    allocation = allocation_of(participant)
    return render(request, "patients/participant_detail.html", {
        "trial": trial, "participant": participant,
        "eligibility": eligibility.evaluate(participant),
        "allocation": allocation_view(user, allocation) if allocation else None,
        "can_screen": policy.has_perm(user, Perm.SCREEN, trial, site),
        "can_enter": policy.has_perm(user, Perm.ENTER_CRF, trial, site),
        "can_randomise": policy.has_perm(user, Perm.RANDOMISE, trial, site),
        "consent_form": ConsentForm(initial={
            "consent_date": participant.consent_date,
            "consent_version": participant.consent_version}),
    })


def screen_participant(request, slug: str):
    trial = get_trial_for(request.user, slug)
    sites = policy.sites_for(request.user, trial, Perm.SCREEN).filter(active=True)
    if not sites.exists():
        raise Http404("You cannot screen participants in this trial.")
    form = ScreeningForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        participant = services.register_participant(
            trial, form.cleaned_data["site"], by=request.user,
            screened_on=form.cleaned_data["screened_on"])
        messages.success(request, _("Participant %(id)s registered.") % {"id": participant.study_id})
        return redirect("participant_detail", slug, participant.study_id)
    return render(request, "patients/screen.html", {"trial": trial, "form": form},
                  status=400 if form.errors else 200)


def record_consent(request, slug: str, study_id: str):
    trial = get_trial_for(request.user, slug)
    participant = selectors.get_participant_for(request.user, trial, study_id)
    if not policy.has_perm(request.user, Perm.SCREEN, trial, participant.site):
        raise PermissionDenied
    form = ConsentForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.record_consent(participant, by=request.user, **{
                "consent_date": form.cleaned_data["consent_date"],
                "version": form.cleaned_data["consent_version"]})
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Consent recorded."))
            return redirect("participant_detail", slug, study_id)
    return render(request, "patients/consent.html",
                  {"trial": trial, "participant": participant, "form": form},
                  status=400 if form.errors else 200)
