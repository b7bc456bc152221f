"""Request guards of the accounts app: two-factor enforcement, response headers, the 503 answer
when the database cannot be reached, and the interface in the language of the user's profile."""
from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils import translation
from django.utils.translation import gettext as _

from core import outcome
from trials.policy import requires_two_factor

from . import services

logger = logging.getLogger("ctms.faults")

# Paths a signed-in user may reach before the second factor: setting it up and typing it (not
# managing it: removing a device takes a verified session), logging out, static files, the
# health check and the language switch.
TWO_FACTOR_OPEN = ("/accounts/two-factor/setup/", "/accounts/two-factor/verify/",
                   "/accounts/logout/", "/static/", "/health/",
                   "/i18n/")


RECHECK_SECONDS = 60
PENDING_KEY = "_two_factor_pending"  # [user id, when checked, step or ""]
TOUCHED_KEY = "_touched"             # when the session's expiry was last pushed back


class TwoFactorMiddleware:
    """After the password step: a user with a device must type a code (the session becomes
    OTP-verified); a user who must use two factors and has no device is sent to set one up.
    Until then every other page redirects there (and an /api/ call with the session gets 403).

    API calls authenticated by token are not concerned: the token was created in a verified
    session, and DRF authenticates it after this middleware (``request.user`` is anonymous here).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not request.path.startswith(TWO_FACTOR_OPEN):
            target = self.pending_step(request)
            if target is not None:
                if request.path.startswith("/api/"):
                    return JsonResponse({"detail": _("Two-factor verification required.")},
                                        status=403)
                next_url = request.get_full_path()
                if not url_has_allowed_host_and_scheme(next_url, allowed_hosts=None):
                    next_url = "/"
                return HttpResponseRedirect(f"{reverse(target)}?{urlencode({'next': next_url})}")
        return self.get_response(request)

    @staticmethod
    def pending_step(request) -> str | None:
        """The step an unverified session still owes, if any. A verified session costs no
        query; for the others the answer (devices, roles requiring two factors) is kept in the
        session for ``RECHECK_SECONDS``, so a page does not pay three queries for it: a role
        granted during a session applies within a minute."""
        user = request.user
        if user.is_verified():
            return None
        now = int(time.time())
        cached = request.session.get(PENDING_KEY)
        if cached and cached[0] == user.pk and 0 <= now - cached[1] < RECHECK_SECONDS:
            return cached[2] or None
        if services.has_device(user):
            target = "two_factor_verify"
        elif requires_two_factor(user):
            target = "two_factor_setup"
        else:
            target = None
        request.session[PENDING_KEY] = [user.pk, now, target or ""]
        return target


class IdleSessionMiddleware:
    """Sessions end ``SESSION_COOKIE_AGE`` (SESSION_IDLE_MINUTES) after the last request: a
    signed-in user's session is saved again, pushing its expiry back, at most once every
    ``RECHECK_SECONDS`` rather than on every request (``SESSION_SAVE_EVERY_REQUEST`` cost
    three statements a request). So a session ends between 29 and 30 idle minutes."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            now = int(time.time())
            if not 0 <= now - request.session.get(TOUCHED_KEY, 0) < RECHECK_SECONDS:
                request.session[TOUCHED_KEY] = now
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set: Permissions-Policy, and X-Frame-Options
    on responses made before the clickjacking middleware runs (the 503 page)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.headers.setdefault("X-Frame-Options", settings.X_FRAME_OPTIONS)
        return response


RETRY_AFTER_SECONDS = 30


def database_unavailable(request, outcome: str = "nothing_saved") -> HttpResponse:
    """A 503 made without the database or the session: a static template, no context
    processors; JSON ``{"detail": ...}`` for the API.

    ``outcome`` says what became of the request's writes (``core.outcome``): "nothing_saved"
    (the connection failed before any COMMIT: true only then), "unknown" (it failed while a
    COMMIT was in flight) or "saved" (it failed after the COMMIT succeeded)."""
    if outcome == "unknown":
        message = _("The connection to the database was lost while this request's changes "
                    "were being committed: whether they were saved is unknown. Reload the "
                    "page to see what was saved (after a randomisation, the participant's page "
                    "shows the allocation if it was made) before you try again.")
    elif outcome == "saved":
        message = _("The connection to the database was lost after this request's changes "
                    "were saved. Reload the page to see them; do not enter them again.")
    else:
        message = _("The database cannot be reached. Nothing was saved by this request; "
                    "please try again in a minute.")
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "outcome": outcome}, status=503)
    else:
        reload_url = request.path if outcome != "nothing_saved" else ""
        response = HttpResponse(render_to_string("503.html", {
            "message": message, "reload_url": reload_url}), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """PostgreSQL down: a clear 503 page (and API error), never a 500.

    The connection is opened before anything else needs it, so a database that cannot be
    reached is reported before the session, the user or a view is touched. A connection lost
    during a view raises in the view and ``process_exception`` answers 503 as well, saying
    what became of the request's writes (``core.outcome``): lost before COMMIT, the server
    rolled the transaction back (nothing was saved); lost during COMMIT, the outcome is
    unknown; lost after a COMMIT of ``atomic_commit``, the change was saved.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith("/health/"):
            try:
                connections["default"].ensure_connection()
            except (OperationalError, InterfaceError) as exc:
                logger.error("database unreachable: %s", exc)
                return database_unavailable(request)
        token = outcome.start_request()
        try:
            return self.get_response(request)
        finally:
            outcome.end_request(token)

    def process_exception(self, request, exception):
        if isinstance(exception, (OperationalError, InterfaceError)):
            logger.error("database connection lost during %s: %s", request.path, exception)
            connections["default"].close_if_unusable_or_obsolete()
            if outcome.raised_by_commit(exception):
                return database_unavailable(request, "unknown")
            if outcome.committed_in_this_request():
                return database_unavailable(request, "saved")
            return database_unavailable(request)
        return None


class ProfileLanguageMiddleware:
    """Show the interface in the language the signed-in user chose on their profile."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            try:
                language = user.profile.language
            except ObjectDoesNotExist:  # no profile yet
                language = None
            if language:
                request.LANGUAGE_CODE = language
                # For this request only: the thread goes on to serve other users.
                with translation.override(language):
                    return self.get_response(request)
        return self.get_response(request)
