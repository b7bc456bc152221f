"""A kit's life cannot be rewritten: on PostgreSQL, triggers refuse any UPDATE or DELETE of kit
events, kit assignments and their releases (DESIGN.md, invariant 4: kit assignments are
append-only in the database itself). The function raising the refusal, ``ctms_refuse_change``
(SQLSTATE 23001, Django's ``IntegrityError``), is the audit trail's, made by
``outcomes.0004_audit_trail_append_only``. A kit's current state (``supply_kit.status``) is the
row that changes, each change beside an event in the same transaction. SQLite (the embedded
demo) has no triggers: there the models' ``save()`` and ``delete()`` refuse it."""
from django.db import migrations

APPEND_ONLY = ["supply_kitevent", "supply_kitassignment", "supply_kitrelease"]


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
        ("supply", "0001_kit_supply"),
        ("outcomes", "0004_audit_trail_append_only"),
    ]

    operations = [PostgreSQLOnly(
        [f"CREATE TRIGGER ctms_append_only BEFORE UPDATE OR DELETE ON {table} "
         f"FOR EACH ROW EXECUTE FUNCTION ctms_refuse_change();" for table in APPEND_ONLY],
        [f"DROP TRIGGER IF EXISTS ctms_append_only ON {table};" for table in APPEND_ONLY])]
