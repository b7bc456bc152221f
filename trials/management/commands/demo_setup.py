"""Fill an empty database with the demo: both protocols, one user per role, participants.

Safe to run again: what exists is kept. Never run against a production database: it creates
accounts with a published password (the command refuses when DEBUG is off).
"""
import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from patients.models import Participant
from patients.services import register_participant
from trials.models import Membership, Role, Trial

DEMO_PASSWORD = "demo-trials-2026"

# username, role, site index (None = all sites), full name
DEMO_USERS = [
    ("investigator", Role.INVESTIGATOR, 0, "Irène Investigator"),
    ("investigator2", Role.INVESTIGATOR, 1, "Ines Investigator (second site)"),
    ("coordinator", Role.COORDINATOR, 0, "Camille Coordinator"),
    ("datamanager", Role.DATA_MANAGER, None, "Damien Data-Manager"),
    ("sponsor", Role.SPONSOR, None, "Sophie Sponsor"),
    ("statistician", Role.STATISTICIAN, None, "Stéphane Statistician"),
]


class Command(BaseCommand):
    help = "Load both trials and create demo users and participants (demo and development only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup creates accounts with a public password: DEBUG only.")
        call_command("load_protocol", stdout=self.stdout)
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True,
                                        "first_name": "Ada", "last_name": "Admin"})
        if created:
            admin.set_password(DEMO_PASSWORD)
            admin.save()
        trials = list(Trial.objects.order_by("slug"))
        for username, role, site_index, full_name in DEMO_USERS:
            first, _, last = full_name.partition(" ")
            user, created = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last,
                                             "email": f"{username}@demo.invalid"})
            if created:
                user.set_password(DEMO_PASSWORD)
                user.save()
            for trial in trials:
                sites = list(trial.sites.filter(active=True).order_by("code"))
                site = None if site_index is None else sites[site_index % len(sites)]
                Membership.objects.get_or_create(user=user, trial=trial, role=role, site=site)
        coordinator = User.objects.get(username="coordinator")
        today = timezone.localdate()
        for trial in trials:
            for site in trial.sites.filter(active=True):
                missing = 3 - Participant.objects.filter(site=site).count()
                for i in range(max(missing, 0)):
                    register_participant(trial, site, by=coordinator,
                                         screened_on=today - dt.timedelta(days=30 - 7 * i))
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready. Log in at http://127.0.0.1:8000/ with password {DEMO_PASSWORD!r} as "
            + ", ".join(["admin"] + [u for u, *_ in DEMO_USERS])))
