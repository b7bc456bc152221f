"""A database built by the code of ``main`` (REV below) with the demo data in it, migrated by the
code of this checkout, loses nothing: every table keeps its rows, every signature valid before is
valid after, every allocation list verifies as before, and the audit log and the history tables
keep every row.

The old code is taken from git (``git archive REV``); the database is built and read by the old
code in subprocesses run in that tree, then migrated and read again by this checkout's code in
subprocesses run here (tests/migration_snapshot.py reads; the names it imports from the new code
are in its ``NEW`` mapping). On SQLite the database is a file in a temporary folder; when the run
is on PostgreSQL, a database of its own on the same server, created and dropped here. The test
run's own database is not touched.

When the restructuring renames a table, add it to RENAMED_TABLES; when it adds a table that
receives rows from the old ones, add it to NEW_TABLES.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings

from tests.conftest import _missing

# The code the database is built by: main when this test was written (2026-05). Full hash.
REV = "6d37aa7a09232f28037ced18d277626dc2263cf9"

# ============================================================================================
# Tables renamed by the migrations: {"name in REV": "name now"}. Their counts are compared
# across the rename.
RENAMED_TABLES: dict[str, str] = {}
# Tables only the new code has that may hold rows right after migrating (filled from old
# tables). Any other table only the new code has must be empty.
NEW_TABLES: set[str] = {
    "patients_consentrecord",  # from Participant.consent_date (issue 17)
    "trials_terminology", "trials_term",  # the shipped NCI-CTCAE list, loaded by a data migration
}
# Models only the new code has, as (app label, model name): each brings one content type and
# Django's four default permissions, created by ``migrate`` (not moved: see the hint below).
NEW_MODELS: set[tuple[str, str]] = {
    # Issue 17: consent history and withdrawals.
    ("patients", "consentrecord"), ("patients", "historicalconsentrecord"),
    ("patients", "withdrawal"), ("patients", "historicalwithdrawal"),
    # Issue 17: the screening log, closed screening episodes, randomised in error.
    ("patients", "screeninglogentry"), ("patients", "historicalscreeninglogentry"),
    ("patients", "screeningepisode"), ("patients", "historicalscreeningepisode"),
    ("randomization", "randomisedinerror"),
    # Issue 18: the NCI-CTCAE term list.
    ("trials", "terminology"), ("trials", "term"),
    # Issue 18: SAE reports, their versions, the sponsor's assessment, the clock's reminders,
    # the pharmacovigilance unblinding.
    ("safety", "saereport"), ("safety", "historicalsaereport"), ("safety", "saeversion"),
    ("safety", "historicalsaeversion"), ("safety", "sponsorassessment"),
    ("safety", "historicalsponsorassessment"), ("safety", "saereminder"),
    ("randomization", "safetyunblinding"),
    # Issue 19: investigational product supply.
    ("supply", "kitlist"), ("supply", "kit"), ("supply", "shipment"), ("supply", "shipmentkit"),
    ("supply", "kitevent"), ("supply", "kitassignment"), ("supply", "kitrelease"),
    ("supply", "resupplyrequest"), ("supply", "excursion"),
    # Issue 20: source data verification.
    ("crfs", "sourceverification"), ("crfs", "monitoringvisit"), ("crfs", "historicalmonitoringvisit"),
    # Issue 22: emergency allocations recorded afterwards.
    ("randomization", "emergencyallocation"),
}
# ============================================================================================

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).resolve().parent / "migration_snapshot.py"
TIMEOUT = 900  # seconds, per command: a hung command fails the test instead of the CI job


def _run(args: list[str], *, cwd: Path, env: dict[str, str], check: bool = True):
    result = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=TIMEOUT)
    if check and result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-60:])
        pytest.fail(f"`python {' '.join(args)}` in {cwd} failed (exit {result.returncode}):\n"
                    f"{tail}", pytrace=False)
    return result


def _old_tree(tmp: Path) -> Path:
    if shutil.which("git") is None:
        _missing("git is not installed: cannot extract the code of main to migrate from")
    known = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{REV}^{{commit}}"],
                           capture_output=True, text=True)
    if known.returncode != 0:
        _missing(f"commit {REV[:12]} (the main this migration test starts from) is not in this "
                 f"repository (a shallow clone or an export?): fetch it, e.g. "
                 f"`git fetch --unshallow`")
    tree = tmp / "old"
    tree.mkdir()
    archive = tmp / "old.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(ROOT), "archive", REV], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    return tree


class _Database:
    """The database to migrate: a SQLite file, or a PostgreSQL database of its own."""

    def __init__(self, tmp: Path):
        self.postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
        if not self.postgres:
            self.url = f"sqlite:///{tmp / 'db.sqlite3'}"
            return
        import psycopg
        from psycopg import sql

        self._psycopg, self._sql = psycopg, sql
        run_url = urlsplit(os.environ["DATABASE_URL"])
        self.name = f"ctms_migration_check_{os.getpid()}"
        self.url = urlunsplit(run_url._replace(path=f"/{self.name}"))
        self._server = urlunsplit(run_url._replace(path="/postgres"))
        self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        self._execute("CREATE DATABASE {}")

    def _execute(self, statement: str) -> None:
        with self._psycopg.connect(self._server, autocommit=True) as conn:
            conn.execute(self._sql.SQL(statement).format(self._sql.Identifier(self.name)))

    def drop(self) -> None:
        if self.postgres:
            self._execute("DROP DATABASE IF EXISTS {} WITH (FORCE)")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """Build the database with the old code and the demo data, read it, migrate it with this
    checkout's code, read it again: both snapshots and what the migration checks said."""
    tmp = tmp_path_factory.mktemp("migrate-from-main")
    old = _old_tree(tmp)
    database = _Database(tmp)
    try:
        # The embedded defaults (Celery eager, console e-mail), DEBUG for demo_setup, and files
        # the demo writes kept out of both trees.
        env = {k: v for k, v in os.environ.items() if k not in (
            "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "EMAIL_URL", "PYTHONPATH",
            "DJANGO_ALLOW_ASYNC_UNSAFE")}
        env.update(DATABASE_URL=database.url, DJANGO_SETTINGS_MODULE="config.settings.base",
                   DEBUG="true", MEDIA_ROOT=str(tmp / "media"))
        old_env = {**env, "PYTHONPATH": str(old)}
        new_env = {**env, "PYTHONPATH": str(ROOT)}

        _run(["manage.py", "migrate", "--noinput"], cwd=old, env=old_env)
        _run(["manage.py", "demo_setup"], cwd=old, env=old_env)
        # The demo leaves profiles empty: some users choose French, as on the language menu.
        _run(["manage.py", "shell", "-c",
              "from django.contrib.auth import get_user_model\n"
              "from trials.models import Profile\n"
              "for user in get_user_model().objects.order_by('pk')[:3]:\n"
              "    Profile.objects.update_or_create(user=user, defaults={'language': 'fr'})\n"],
             cwd=old, env=old_env)
        _run([str(SNAPSHOT), "--code", "old", "--root", str(old), "--out", str(tmp / "old.json")],
             cwd=old, env=old_env)

        _run(["manage.py", "migrate", "--noinput"], cwd=ROOT, env=new_env)
        check = _run(["manage.py", "migrate", "--check"], cwd=ROOT, env=new_env, check=False)
        plan = _run(["manage.py", "showmigrations", "--plan"], cwd=ROOT, env=new_env)
        changes = _run(["manage.py", "makemigrations", "--check", "--dry-run"], cwd=ROOT,
                       env=new_env, check=False)
        _run([str(SNAPSHOT), "--code", "new", "--root", str(ROOT), "--out", str(tmp / "new.json")],
             cwd=ROOT, env=new_env)
        yield {
            "old": json.loads((tmp / "old.json").read_text()),
            "new": json.loads((tmp / "new.json").read_text()),
            "check": check,
            "unapplied": [line for line in plan.stdout.splitlines() if line.startswith("[ ]")],
            "changes": changes,
        }
    finally:
        database.drop()


