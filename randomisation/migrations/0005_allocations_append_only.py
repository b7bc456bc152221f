"""Allocations cannot be rewritten: on PostgreSQL, triggers refuse any UPDATE, DELETE or
TRUNCATE of the allocations, the slots of the lists, and the records written beside them
(emergency allocations, stratum corrections, unblindings, randomisations in error).

A slot is never updated when it is taken: the stratum's counter (``Stratum.next_sequence``)
moves and the allocation points at the slot, so the slot table is append-only too. A correction
is a new row beside the allocation (``StratumCorrection``), as before.

UPDATE and DELETE raise ``ctms_refuse_change()`` (SQLSTATE 23001, Django's ``IntegrityError``),
the audit trail's function (``outcomes.0004_audit_trail_append_only``). TRUNCATE raises
``ctms_refuse_truncate()``, made here: it refuses always, except in a test database (its name
starts with ``test_``), which the test runner empties with TRUNCATE between tests; a test sets
``ctms.refuse_truncate`` to ``on`` to see the refusal there too. SQLite (the embedded demo)
has no triggers: there the models' ``save()`` and ``delete()`` refuse it (``core.models.Immutable``).
"""
from django.db import migrations

APPEND_ONLY = [
    "randomization_allocation",
    "randomization_allocationslot",
    "randomization_emergencyallocation",
    "randomization_stratumcorrection",
    "randomization_emergencyunblinding",
    "randomization_safetyunblinding",
    "randomization_randomisedinerror",
]

REFUSE_TRUNCATE = """
CREATE OR REPLACE FUNCTION ctms_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_database() LIKE 'test\\_%'
       AND coalesce(current_setting('ctms.refuse_truncate', true), '') <> 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'ctms: TRUNCATE on % refused: allocations are never changed or deleted',
                    TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
"""


def forwards_sql() -> list[str]:
    statements = [REFUSE_TRUNCATE]
    for table in APPEND_ONLY:
        statements.append(f"CREATE TRIGGER ctms_append_only BEFORE UPDATE OR DELETE ON {table} "
                          f"FOR EACH ROW EXECUTE FUNCTION ctms_refuse_change();")
        statements.append(f"CREATE TRIGGER ctms_no_truncate BEFORE TRUNCATE ON {table} "
                          f"FOR EACH STATEMENT EXECUTE FUNCTION ctms_refuse_truncate();")
    return statements


def backwards_sql() -> list[str]:
    statements = []
    for table in APPEND_ONLY:
        statements.append(f"DROP TRIGGER IF EXISTS ctms_append_only ON {table};")
        statements.append(f"DROP TRIGGER IF EXISTS ctms_no_truncate ON {table};")
    statements.append("DROP FUNCTION IF EXISTS ctms_refuse_truncate();")
    return statements


class PostgreSQLOnly(migrations.RunSQL):
    """RunSQL that runs on PostgreSQL and is a no-op on any other database."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):

    dependencies = [
        ("randomization", "0004_allocation_integrity"),
        ("outcomes", "0004_audit_trail_append_only"),
    ]

    operations = [PostgreSQLOnly(forwards_sql(), backwards_sql())]
