"""The audit log's entries say which site and which participant they concern (the audit log
page filters and scopes by them). Entries written before keep both empty: the table is
append-only (PostgreSQL refuses any UPDATE of it), so they are not back-filled and count as
trial-wide entries, shown to readers of every site only (docs/monitoring.md)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('core', '0001_initial'),
        ('trials', '0007_safety_officer_role'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='auditevent',
            name='site',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trials.site'),
        ),
        migrations.AddField(
            model_name='auditevent',
            name='study_id',
            field=models.CharField(blank=True, db_index=True, max_length=32),
        ),
        migrations.AddIndex(
            model_name='auditevent',
            index=models.Index(fields=['trial', '-at', '-id'], name='audit_trial_at'),
        ),
    ]
