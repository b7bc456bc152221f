"""Load the shipped NCI-CTCAE term list, so every database (and every test database) has the
terms the protocols' adverse-event forms name. ``manage.py load_ctcae`` does the same later and
changes nothing while the file is unchanged (same digest)."""
from django.db import migrations


def load(apps, schema_editor):
    from trials.terminology import (read_terminology_file, shipped_terminology_codes,
                                    shipped_terminology_file, store_terminology)
    for code in shipped_terminology_codes():
        store_terminology(read_terminology_file(shipped_terminology_file(code)),
                          terminology_model=apps.get_model("trials", "Terminology"),
                          term_model=apps.get_model("trials", "Term"))


class Migration(migrations.Migration):

    dependencies = [
        ("trials", "0005_ctcae_terminology"),
    ]

    operations = [
        migrations.RunPython(load, migrations.RunPython.noop),
    ]
