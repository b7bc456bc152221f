from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app uses and no part of the domain owns: the governance audit log,
    notifications, django-simple-history's set-up, re-authentication, shared form, admin and
    middleware helpers. It imports no other app of the project."""

    name = "core"
