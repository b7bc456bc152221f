"""Joins the data monitoring committee's role (0010_dmc_role) and the trial and site freeze and
lock (0010_trial_site_lock), made side by side."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("trials", "0010_dmc_role"),
        ("trials", "0010_trial_site_lock"),
    ]

    operations = []
