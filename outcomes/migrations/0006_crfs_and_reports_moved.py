"""CRFs moved to ``crfs`` and report requests to ``reports`` (their migrations 0001): taken out of
this app's state only; the tables stay, with their rows."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('crfs', '0001_initial'),
        ('reports', '0001_initial'),
        ('outcomes', '0005_report_requests'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='dataquery',
                    name='record',
                ),
                migrations.RemoveField(
                    model_name='crfsignature',
                    name='record',
                ),
                migrations.RemoveField(
                    model_name='historicaldataquery',
                    name='record',
                ),
                migrations.RemoveField(
                    model_name='crfsignature',
                    name='signed_version',
                ),
                migrations.RemoveField(
                    model_name='crfsignature',
                    name='signer',
                ),
                migrations.RemoveField(
                    model_name='crfsignature',
                    name='voided_by',
                ),
                migrations.RemoveField(
                    model_name='dataquery',
                    name='closed_by',
                ),
                migrations.RemoveField(
                    model_name='dataquery',
                    name='raised_by',
                ),
                migrations.RemoveField(
                    model_name='querymessage',
                    name='query',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='created_by',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='history_user',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='locked_by',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='participant',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='protocol_version',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='updated_by',
                ),
                migrations.RemoveField(
                    model_name='historicalcrfrecord',
                    name='visit',
                ),
                migrations.RemoveField(
                    model_name='querymessage',
                    name='correction',
                ),
                migrations.RemoveField(
                    model_name='historicaldataquery',
                    name='closed_by',
                ),
                migrations.RemoveField(
                    model_name='historicaldataquery',
                    name='history_user',
                ),
                migrations.RemoveField(
                    model_name='historicaldataquery',
                    name='raised_by',
                ),
                migrations.RemoveField(
                    model_name='querymessage',
                    name='author',
                ),
                migrations.RemoveField(
                    model_name='reportrequest',
                    name='requested_by',
                ),
                migrations.RemoveField(
                    model_name='reportrequest',
                    name='trial',
                ),
                migrations.DeleteModel(
                    name='CRFRecord',
                ),
                migrations.DeleteModel(
                    name='CRFSignature',
                ),
                migrations.DeleteModel(
                    name='DataQuery',
                ),
                migrations.DeleteModel(
                    name='HistoricalCRFRecord',
                ),
                migrations.DeleteModel(
                    name='HistoricalDataQuery',
                ),
                migrations.DeleteModel(
                    name='QueryMessage',
                ),
                migrations.DeleteModel(
                    name='ReportRequest',
                ),
            ],
            database_operations=[],
        ),
    ]
