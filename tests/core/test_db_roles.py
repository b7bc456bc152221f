"""Least privilege in the database: the application's runtime role cannot rewrite the audit
trail by any route the owner could (core/db_roles.py, docs/operations.md "Database roles").

A fresh database is migrated the way production does it (``manage.py migrate`` with
``DATABASE_OWNER_URL`` the owner and ``DATABASE_URL`` the runtime role), then the test connects
as the runtime role and tries what an attacker holding the application's credentials would.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import errors

from core.db_roles import RoleError, grant_runtime_role

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]


def _role() -> str:
    """A runtime role of this test database's own (roles are shared by the whole server)."""
    return f"{connection.settings_dict['NAME']}_runtime"[:63]
RUNTIME_PASSWORD = "runtime-role-test-password"


def _url(user: str, database: str, password: str = "") -> str:
    s = connection.settings_dict
    credentials = f"{user}:{password}" if password else user
    if not password and s.get("PASSWORD"):
        credentials = f"{user}:{s['PASSWORD']}"
    return f"postgres://{credentials}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{database}"


def _admin_connect(database: str = "postgres") -> psycopg.Connection:
    s = connection.settings_dict
    return psycopg.connect(dbname=database, user=s["USER"], password=s.get("PASSWORD") or None,
                           host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432,
                           autocommit=True)


@pytest.fixture(scope="module")
def migrated_database(django_db_setup, django_db_blocker):
    """A database migrated by ``manage.py migrate`` as the owner, the runtime role granted."""
    with django_db_blocker.unblock():
        owner = connection.settings_dict["USER"]
        name = f"{connection.settings_dict['NAME']}_roles"
    with _admin_connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base",
           "DATABASE_URL": _url(_role(), name, RUNTIME_PASSWORD),
           "DATABASE_OWNER_URL": _url(owner, name)}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"Runtime role {_role()} on {name}" in done.stdout
    yield name
    with _admin_connect() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'DROP ROLE IF EXISTS "{_role()}"')


@pytest.fixture
def runtime(migrated_database):
    s = connection.settings_dict
    with psycopg.connect(dbname=migrated_database, user=_role(), password=RUNTIME_PASSWORD,
                         host=s.get("HOST") or "127.0.0.1", port=s.get("PORT") or 5432,
                         autocommit=True) as conn:
        yield conn


def _refused(runtime, statement: str) -> str:
    with pytest.raises(errors.InsufficientPrivilege) as refused:
        runtime.execute(statement)
    return str(refused.value)


INSERT_AUDIT = ("INSERT INTO trials_auditevent (at, action, study_id, object_type, object_id, "
                "message, detail) VALUES (now(), 'test.runtime', '', '', '', 'written', '{}') "
                "RETURNING id")


def test_the_runtime_role_writes_the_audit_log_but_never_rewrites_it(runtime):
    (event_id,) = runtime.execute(INSERT_AUDIT).fetchone()
    assert "permission denied" in _refused(
        runtime, f"UPDATE trials_auditevent SET message = 'rewritten' WHERE id = {event_id}")
    _refused(runtime, f"DELETE FROM trials_auditevent WHERE id = {event_id}")
    assert runtime.execute(f"SELECT message FROM trials_auditevent WHERE id = {event_id}"
                           ).fetchone() == ("written",)


def test_the_runtime_role_cannot_truncate_alter_or_disable_the_audit_log_triggers(runtime):
    runtime.execute(INSERT_AUDIT)
    _refused(runtime, "TRUNCATE trials_auditevent")
    assert "must be owner" in _refused(
        runtime, "ALTER TABLE trials_auditevent DISABLE TRIGGER ctms_append_only")
    _refused(runtime, "ALTER TABLE trials_auditevent DISABLE TRIGGER ALL")
    _refused(runtime, "DROP TRIGGER ctms_append_only ON trials_auditevent")
    _refused(runtime, "ALTER TABLE trials_auditevent ADD COLUMN note text")
    _refused(runtime, "DROP TABLE trials_auditevent")
    _refused(runtime, "CREATE TABLE shadow (id int)")
    _refused(runtime, "SET session_replication_role = replica")
    assert runtime.execute("SELECT count(*) FROM trials_auditevent").fetchone()[0] >= 1


def test_history_tables_are_insert_only_and_clinical_rows_are_never_deleted(runtime):
    for table in ("patients_historicalparticipant", "outcomes_historicalcrfrecord",
                  "supply_kitevent", "randomization_allocation",
                  "randomization_allocationslot"):
        _refused(runtime, f"UPDATE {table} SET id = id")
        _refused(runtime, f"DELETE FROM {table}")
    _refused(runtime, "DELETE FROM patients_participant")
    _refused(runtime, "INSERT INTO django_migrations (app, name, applied) "
                      "VALUES ('x', 'y', now())")


def test_the_runtime_role_still_does_what_the_product_does(runtime):
    """Sessions are written, changed and deleted; rows of ordinary tables updated."""
    runtime.execute("INSERT INTO django_session VALUES ('k', 'd', now())")
    runtime.execute("UPDATE django_session SET session_data = 'e' WHERE session_key = 'k'")
    runtime.execute("DELETE FROM django_session WHERE session_key = 'k'")
    (role_is_superuser,) = runtime.execute(
        "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert role_is_superuser is False


def test_granting_again_changes_nothing_and_the_owner_is_not_a_runtime_role(migrated_database):
    with _admin_connect(migrated_database) as owner:
        before = _privileges(owner)
        with owner.cursor() as cursor:
            grant_runtime_role(cursor, _role(), password=RUNTIME_PASSWORD)
        assert _privileges(owner) == before
        with owner.cursor() as cursor, pytest.raises(RoleError, match="two different roles"):
            grant_runtime_role(cursor, owner.info.user)


def _privileges(conn) -> list[tuple]:
    return conn.execute(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
        "WHERE grantee = %s ORDER BY 1, 2", [_role()]).fetchall()
