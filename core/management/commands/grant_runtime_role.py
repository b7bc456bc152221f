"""Give the runtime role (``DATABASE_URL``'s user) its rights, connected as the owner
(``DATABASE_OWNER_URL``). ``migrate`` runs it after migrating; run it alone to repair grants or
change the runtime role's password. Idempotent."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from core.db_roles import RoleError, connected_as, grant_runtime_role


class Command(BaseCommand):
    help = ("Create or update the runtime database role named by DATABASE_URL, with only the "
            "rights the application needs, connected as DATABASE_OWNER_URL's role.")

    def handle(self, *args, **options):
        owner = getattr(settings, "DATABASE_OWNER", None)
        if owner is None:
            raise CommandError("Set DATABASE_OWNER_URL (the role that owns the tables and runs "
                               "the migrations) to grant the runtime role its rights.")
        if connection.vendor != "postgresql":
            raise CommandError("Database roles exist on PostgreSQL only; DATABASE_URL names "
                               f"{connection.vendor}.")
        runtime = dict(connection.settings_dict)
        try:
            with connected_as(owner):
                with connection.cursor() as cursor:
                    done = grant_runtime_role(cursor, runtime["USER"],
                                              password=runtime.get("PASSWORD") or None)
        except RoleError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"Runtime role {done['role']} on {done['database']} (tables owned by "
            f"{done['owner']}): read and write, no TRUNCATE, no DDL; insert-only on "
            f"{len(done['append_only'])} append-only tables, no DELETE on "
            f"{len(done['never_deleted'])} more.")