def _renamed(table: str) -> str:
    return RENAMED_TABLES.get(table, table)


def test_no_migration_is_left_to_apply(migrated):
    assert not migrated["unapplied"], "unapplied after migrate: " + ", ".join(migrated["unapplied"])
    check = migrated["check"]
    assert check.returncode == 0, f"migrate --check: {check.stdout}{check.stderr}"


def test_the_models_match_the_migrations(migrated):
    changes = migrated["changes"]
    assert changes.returncode == 0, (
        f"the models have changes no migration makes (makemigrations --check):\n{changes.stdout}"
        f"{changes.stderr}")


def test_every_table_keeps_its_rows(migrated):
    old, new = migrated["old"]["tables"], migrated["new"]["tables"]
    assert old["trials_auditevent"] and old["outcomes_crfsignature"], "the demo data is missing"
    unknown = set(RENAMED_TABLES) - set(old)
    assert not unknown, f"RENAMED_TABLES names tables the old database does not have: {unknown}"
    problems = []
    added = {"django_content_type": len(NEW_MODELS), "auth_permission": 4 * len(NEW_MODELS)}
    for table, count in sorted(old.items()):
        now = _renamed(table)
        label = table if now == table else f"{table} (now {now})"
        if now not in new:
            problems.append(f"{label}: gone after migrating ({count} rows before); if it was "
                            f"renamed, add it to RENAMED_TABLES")
        elif new[now] != count + added.get(table, 0):
            hint = (" (content types of moved models: rename them in the migration rather than "
                    "let new ones be created)"
                    if table in ("django_content_type", "auth_permission") else "")
            problems.append(f"{label}: {count} rows before, {new[now]} after (expected "
                            f"{count + added.get(table, 0)}: NEW_MODELS){hint}")
    kept = {_renamed(t) for t in old}
    for table in sorted(set(new) - kept):
        if new[table] and table not in NEW_TABLES:
            problems.append(f"{table}: a new table with {new[table]} rows; list it in NEW_TABLES "
                            f"if it is filled from old tables")
    assert not problems, "\n".join(problems)


