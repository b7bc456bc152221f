"""Middleware that belongs to no part of the domain."""
from . import audit


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
