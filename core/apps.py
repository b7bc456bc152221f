from django.apps import AppConfig
from django.db.backends.signals import connection_created


class CoreConfig(AppConfig):
    """What every app uses and no part of the domain owns: the governance audit log,
    notifications, django-simple-history's set-up, re-authentication, shared form, admin and
    middleware helpers, database helpers (``core.db``). It imports no other app of the
    project."""

    name = "core"

    def ready(self):
        from .db import register_sqlite_functions

        connection_created.connect(register_sqlite_functions,
                                   dispatch_uid="ctms_sqlite_functions")
