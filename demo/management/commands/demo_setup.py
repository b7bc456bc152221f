"""Fill an empty database with the demo: both protocols, one user per role, participants.

Safe to run again: what exists is kept. Never run against a production database: it creates
accounts with a published password (the command refuses when DEBUG is off).
"""
from base64 import b32decode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.services import create_demo_device
from demo.data import (consent_showcase, crf_showcase, monitoring_showcase, outcome_showcase,
                       populate,
                       rebaseline_showcase, report_showcase, safety_showcase,
                       screening_showcase, supply_showcase, supply_stock,
                       tumour_assessments_at_done_visits)
from supply.services import settings_of as supply_settings
from trials.models import Membership, Role, Trial
from trials.policy import requires_two_factor

DEMO_PASSWORD = "demo-trials-2026"
# The published second factor of the demo accounts that need one (admin, investigators,
# statistician, safety, supply, dmc): add it to any authenticator app, or
# `oathtool --totp -b SECRET`.
DEMO_TOTP_SECRET = "CTMSDEMOTWOFACTORSECRETKEYS2345X"

# username, role, site index (None = all sites), full name
DEMO_USERS = [
    ("investigator", Role.INVESTIGATOR, 0, "Irène Investigator"),
    ("investigator2", Role.INVESTIGATOR, 1, "Ines Investigator (second site)"),
    # The rectal trial has three sites; every site has an investigator who confirms its
    # participants' eligibility (REMINET's two sites: the third is its first again).
    ("investigator3", Role.INVESTIGATOR, 2, "Iris Investigator (third site)"),
    ("coordinator", Role.COORDINATOR, 0, "Camille Coordinator"),
    ("datamanager", Role.DATA_MANAGER, None, "Damien Data-Manager"),
    ("sponsor", Role.SPONSOR, None, "Sophie Sponsor"),
    # The clinical research associate of the first site: verifies CRFs against the source.
    ("monitor", Role.MONITOR, 0, "Maxime Monitor"),
    ("statistician", Role.STATISTICIAN, None, "Stéphane Statistician"),
    ("safety", Role.SAFETY_OFFICER, None, "Sacha Safety-Officer"),
    # Only in the trials that dispense kits (REMINET): the rectal trial has no product supply.
    ("supply", Role.SUPPLY_MANAGER, None, "Sam Supply-Manager"),
    # The data monitoring committee: reads the closed reports (comparisons between arms).
    ("dmc", Role.DMC, None, "Dominique DMC-Member"),
]


# Participants per site of the demo's follow-up cohort (demo.data.outcome_showcase).
OUTCOME_COHORT = {"rectal-resection": 6, "reminet": 8}


