from django.utils import translation

from . import audit
from .models import Profile


class AdminAccessAuditMiddleware:
    """Every request a signed-in user makes to the Django admin is written to the audit log."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if (request.path.startswith("/admin/") and user is not None
                and user.is_authenticated and response.status_code < 400
                and not request.path.startswith("/admin/jsi18n")):
            audit.record("admin.access", f"{request.method} {request.get_full_path()}",
                         actor=user, detail={"status": response.status_code})
        return response


class ProfileLanguageMiddleware:
    """Show the interface in the language the signed-in user chose on their profile."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            try:
                language = user.profile.language
            except Profile.DoesNotExist:
                language = None
            if language:
                request.LANGUAGE_CODE = language
                # For this request only: the thread goes on to serve other users.
                with translation.override(language):
                    return self.get_response(request)
        return self.get_response(request)
