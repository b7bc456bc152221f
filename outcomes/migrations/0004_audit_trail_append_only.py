"""The audit trail cannot be edited by any route: on PostgreSQL, triggers refuse it.

The pages, the API and the admin never offer to change or delete history, but a script, a
shell or a bug could. So the database itself refuses:

- any UPDATE or DELETE of a history row (django-simple-history's tables), of the governance
  audit log and of query messages: they are append-only;
- any change to a signature except voiding it once (``voided_at``, ``voided_by``,
  ``void_reason`` set from empty; every other column unchanged), and its deletion;
- any DELETE of clinical data (participants, visits, deviations, CRF records, queries): they
  are never hard-deleted.

The refusal is SQLSTATE 23001 (restrict_violation), which Django raises as ``IntegrityError``.
TRUNCATE is not covered (test databases are emptied with it); in production the application's
database role should not be granted TRUNCATE. SQLite (the embedded demo) has no such triggers:
there the models' ``delete()`` and the read-only admin are the guard.
"""
from django.db import migrations

APPEND_ONLY = [
    "outcomes_historicalcrfrecord",
    "outcomes_historicaldataquery",
    "outcomes_querymessage",
    "patients_historicalparticipant",
    "patients_historicalvisit",
    "patients_historicaldeviation",
    "trials_historicalmembership",
    "trials_auditevent",
]
NEVER_DELETED = [
    "patients_participant",
    "patients_visit",
    "patients_deviation",
    "outcomes_crfrecord",
    "outcomes_dataquery",
]
SIGNATURES = "outcomes_crfsignature"

FUNCTIONS = ["""
CREATE OR REPLACE FUNCTION ctms_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ctms: % on % refused: the audit trail and clinical data are never changed '
                    'or deleted this way', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
""", """
CREATE OR REPLACE FUNCTION ctms_signature_void_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.voided_at IS NULL AND NEW.voided_at IS NOT NULL
       AND (to_jsonb(NEW) - 'voided_at' - 'voided_by_id' - 'void_reason')
         = (to_jsonb(OLD) - 'voided_at' - 'voided_by_id' - 'void_reason') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ctms: % on % refused: a signature is only ever voided, once', TG_OP,
                    TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END $$;
"""]


def forwards_sql() -> list[str]:
    statements = list(FUNCTIONS)
    for table in APPEND_ONLY:
        statements.append(f"CREATE TRIGGER ctms_append_only BEFORE UPDATE OR DELETE ON {table} "
                          f"FOR EACH ROW EXECUTE FUNCTION ctms_refuse_change();")
    for table in NEVER_DELETED:
        statements.append(f"CREATE TRIGGER ctms_never_deleted BEFORE DELETE ON {table} "
                          f"FOR EACH ROW EXECUTE FUNCTION ctms_refuse_change();")
    statements.append(f"CREATE TRIGGER ctms_void_only BEFORE UPDATE OR DELETE ON {SIGNATURES} "
                      f"FOR EACH ROW EXECUTE FUNCTION ctms_signature_void_only();")
    return statements


def backwards_sql() -> list[str]:
    statements = [f"DROP TRIGGER IF EXISTS ctms_append_only ON {t};" for t in APPEND_ONLY]
    statements += [f"DROP TRIGGER IF EXISTS ctms_never_deleted ON {t};" for t in NEVER_DELETED]
    statements.append(f"DROP TRIGGER IF EXISTS ctms_void_only ON {SIGNATURES};")
    statements.append("DROP FUNCTION IF EXISTS ctms_signature_void_only();")
    statements.append("DROP FUNCTION IF EXISTS ctms_refuse_change();")
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
        ("outcomes", "0003_signatures_queries_and_locks"),
        ("patients", "0003_edit_check_deviations"),
        ("trials", "0002_profile"),
    ]

    operations = [PostgreSQLOnly(forwards_sql(), backwards_sql())]
