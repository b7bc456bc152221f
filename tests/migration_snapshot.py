"""What a database holds, as JSON, read by one version of the code (for
tests/test_migrate_from_main.py).

    python tests/migration_snapshot.py --code old|new --root TREE --out FILE.json

run with ``TREE`` as the working directory, ``DATABASE_URL`` naming the database and
``DJANGO_SETTINGS_MODULE=config.settings.base``. ``TREE`` is the code that reads: the old tree
(``--code old``, the commit the database was built by) or the checkout under test (``--code new``).

The snapshot holds
- ``tables``: the row count of every table but ``django_migrations``, by raw SQL;
- ``signatures``: for every CRF signature (by key), whether ``signature_is_valid`` holds;
- ``allocation_lists``: for every allocation list (by key), its verification (stored and
  recomputed SHA-256, and whether they agree);
- ``audit_events``: the number of audit events, and every event's stored values by column;
- ``history``: the number of rows of every django-simple-history table, through the models;
- ``triggers``: on PostgreSQL, the enabled triggers (table, trigger, function) of the tables.

Only Django and the names of ``OLD`` or ``NEW`` below are imported from the project, so the same
script reads the old tree and the new one.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

# The project names the snapshot uses, where the code of the database's commit has them
# (tests/test_migrate_from_main.py REV). Frozen: do not change.
OLD = {
    "signature_is_valid": "outcomes.services.signature_is_valid",
    "CRFSignature": "outcomes.models.CRFSignature",
    "verify_list": "randomization.services.verify_list",
    "AllocationList": "randomization.models.AllocationList",
    "AuditEvent": "trials.models.AuditEvent",
}

# ============================================================================================
# NEW: where the checkout under test has the same names. WHEN A MODEL OR FUNCTION MOVES
# (outcomes -> crfs, trials -> core, ...), UPDATE ITS PATH HERE, and nowhere else.
# ``signature_is_valid(signature, record) -> bool``; ``verify_list(allocation_list)`` returns an
# object with ``ok``, ``stored`` and ``computed``; the models are the Django model classes.
# ============================================================================================
NEW = {
    "signature_is_valid": "crfs.services.signature_is_valid",
    "CRFSignature": "crfs.models.CRFSignature",
    "verify_list": "randomisation.services.verify_list",
    "AllocationList": "randomisation.models.AllocationList",
    "AuditEvent": "core.models.AuditEvent",
}


def resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise SystemExit(f"migration_snapshot: cannot import {dotted!r} ({exc}); update the "
                         f"NEW mapping at the top of {Path(__file__).name}") from exc


def _text(value) -> str:
    """A stored value as text, to compare: the JSON of what the ORM reads."""
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def snapshot(paths: dict[str, str]) -> dict:
    from django.apps import apps
    from django.db import connection
    from simple_history.models import HistoricalChanges

    names = {key: resolve(path) for key, path in paths.items()}

    with connection.cursor() as cursor:
        tables = {}
        for table in sorted(connection.introspection.table_names()):
            if table == "django_migrations":
                continue
            cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")
            tables[table] = cursor.fetchone()[0]
        triggers = []
        if connection.vendor == "postgresql":
            # The append-only and void-only triggers (outcomes migration 0004) guard the tables
            # by name: a table rebuilt instead of moved would lose them.
            cursor.execute("SELECT c.relname, t.tgname, p.proname FROM pg_trigger t "
                           "JOIN pg_class c ON c.oid = t.tgrelid "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "JOIN pg_proc p ON p.oid = t.tgfoid "
                           "WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' "
                           "AND n.nspname = current_schema() ORDER BY 1, 2")
            triggers = [list(row) for row in cursor.fetchall()]

    is_valid = names["signature_is_valid"]
    signatures = {
        str(s.pk): bool(is_valid(s, s.record))
        for s in names["CRFSignature"]._default_manager.select_related("record").order_by("pk")}

    verify = names["verify_list"]
    lists = {}
    for alist in names["AllocationList"]._default_manager.order_by("pk"):
        result = verify(alist)
        lists[str(alist.pk)] = {"ok": bool(result.ok), "stored": result.stored,
                                "computed": result.computed}

    AuditEvent = names["AuditEvent"]
    columns = [f.column for f in AuditEvent._meta.concrete_fields]
    attnames = [f.attname for f in AuditEvent._meta.concrete_fields]
    events = {str(row[0]): dict(zip(columns, map(_text, row[1:]))) for row in
              AuditEvent._default_manager.order_by("pk").values_list("pk", *attnames)}

    history = {model._meta.db_table: model._default_manager.count()
               for model in apps.get_models() if issubclass(model, HistoricalChanges)}

    # Test mode (issue 22, item 7): what existed before it stays live.
    Trial = apps.get_model("trials", "Trial")
    test_mode = None
    if any(f.name == "live_since" for f in Trial._meta.concrete_fields):
        test_mode = {
            "trials_in_test_mode": Trial._default_manager.filter(live_since=None).count(),
            "test_lists": names["AllocationList"]._default_manager.exclude(purpose="live").count(),
            "test_participants": apps.get_model("patients", "Participant")._default_manager
            .filter(test=True).count()}

    return {"tables": tables, "signatures": signatures, "allocation_lists": lists,
            "audit_events": {"count": len(events), "rows": events}, "history": history,
            "triggers": triggers, "test_mode": test_mode}


def main() -> None:
    parser = argparse.ArgumentParser(description="What a database holds, as JSON.")
    parser.add_argument("--code", choices=("old", "new"), required=True)
    parser.add_argument("--root", type=Path, required=True, help="the code tree that reads")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    # Python put this script's folder (tests/, whose packages are named like the apps) first on
    # the path: the apps must come from the tree that reads.
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [str(args.root.resolve())] + [p for p in sys.path
                                                 if p and Path(p).resolve() != Path(here)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    import django

    django.setup()
    result = snapshot(OLD if args.code == "old" else NEW)
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
