"""Two-factor pages: set up, the login's second step, manage; the audited password change; the
language kept on the user's profile."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_http_methods

from core import audit
from trials.policy import requires_two_factor

from . import services
from .forms import CodeForm, PasswordConfirmForm
from .models import Profile


def _next(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                       require_https=request.is_secure()):
        return target
    return "/"


@require_http_methods(["GET", "POST"])
def setup(request):
    """Scan the QR code (or type the secret) into an authenticator app, confirm with a code."""
    if services.has_device(request.user):
        return redirect("two_factor_manage")
    device = services.pending_device(request.user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = services.confirm_device(request, device, form.cleaned_data["code"])
        if codes is not None:
            return render(request, "accounts/backup_codes.html",
                          {"codes": codes, "next": _next(request)})
        form.add_error("code", _("This code is not the one your app shows now. Check the "
                                 "phone's clock and type the current code."))
    return render(request, "accounts/setup.html", {
        "form": form, "qr_svg": services.qr_svg(device), "secret": services.secret_base32(device),
        "required": requires_two_factor(request.user), "next": _next(request)})


@require_http_methods(["GET", "POST"])
def verify(request):
    """The login's second step: a code from the authenticator app, or a backup code."""
    if request.user.is_verified():
        return redirect(_next(request))
    if not services.has_device(request.user):
        return redirect("two_factor_setup")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if services.verify(request, form.cleaned_data["code"]):
            request.session.cycle_key()
            return redirect(_next(request))
        form.add_error("code", _("Wrong or expired code. Type the code your app shows now, or "
                                 "one of your backup codes (after a wrong code, wait a few "
                                 "seconds: each one doubles the wait)."))
    return render(request, "accounts/verify.html", {"form": form, "next": _next(request)})


@require_http_methods(["GET", "POST"])
def manage(request):
    """Status, new backup codes, remove (or reset) the second factor: each needs the password."""
    user = request.user
    form = PasswordConfirmForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        action = request.POST.get("action")
        if action == "backup_codes" and services.has_device(user):
            return render(request, "accounts/backup_codes.html",
                          {"codes": services.new_backup_codes(user), "next": "/"})
        if action == "remove":
            services.remove_two_factor(user, by=user)
            if requires_two_factor(user):
                messages.info(request, _("Set up your authenticator again."))
                return redirect("two_factor_setup")
            messages.success(request, _("Two-factor authentication is off."))
            return redirect("two_factor_manage")
    return render(request, "accounts/manage.html", {
        "form": form, "enabled": services.has_device(user),
        "required": requires_two_factor(user),
        "backup_codes_left": services.remaining_backup_codes(user)})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, audited."""

    def form_valid(self, form):
        response = super().form_valid(form)
        audit.record("auth.password_changed",
                     f"{self.request.user.get_username()} changed their password",
                     actor=self.request.user)
        return response


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
