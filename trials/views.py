from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _, gettext_lazy

from core import limits
from core.forms import LimitedText, attach_errors

from . import policy, selectors, services


class UnblindTrialForm(forms.Form):
    reason = LimitedText(limit=limits.REASON, label=gettext_lazy("Reason"),
                         help_text=gettext_lazy("E.g. the last participant's follow-up is "
                                                    "complete and the database is locked."))
    password = forms.CharField(widget=forms.PasswordInput, strip=False,
                               label=gettext_lazy("Your password, again"))


def unblind_trial(request, slug: str):
    """Break the blind at the end of the trial (statistician): arms shown to every member."""
    trial = selectors.get_trial_for(request.user, slug, policy.Perm.MANAGE_ALLOCATION)
    form = UnblindTrialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.unblind_trial(trial, by=request.user, request=request,
                                   reason=form.cleaned_data["reason"],
                                   password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.warning(request, _("The trial is unblinded: every member now sees the arms."))
            return redirect("trial_detail", trial.slug)
    return render(request, "trials/unblind_trial.html", {"trial": trial, "form": form},
                  status=400 if form.errors else 200)
