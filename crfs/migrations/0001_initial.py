"""CRF records, signatures, queries and their history move here from ``outcomes``: the models only.
Their tables keep their names (``outcomes_crfrecord``, …), rows, indexes, constraints and PostgreSQL
triggers; the content types follow."""
import django.db.models.deletion
import simple_history.models
from django.conf import settings
from django.db import migrations, models


MODELS = ["crfrecord", "historicalcrfrecord", "crfsignature", "dataquery", "historicaldataquery", "querymessage"]


def move_content_types(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="outcomes", model__in=MODELS).update(app_label="crfs")


def move_content_types_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="crfs", model__in=MODELS).update(app_label="outcomes")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('outcomes', '0005_report_requests'),
        ('patients', '0005_schedule_planning_horizon'),
        ('trials', '0003_audit_log_and_profile_moved'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='CRFRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('crf_code', models.CharField(max_length=64)),
                        ('data', models.JSONField(default=dict)),
                        ('status', models.CharField(choices=[('draft', 'Draft'), ('complete', 'Complete'), ('signed', 'Signed'), ('locked', 'Locked')], default='draft', max_length=10)),
                        ('ever_completed', models.BooleanField(default=False, help_text='Once true, every change needs a reason.')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('locked_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('locked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('participant', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='crf_records', to='patients.participant')),
                        ('protocol_version', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='trials.protocolversion')),
                        ('updated_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('visit', models.ForeignKey(blank=True, help_text='Empty for forms not tied to a visit (eligibility, events such as progression or death).', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='crf_records', to='patients.visit')),
                    ],
                    options={
                        'db_table': 'outcomes_crfrecord',
                        'ordering': ['participant', 'crf_code', 'created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='DataQuery',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('field_path', models.CharField(help_text="The answer questioned: 'weight_kg', 'events[1].grade'.", max_length=255)),
                        ('status', models.CharField(choices=[('open', 'Open: awaiting an answer'), ('answered', 'Answered: awaiting review'), ('closed', 'Closed')], default='open', max_length=10)),
                        ('check_code', models.CharField(blank=True, help_text='For automatic queries: the failed edit check.', max_length=64)),
                        ('raised_at', models.DateTimeField()),
                        ('closed_at', models.DateTimeField(blank=True, null=True)),
                        ('closed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('raised_by', models.ForeignKey(blank=True, help_text='Empty for automatic queries.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('record', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='queries', to='crfs.crfrecord')),
                    ],
                    options={
                        'verbose_name_plural': 'data queries',
                        'db_table': 'outcomes_dataquery',
                        'ordering': ['record', 'raised_at', 'pk'],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalCRFRecord',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('crf_code', models.CharField(max_length=64)),
                        ('data', models.JSONField(default=dict)),
                        ('status', models.CharField(choices=[('draft', 'Draft'), ('complete', 'Complete'), ('signed', 'Signed'), ('locked', 'Locked')], default='draft', max_length=10)),
                        ('ever_completed', models.BooleanField(default=False, help_text='Once true, every change needs a reason.')),
                        ('created_at', models.DateTimeField(blank=True, editable=False)),
                        ('updated_at', models.DateTimeField(blank=True, editable=False)),
                        ('locked_at', models.DateTimeField(blank=True, null=True)),
                        ('history_change_reason', models.TextField(null=True)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('created_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('locked_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('participant', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='patients.participant')),
                        ('protocol_version', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='trials.protocolversion')),
                        ('updated_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('visit', models.ForeignKey(blank=True, db_constraint=False, help_text='Empty for forms not tied to a visit (eligibility, events such as progression or death).', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='patients.visit')),
                    ],
                    options={
                        'verbose_name': 'historical crf record',
                        'verbose_name_plural': 'historical crf records',
                        'db_table': 'outcomes_historicalcrfrecord',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='CRFSignature',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('signed_at', models.DateTimeField()),
                        ('meaning', models.CharField(choices=[('accurate', 'I confirm these data are accurate and complete'), ('reviewed', 'Reviewed and approved')], max_length=16)),
                        ('printed_name', models.CharField(max_length=255)),
                        ('digest', models.CharField(help_text='SHA-256 of the content signed.', max_length=64)),
                        ('voided_at', models.DateTimeField(blank=True, null=True)),
                        ('void_reason', models.TextField(blank=True)),
                        ('record', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='signatures', to='crfs.crfrecord')),
                        ('signer', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('voided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('signed_version', models.ForeignKey(help_text='The history row of the content signed.', on_delete=django.db.models.deletion.PROTECT, related_name='+', to='crfs.historicalcrfrecord')),
                    ],
                    options={
                        'db_table': 'outcomes_crfsignature',
                        'ordering': ['record', 'signed_at', 'pk'],
                    },
                ),
                migrations.CreateModel(
                    name='HistoricalDataQuery',
                    fields=[
                        ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                        ('field_path', models.CharField(help_text="The answer questioned: 'weight_kg', 'events[1].grade'.", max_length=255)),
                        ('status', models.CharField(choices=[('open', 'Open: awaiting an answer'), ('answered', 'Answered: awaiting review'), ('closed', 'Closed')], default='open', max_length=10)),
                        ('check_code', models.CharField(blank=True, help_text='For automatic queries: the failed edit check.', max_length=64)),
                        ('raised_at', models.DateTimeField()),
                        ('closed_at', models.DateTimeField(blank=True, null=True)),
                        ('history_id', models.AutoField(primary_key=True, serialize=False)),
                        ('history_date', models.DateTimeField(db_index=True)),
                        ('history_change_reason', models.CharField(max_length=100, null=True)),
                        ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                        ('closed_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('raised_by', models.ForeignKey(blank=True, db_constraint=False, help_text='Empty for automatic queries.', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('record', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='crfs.crfrecord')),
                    ],
                    options={
                        'verbose_name': 'historical data query',
                        'verbose_name_plural': 'historical data queries',
                        'db_table': 'outcomes_historicaldataquery',
                        'ordering': ('-history_date', '-history_id'),
                        'get_latest_by': ('history_date', 'history_id'),
                    },
                    bases=(simple_history.models.HistoricalChanges, models.Model),
                ),
                migrations.CreateModel(
                    name='QueryMessage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('raised', 'raised'), ('answered', 'answered'), ('corrected', 'corrected the value'), ('closed', 'closed'), ('reopened', 're-opened')], max_length=10)),
                        ('at', models.DateTimeField()),
                        ('text', models.TextField()),
                        ('author', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('correction', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='crfs.historicalcrfrecord')),
                        ('query', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='messages', to='crfs.dataquery')),
                    ],
                    options={
                        'db_table': 'outcomes_querymessage',
                        'ordering': ['query', 'at', 'pk'],
                    },
                ),
                migrations.AddIndex(
                    model_name='crfrecord',
                    index=models.Index(fields=['participant', 'crf_code'], name='outcomes_cr_partici_e030e8_idx'),
                ),
                migrations.AddConstraint(
                    model_name='crfrecord',
                    constraint=models.UniqueConstraint(fields=('participant', 'crf_code', 'visit'), name='one_crf_per_visit'),
                ),
                migrations.AddConstraint(
                    model_name='crfrecord',
                    constraint=models.UniqueConstraint(condition=models.Q(('visit__isnull', True)), fields=('participant', 'crf_code'), name='one_crf_outside_visits'),
                ),
                migrations.AddIndex(
                    model_name='dataquery',
                    index=models.Index(condition=models.Q(('status', 'closed'), _negated=True), fields=['status'], name='query_unresolved'),
                ),
                migrations.AddConstraint(
                    model_name='crfsignature',
                    constraint=models.CheckConstraint(condition=models.Q(('voided_at__isnull', True), models.Q(('void_reason', ''), _negated=True), _connector='OR'), name='signature_void_has_reason'),
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(move_content_types, move_content_types_back),
    ]
