"""Report requests move here from ``outcomes``: the model only. Its table keeps its name
(``outcomes_reportrequest``), rows and indexes; the content type follows."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


MODELS = ["reportrequest"]


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="outcomes", model__in=MODELS).update(app_label="reports")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="reports", model__in=MODELS).update(app_label="outcomes")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('outcomes', '0005_report_requests'),
        ('trials', '0003_audit_log_and_profile_moved'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ReportRequest',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(max_length=32)),
                        ('requested_at', models.DateTimeField()),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Building'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('progress', models.PositiveSmallIntegerField(default=0, help_text='Percent done.')),
                        ('step', models.CharField(blank=True, help_text='What the builder is doing.', max_length=255)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                        ('claimed_by', models.CharField(blank=True, help_text='The Celery task id building it now.', max_length=64)),
                        ('heartbeat_at', models.DateTimeField(blank=True, help_text='Last sign of life of the build; a running build silent for longer than the lease is taken over (its worker died).', null=True)),
                        ('dispatched_at', models.DateTimeField(blank=True, help_text='Last handed to the broker; empty while Redis was unreachable (the periodic job hands it over).', null=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('error', models.TextField(blank=True)),
                        ('with_arms', models.BooleanField(help_text='Built showing arms (the requester was unblinded at build time).', null=True)),
                        ('site_ids', models.JSONField(blank=True, default=list, help_text='The sites the report covers.')),
                        ('filename', models.CharField(blank=True, max_length=255)),
                        ('content', models.BinaryField(blank=True, null=True)),
                        ('size', models.PositiveIntegerField(default=0)),
                        ('sha256', models.CharField(blank=True, max_length=64)),
                        ('requested_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('trial', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='report_requests', to='trials.trial')),
                    ],
                    options={
                        'db_table': 'outcomes_reportrequest',
                        'ordering': ['-requested_at', '-pk'],
                        'indexes': [models.Index(fields=['trial', 'requested_at'], name='report_by_trial'), models.Index(condition=models.Q(('status__in', ['queued', 'running'])), fields=['status'], name='report_unfinished')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
