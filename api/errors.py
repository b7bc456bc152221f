"""Errors of the API, always JSON, always saying what and where.

Services refuse bad input with Django's ``ValidationError`` (a dict of field → messages, or a
list for the whole request), ``PermissionDenied`` and ``Http404``: they become DRF's answers
(400 with the fields named, 403, 404) here, so views simply call the services.
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler


def as_drf(exc: DjangoValidationError, *, prefix: str = "") -> exceptions.ValidationError:
    """A service's ``ValidationError`` as DRF's: ``{"field": [...]}`` or ``{"detail": [...]}``.
    ``prefix`` nests the fields under one key (the answers of a CRF under ``data``)."""
    if hasattr(exc, "error_dict"):
        errors = {name if name != "__all__" else "detail": messages
                  for name, messages in exc.message_dict.items()}
        if prefix:
            detail = errors.pop("detail", None)
            errors = {prefix: errors} if errors else {}
            if detail:
                errors["detail"] = detail
        return exceptions.ValidationError(errors)
    return exceptions.ValidationError({"detail": exc.messages})


def exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = as_drf(exc)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or None)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    return drf_exception_handler(exc, context)


def page_not_found(request, exception):
    """Django's 404 (no route matched, e.g. a malformed id in an API URL): JSON under /api/,
    the usual page elsewhere."""
    from django.http import JsonResponse
    from django.views import defaults

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