class Command(BaseCommand):
    help = "Load both trials and create demo users and participants (demo and development only)."

    def handle(self, *args, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup creates accounts with a public password: DEBUG only.")
        call_command("load_ctcae", stdout=self.stdout)
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
                if role == Role.SUPPLY_MANAGER and supply_settings(trial) is None:
                    continue
                sites = list(trial.sites.filter(active=True).order_by("code"))
                site = None if site_index is None else sites[site_index % len(sites)]
                Membership.objects.get_or_create(user=user, trial=trial, role=role, site=site)
        # The demo's participants are registered by an all-sites coordinator account that
        # nobody can log in with (no usable password), so every site has its own participants.
        system, created = User.objects.get_or_create(
            username="demo-data", defaults={"first_name": "Demo", "last_name": "Data"})
        if created:
            system.set_unusable_password()
            system.save()
        statistician = User.objects.get(username="statistician")
        # Three randomised per rectal site, so the first site has both arms (and an arm A
        # participant whose surgery date schedules the post-operative visits).
        plans = {"rectal-resection": {"randomised": 3, "ready": 1, "screened": 1},
                 "reminet": {"randomised": 5, "ready": 1, "screened": 1}}
        investigator_names = [u for u, role, *_ in DEMO_USERS if role == Role.INVESTIGATOR]
        for trial in trials:
            Membership.objects.get_or_create(user=system, trial=trial, role=Role.COORDINATOR,
                                             site=None)
            # Who confirms eligibility at each site: its demo investigator (the first listed).
            investigators = {}
            for m in (Membership.objects.filter(trial=trial, role=Role.INVESTIGATOR,
                                                user__username__in=investigator_names)
                      .select_related("user").order_by("user__username")):
                investigators.setdefault(m.site_id, (m.user, DEMO_PASSWORD))
            plan = plans.get(trial.slug, {"randomised": 2, "ready": 1, "screened": 1})
            # Where the protocol dispenses kits (REMINET): a sealed kit list and every site's
            # stock before the first randomisation, which assigns the first kit.
            for line in supply_stock(
                    trial, statistician=statistician, manager=User.objects.get(username="supply"),
                    receivers={site.pk: (User.objects.get(username="coordinator")
                                         if index == 0 else system)
                               for index, site in enumerate(
                                   trial.sites.filter(active=True).order_by("code"))}):
                self.stdout.write(line)
            for line in populate(trial, coordinator=system, statistician=statistician,
                                 per_site=plan, investigators=investigators,
                                 statistician_password=DEMO_PASSWORD):
                self.stdout.write(line)
            # CRFs complete, signed, locked and questioned at the first site (see crf_showcase).
            for line in crf_showcase(trial, investigator=User.objects.get(username="investigator"),
                                     data_manager=User.objects.get(username="datamanager"),
                                     password=DEMO_PASSWORD):
                self.stdout.write(line)
            # Forms verified against the source, a verified weight changed since, a monitoring
            # visit (see monitoring_showcase).
            for line in monitoring_showcase(trial, monitor=User.objects.get(username="monitor"),
                                            investigator=User.objects.get(username="investigator")):
                self.stdout.write(line)
            # Outcomes: an older cohort with progressions, deaths, adverse events and
            # Clavien-Dindo grades, and tumour assessments at every visit done (see
            # outcome_showcase), so the statistician's Outcomes page has curves at once.
            for line in outcome_showcase(trial, coordinator=system,
                                         per_site=OUTCOME_COHORT.get(trial.slug, 4),
                                         investigators=investigators):
                self.stdout.write(line)
            # An arm-A participant of the rectal trial re-baselined after surgery (the worked
            # case of docs/crfs.md), before the routine scans of the visits done.
            for line in rebaseline_showcase(trial,
                                            investigator=User.objects.get(username="investigator")):
                self.stdout.write(line)
            # SAE reports on time, overdue, late and a SUSAR (see safety_showcase).
            for line in safety_showcase(trial,
                                        investigator=User.objects.get(username="investigator"),
                                        officer=User.objects.get(username="safety"),
                                        password=DEMO_PASSWORD):
                self.stdout.write(line)
            count = tumour_assessments_at_done_visits(trial, by=system)
            if count:
                self.stdout.write(f"{trial.slug}: {count} tumour assessments entered")
            # A withdrawal at each level; REMINET amended, with re-consents pending.
            for line in consent_showcase(trial, coordinator=system):
                self.stdout.write(line)
            # Screening log, screen failures, a re-screening, a randomised in error (issue 17).
            for line in screening_showcase(
                    trial, coordinator=system,
                    data_manager=User.objects.get(username="datamanager")):
                self.stdout.write(line)
            # A replacement kit, a temperature excursion and the resupply request it raises.
            for line in supply_showcase(trial, coordinator=User.objects.get(username="coordinator"),
                                        investigator=User.objects.get(username="investigator")):
                self.stdout.write(line)
        # Reports last, so that they count everything above (see report_showcase).
        for trial in trials:
            for line in report_showcase(trial, sponsor=User.objects.get(username="sponsor"),
                                        statistician=statistician):
                self.stdout.write(line)
        # Demo accounts whose role requires two factors get a device with the published secret.
        for user in User.objects.filter(username__in=["admin"] + [u for u, *_ in DEMO_USERS]):
            if requires_two_factor(user):
                create_demo_device(user, b32decode(DEMO_TOTP_SECRET).hex())
        self.stdout.write(
            f"Two-factor code for admin, investigators, statistician, safety and supply: secret "
            f"{DEMO_TOTP_SECRET} (any authenticator app, `oathtool --totp -b "
            f"{DEMO_TOTP_SECRET}`, or `manage.py demo_totp_code USERNAME`)")
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready. Log in at http://127.0.0.1:8000/ with password {DEMO_PASSWORD!r} as "
            + ", ".join(["admin"] + [u for u, *_ in DEMO_USERS])))
