from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _, gettext_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from . import policy, selectors, services
from .forms import attach_errors
from .models import Profile


def home(request):
    return render(request, "trials/home.html", {"cards": selectors.trial_cards(request.user)})


def trial_detail(request, slug: str):
    trial = selectors.get_trial_for(request.user, slug)
    overview = selectors.trial_overview(request.user, trial)
    return render(request, "trials/trial_detail.html", {
        "trial": trial, "overview": overview,
        "version": trial.versions.only("label", "number").get(pk=trial.current_version_id),
        "can_manage_allocation": policy.has_perm(request.user, policy.Perm.MANAGE_ALLOCATION, trial),
        "can_view_reports": policy.has_perm(request.user, policy.Perm.VIEW_REPORTS, trial),
        "can_export": policy.has_perm(request.user, policy.Perm.EXPORT_DATA, trial),
    })


class UnblindTrialForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label=gettext_lazy("Reason"),
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


@login_not_required
def health(request):
    """For load balancers and compose health checks: 200 when the database answers, else 503."""
    try:
        # Raw SQL: a probe of the server, not of any table; the ORM has no query without a model.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"database": "unreachable"}, status=503)
    return JsonResponse({"database": "ok"})


@require_POST
def set_profile_language(request):
    """Keep the interface language on the user's profile (not only in a cookie)."""
    language = request.POST.get("language", "")
    if language not in dict(settings.LANGUAGES):
        return HttpResponseBadRequest(
            _("Unknown language %(language)s; choose one of %(choices)s.") % {
                "language": repr(language), "choices": ", ".join(dict(settings.LANGUAGES))},
            content_type="text/plain; charset=utf-8")
    Profile.objects.update_or_create(user=request.user, defaults={"language": language})
    translation.activate(language)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = reverse("home")
    response = redirect(target)
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax",
                        secure=request.is_secure())
    return response
