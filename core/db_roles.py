"""Two database roles: the owner, who migrates, and the runtime role, who serves.

The web, the Celery worker and beat connect as the runtime role (``DATABASE_URL``): it reads and
writes rows, nothing more. It owns no table, so it cannot ``ALTER TABLE``, drop or disable a
trigger; it has no ``TRUNCATE``; on the append-only tables (the audit log, the history tables,
kit events, allocations: every table whose trigger runs ``ctms_refuse_change`` on UPDATE and
DELETE) it may only ``SELECT`` and ``INSERT``, and on the tables never deleted it has no
``DELETE``. The triggers stay as a second wall, for the owner's own scripts.

The owner (``DATABASE_OWNER_URL``) runs ``manage.py migrate`` and then these grants. Which
tables are append-only is read from the triggers themselves, so a migration that adds one needs
no change here: the grants follow after the next ``migrate``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connections
from psycopg import sql

REFUSING_FUNCTION = "ctms_refuse_change"
# pg_trigger.tgtype bits (PostgreSQL's catalog/pg_trigger.h).
_TRIGGER_DELETE, _TRIGGER_UPDATE = 1 << 3, 1 << 4
# Django's own bookkeeping: read at start-up checks, written by ``migrate`` (the owner) only.
READ_ONLY = ["django_migrations"]


class RoleError(Exception):
    """The roles named by the settings cannot be set up as asked (said in plain words)."""


def protected_tables(cursor) -> tuple[list[str], list[str]]:
    """(append-only tables, never-deleted tables) of the ``public`` schema, read from the
    triggers that call ``ctms_refuse_change``."""
    cursor.execute(
        """
        SELECT c.relname, bit_or(t.tgtype::int)
        FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_proc p ON p.oid = t.tgfoid
        WHERE n.nspname = 'public' AND p.proname = %s AND NOT t.tgisinternal
        GROUP BY c.relname ORDER BY c.relname
        """, [REFUSING_FUNCTION])
    append_only, never_deleted = [], []
    for table, bits in cursor.fetchall():
        if bits & _TRIGGER_UPDATE and bits & _TRIGGER_DELETE:
            append_only.append(table)
        elif bits & _TRIGGER_DELETE:
            never_deleted.append(table)
    return append_only, never_deleted


def grant_runtime_role(cursor, role: str, *, password: str | None = None) -> dict:
    """Create the runtime role if missing (LOGIN, nothing else), set its password when given,
    and give it exactly the rights the application needs on this database. Run as the owner of
    the tables; idempotent. Returns what was granted, for the command to print."""
    cursor.execute("SELECT current_user, current_database()")
    owner, database = cursor.fetchone()
    if role == owner:
        raise RoleError(f"The runtime role {role!r} is the owner connecting to grant: "
                        "DATABASE_URL and DATABASE_OWNER_URL must name two different roles.")
    cursor.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                   "FROM pg_roles WHERE rolname = %s", [role])
    row = cursor.fetchone()
    ident = sql.Identifier(role)
    if row is None:
        cursor.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                               "NOREPLICATION NOBYPASSRLS").format(ident))
    elif any(row):
        raise RoleError(f"The runtime role {role!r} is a superuser or may create roles or "
                        "databases or bypass row security: give the application a role "
                        "without these attributes.")
    if password:
        cursor.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            ident, sql.Literal(password)))

    append_only, never_deleted = protected_tables(cursor)
    statements = [
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), ident),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(ident),
        # Start from nothing, so a right taken away in a later version does not linger.
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(ident),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}")
        .format(ident),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident),
        # Tables and sequences the owner creates later (a migration before the next grant).
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}").format(ident),
        sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                "GRANT USAGE, SELECT ON SEQUENCES TO {}").format(ident),
    ]
    for table in append_only:
        statements.append(sql.SQL("REVOKE UPDATE, DELETE ON {} FROM {}").format(
            sql.Identifier(table), ident))
    for table in never_deleted:
        statements.append(sql.SQL("REVOKE DELETE ON {} FROM {}").format(
            sql.Identifier(table), ident))
    for table in READ_ONLY:
        statements.append(sql.SQL("REVOKE INSERT, UPDATE, DELETE ON {} FROM {}").format(
            sql.Identifier(table), ident))
    for statement in statements:
        cursor.execute(statement)

    cursor.execute("SELECT has_schema_privilege(%s, 'public', 'CREATE')", [role])
    if cursor.fetchone()[0]:
        # PostgreSQL before 15 lets PUBLIC create in the public schema.
        raise RoleError(f"The runtime role {role!r} may still create tables in the public "
                        "schema (granted to PUBLIC): run REVOKE CREATE ON SCHEMA public FROM "
                        "PUBLIC as the schema's owner.")
    return {"role": role, "owner": owner, "database": database,
            "append_only": append_only, "never_deleted": never_deleted}


@contextlib.contextmanager
def connected_as(url_config: dict, alias: str = "default") -> Iterator[None]:
    """Within the block, the ``alias`` connection logs in with ``url_config``'s role (the same
    database), so everything the block runs — migrations, their data steps, the ``post_migrate``
    handlers — goes through one connection as that role. The settings are restored after."""
    connection = connections[alias]
    keys = ("USER", "PASSWORD", "HOST", "PORT")
    if url_config.get("NAME") != connection.settings_dict.get("NAME") or \
            url_config.get("ENGINE") != connection.settings_dict.get("ENGINE"):
        raise RoleError("DATABASE_OWNER_URL must name the same PostgreSQL database as "
                        "DATABASE_URL (only the role differs).")
    saved = {key: connection.settings_dict.get(key) for key in keys}
    connection.close()
    connection.settings_dict.update({key: url_config.get(key) for key in keys})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)
