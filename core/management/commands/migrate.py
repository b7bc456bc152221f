"""``migrate`` as the tables' owner, then the runtime role's grants.

With ``DATABASE_OWNER_URL`` set, the migrations (schema changes, their data steps and the
``post_migrate`` handlers alike) run over one connection logged in as the owner, and the
runtime role named by ``DATABASE_URL`` then gets its rights (``grant_runtime_role``). Without
it (the embedded SQLite demo, the test suite), this is Django's ``migrate`` unchanged.
"""
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate

from core.db_roles import RoleError, connected_as


class Command(DjangoMigrate):

    def handle(self, *args, **options):
        owner = getattr(settings, "DATABASE_OWNER", None)
        if owner is None or options["database"] != "default":
            return super().handle(*args, **options)
        try:
            with connected_as(owner):
                super().handle(*args, **options)
        except RoleError as error:
            raise CommandError(str(error)) from error
        call_command("grant_runtime_role", verbosity=options["verbosity"],
                     stdout=self.stdout, stderr=self.stderr)
