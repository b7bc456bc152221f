"""The data manager's freeze and lock of a casebook, a site or the whole trial: one form for
the three levels (the step, the reason, the password again). The services decide
(``trials.locks``, ``patients.locks``); the state is shown to every member on the trial's and
the participant's pages."""
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core import limits
from core.forms import LimitedText, attach_errors
from patients import locks as casebook_locks
from patients.selectors import get_participant_for
from trials import locks, policy
from trials.models import Site
from trials.selectors import get_trial_for


class DataLockForm(forms.Form):
    step = forms.ChoiceField(label=gettext_lazy("Step"), widget=forms.RadioSelect)
    reason = LimitedText(limit=limits.REASON, label=gettext_lazy("Reason"))
    password = forms.CharField(widget=forms.PasswordInput, strip=False,
                               label=gettext_lazy("Your password, again"),
                               help_text=gettext_lazy("Your e-signature of this step."))

    def __init__(self, *args, steps: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["step"].choices = [(s, locks.STEP_LABELS[s]) for s in steps]
        if len(steps) == 1:
            self.fields["step"].initial = steps[0]


def _page(request, *, trial, row, label: str, take, back: str, back_args: list):
    form = DataLockForm(request.POST or None, steps=locks.steps_for(row))
    if request.method == "POST" and form.is_valid():
        try:
            take(form.cleaned_data["step"], by=request.user, request=request,
                 reason=form.cleaned_data["reason"], password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("%(what)s: %(step)s done.") % {
                "what": label, "step": locks.STEP_LABELS[form.cleaned_data["step"]]})
            return redirect(back, *back_args)
    return render(request, "trials/data_lock.html", {
        "trial": trial, "label": label, "form": form,
        "state": locks.describe(row, label), "back_url": reverse(back, args=back_args),
    }, status=400 if form.errors else 200)


def trial_data_lock(request, slug: str):
    trial = get_trial_for(request.user, slug, policy.Perm.LOCK_DATA)
    if not policy.holds_for_every_site(request.user, trial, policy.Perm.LOCK_DATA):
        raise PermissionDenied  # a data manager of some sites freezes those sites
    return _page(request, trial=trial, row=trial, label=_("The trial"),
                 take=lambda step, **kw: locks.step_trial(trial, step, **kw),
                 back="trial_detail", back_args=[trial.slug])


def site_data_lock(request, slug: str, site_code: str):
    trial = get_trial_for(request.user, slug)
    site = policy.sites_for(request.user, trial).filter(code=site_code).first()
    if site is None:
        raise Http404("No such site in this trial.")
    if not policy.has_perm(request.user, policy.Perm.LOCK_DATA, trial, site):
        raise PermissionDenied
    site.trial = trial
    return _page(request, trial=trial, row=site, label=_("Site %(code)s") % {"code": site.code},
                 take=lambda step, **kw: locks.step_site(site, step, **kw),
                 back="trial_detail", back_args=[trial.slug])


def casebook_data_lock(request, slug: str, study_id: str):
    trial = get_trial_for(request.user, slug)
    participant = get_participant_for(request.user, trial, study_id)
    if not policy.has_perm(request.user, policy.Perm.LOCK_DATA, trial, participant.site):
        raise PermissionDenied
    return _page(request, trial=trial, row=participant,
                 label=_("The casebook of %(id)s") % {"id": participant.study_id},
                 take=lambda step, **kw: casebook_locks.step_casebook(participant, step, **kw),
                 back="participant_detail", back_args=[trial.slug, participant.study_id])
