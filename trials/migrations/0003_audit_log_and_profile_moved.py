"""The audit log moved to ``core`` and the profile to ``accounts`` (their migrations 0001): taken
out of this app's state only; the tables stay, with their rows."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("trials", "0002_profile"),
        ("core", "0001_initial"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="Profile"),
            ],
            database_operations=[],
        ),
    ]