def test_every_signature_keeps_its_validity(migrated):
    old, new = migrated["old"]["signatures"], migrated["new"]["signatures"]
    assert any(old.values()), "the demo data has no valid CRF signature to check"
    assert len(new) == len(old), f"{len(old)} CRF signatures before migrating, {len(new)} after"
    changed = {pk: (valid, new.get(pk)) for pk, valid in old.items() if new.get(pk) != valid}
    assert not changed, "CRF signatures whose validity changed (key: before, after): " + ", ".join(
        f"#{pk}: {before}, {after}" for pk, (before, after) in changed.items())


def test_existing_trials_stay_live_with_their_lists_and_participants(migrated):
    """Test mode came after them: every trial is live, every list live, nobody a test
    participant (``trials`` 0011's data migration), so nothing changes for them."""
    assert migrated["new"]["test_mode"] == {"trials_in_test_mode": 0, "test_lists": 0,
                                            "test_participants": 0}


def test_every_allocation_list_verifies_as_before(migrated):
    old, new = migrated["old"]["allocation_lists"], migrated["new"]["allocation_lists"]
    assert any(v["ok"] for v in old.values()), "the demo data has no sealed allocation list"
    assert new.keys() == old.keys(), f"allocation lists before {sorted(old)}, after {sorted(new)}"
    changed = [f"#{pk}: before {old[pk]}, after {new[pk]}" for pk in old if new[pk] != old[pk]]
    assert not changed, "allocation lists whose verification changed:\n" + "\n".join(changed)


def test_the_audit_log_keeps_every_event(migrated):
    old, new = migrated["old"]["audit_events"], migrated["new"]["audit_events"]
    assert old["count"], "the demo data has no audit event"
    assert new["count"] == old["count"], (
        f"{old['count']} audit events before migrating, {new['count']} after")
    # Every event keeps its values, column by column (a column the new code adds is not compared).
    changed = []
    for pk, before in sorted(old["rows"].items(), key=lambda item: int(item[0])):
        after = new["rows"].get(pk)
        if after is None:
            changed.append(f"#{pk}: gone")
            continue
        changed += [f"#{pk} {column}: {value} -> {after[column]}"
                    for column, value in before.items() if after.get(column, value) != value]
    assert not changed, "audit events changed by migrating:\n" + "\n".join(changed[:20])


def test_every_history_table_keeps_its_rows(migrated):
    old, new = migrated["old"]["history"], migrated["new"]["history"]
    assert sum(old.values()), "the demo data has no history rows"
    problems = [f"{table}: {count} history rows before, {new.get(_renamed(table))} after"
                for table, count in sorted(old.items()) if new.get(_renamed(table)) != count]
    kept = {_renamed(t) for t in old}
    problems += [f"{table}: a new history table with {count} rows" for table, count in
                 sorted(new.items()) if table not in kept and count and table not in NEW_TABLES]
    assert not problems, "\n".join(problems)


def test_the_database_triggers_still_guard_the_tables(migrated):
    """PostgreSQL only (SQLite has none): the append-only and void-only triggers follow their
    tables, renamed or not."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("SQLite has no triggers: checked in the PostgreSQL run")
    old, new = migrated["old"]["triggers"], migrated["new"]["triggers"]
    assert old, "the database built by main has no triggers"
    expected = {(_renamed(table), name, function) for table, name, function in old}
    lost = sorted(expected - {tuple(t) for t in new})
    assert not lost, "triggers lost by migrating (table, trigger, function): " + ", ".join(
        map(str, lost))
