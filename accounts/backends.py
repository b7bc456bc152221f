"""Signing in and, on every request, reading the signed-in user."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import ValidationError


class UserWithProfileBackend(ModelBackend):
    """Django's ``ModelBackend`` (username and password; active users only), whose read of the
    signed-in user on every request brings their profile with it (``select_related``; a user
    may have none yet). ``accounts.middleware.ProfileLanguageMiddleware`` reads the profile on
    every request for the interface language: one query fewer for each page."""

    def get_user(self, user_id):
        User = get_user_model()
        try:
            user = (User._default_manager.select_related("profile")
                    .get(pk=User._meta.pk.to_python(user_id)))
        except (User.DoesNotExist, ValidationError):
            return None
        return user if self.user_can_authenticate(user) else None
