"""A user's profile: their own preferences (users themselves are Django's ``auth.User``)."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class Profile(models.Model):
    """A user's own preferences, kept across sessions and devices."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="profile")
    language = models.CharField(max_length=8, choices=settings.LANGUAGES,
                                default=settings.LANGUAGE_CODE)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # The table keeps the name it had when profiles lived in ``trials`` (migration
        # accounts.0001): its rows stay where they are.
        db_table = "trials_profile"

    def __str__(self) -> str:
        return f"{self.user} ({self.language})"
