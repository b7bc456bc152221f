"""Benchmark: the daily visit reminder job on 100,000 and 1,000,000 scheduled visits.

    .venv/bin/python bench/daily_reminders.py                 # 100k then 1M, PostgreSQL
    .venv/bin/python bench/daily_reminders.py --sizes 20000   # a quick look

Needs a PostgreSQL server: ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` when it is a
PostgreSQL URL, names it (default ``postgres://postgres@127.0.0.1:5432/ctms``); only the server
is used: the benchmark works in a database of its own,
``ctms_bench_visits`` on that server, which it drops, creates and migrates, and drops again at
the end (``--keep`` keeps it). Nothing else is touched.

The data is what a large academic trial portfolio looks like to the job: both shipped trials,
200 sites (100 per trial) with a coordinator and an investigator each, participants randomised
uniformly over the last three years, each with the schedule the real planner
(``scheduling.services.plan_schedule``) makes for their arm, anchors recorded a week into
their window. Visits whose window closed more than a month ago are done (92 %), missed (3 %)
or left overdue (5 %); later ones are planned. Rows go in with COPY, participants first; the
job never reads allocations, CRFs or history, so none are written.

Timed: the job exactly as beat runs it (``patients.tasks.send_visit_reminders``, tasks eager
so every digest is built and sent in this one process, e-mail to memory): a first run, which
also catches up on every visit overdue in the last 90 days; a second run the same day (which
must send nothing); the next day's run (the steady state). Then the first run's parts are
timed one by one. The target is under 10 s at one million visits, growing no faster than
linearly.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "ctms_bench_visits"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/ctms"
SITES_PER_TRIAL = 100
YEARS = 3


def bench_url(base: str) -> str:
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"DATABASE_URL must point at PostgreSQL (got {parts.scheme!r}).")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def recreate_database(url: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def drop_database(url: str) -> None:
    import psycopg

    admin = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def setup_django(url: str) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=url,
                      DEBUG="false", CELERY_BROKER_URL="", EMAIL_URL="memorymail://",
                      LOG_LEVEL="WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_protocol", stdout=open(os.devnull, "w"))


class Fixture:
    """Trials, sites, staff: what every size shares."""

    def __init__(self):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.hashers import make_password

        from trials.models import Membership, Site, Trial

        User = get_user_model()
        self.trials = list(Trial.objects.select_related("current_version").order_by("slug"))
        self.sites: dict[int, list] = {}
        password = make_password(None)
        for trial in self.trials:
            Site.objects.bulk_create([Site(trial=trial, code=f"BENCH-{n:03d}",
                                           name=f"Bench site {n}") for n in range(SITES_PER_TRIAL)])
            sites = list(Site.objects.filter(trial=trial, code__startswith="BENCH-"))
            self.sites[trial.pk] = sites
            users = User.objects.bulk_create([
                User(username=f"{trial.slug}-{site.code}-{role}", email=f"{role}@{site.code}.test",
                     password=password)
                for site in sites for role in ("coordinator", "investigator")])
            Membership.objects.bulk_create([
                Membership(user=user, trial=trial, site=sites[i // 2],
                           role="coordinator" if i % 2 == 0 else "investigator")
                for i, user in enumerate(users)])
        self.creator = User.objects.create(username="bench", password=password)
        self.next_number = 0


def fill(fixture: Fixture, visits_wanted: int, today: dt.date, rng: random.Random) -> int:
    """Add participants with their schedules until ``visits_wanted`` more visits exist."""
    from django.db import connection
    from django.utils import timezone

    from crfs.facts import Facts, RANDOMISATION
    from scheduling.services import plan_schedule

    now = timezone.now()
    participants, visits = [], []
    added = 0
    while added < visits_wanted:
        trial = fixture.trials[fixture.next_number % len(fixture.trials)]
        definition = trial.current_version.definition
        arm = definition["arms"][rng.randrange(len(definition["arms"]))]["code"]
        site = rng.choice(fixture.sites[trial.pk])
        randomised_on = today - dt.timedelta(days=rng.randrange(365 * YEARS))
        anchors = {RANDOMISATION: randomised_on}
        for anchor in definition.get("anchors", []):
            day = randomised_on + dt.timedelta(days=rng.randrange(3, 18))
            if day <= today and rng.random() < 0.9:
                anchors[anchor["code"]] = day
        plan = plan_schedule(definition, arm, Facts(randomised_on, anchors, {}))
        fixture.next_number += 1
        study_id = f"B{fixture.next_number:08d}"
        participants.append((trial.pk, site.pk, study_id, trial.current_version_id, "randomised",
                             randomised_on - dt.timedelta(days=10), randomised_on, "1.0", now,
                             fixture.creator.pk))
        for p in plan[:max(0, visits_wanted - added)]:
            w = p.window
            status, done_on = "planned", None
            if w.closes < today - dt.timedelta(days=30):
                draw = rng.random()
                if draw < 0.92:
                    status = "done"
                    span = (w.closes - w.opens).days
                    done_on = w.opens + dt.timedelta(days=rng.randrange(span + 1))
                elif draw < 0.95:
                    status = "missed"
            visits.append((study_id, p.code, p.label, p.occurrence, p.anchor_code, p.anchor_date,
                           w.target, w.opens, w.closes, status, done_on, "", "",
                           json.dumps(list(p.crfs)), False, now, now))
            added += 1
    raw = connection.connection  # the psycopg connection under Django's
    with raw.cursor() as cursor:
        with cursor.copy("COPY patients_participant (trial_id, site_id, study_id, "
                         "protocol_version_id, status, screened_on, consent_date, consent_version, "
                         "created_at, created_by_id) FROM STDIN") as copy:
            for row in participants:
                copy.write_row(row)
        cursor.execute("SELECT study_id, id FROM patients_participant WHERE study_id = ANY(%s)",
                       [[row[2] for row in participants]])
        ids = dict(cursor.fetchall())
        with cursor.copy("COPY patients_visit (participant_id, code, label, occurrence, "
                         "anchor_code, anchor_date, target_date, window_opens, window_closes, "
                         "status, done_on, status_reason, closed_by, crfs, unscheduled, "
                         "created_at, updated_at) FROM STDIN") as copy:
            for row in visits:
                copy.write_row((ids[row[0]],) + row[1:])
        # What autovacuum does on a live server after such a load: fresh planner statistics.
        cursor.execute("ANALYZE")
    raw.commit()
    return len(participants)


def reset_reminders() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE patients_reminderdelivery, patients_visitreminder")


def time_job(today: dt.date) -> dict:
    from django.core import mail
    from django.db import connection

    from patients import reminders, tasks
    from patients.models import ReminderDelivery, Visit, VisitReminder

    mail.outbox = []
    timings = {}
    start = time.perf_counter()
    result = tasks.send_visit_reminders.apply(args=[today.isoformat()]).get()
    timings["job_s"] = round(time.perf_counter() - start, 2)
    timings["digests_sent"] = len(mail.outbox)
    timings.update(result)
    # The same job again, the same day: finds nothing new, sends nothing.
    start = time.perf_counter()
    tasks.send_visit_reminders.apply(args=[today.isoformat()]).get()
    timings["second_run_s"] = round(time.perf_counter() - start, 2)
    timings["second_run_digests"] = len(mail.outbox) - timings["digests_sent"]
    # The next morning: the steady state, only what crossed a threshold overnight.
    sent = len(mail.outbox)
    start = time.perf_counter()
    next_day = tasks.send_visit_reminders.apply(
        args=[(today + dt.timedelta(days=1)).isoformat()]).get()
    timings["next_day_s"] = round(time.perf_counter() - start, 2)
    timings["next_day_reminders"] = next_day["reminders"]
    timings["next_day_digests"] = len(mail.outbox) - sent
    # Where the first run's time goes, measured on a fresh copy of the reminder tables.
    reset_reminders()
    mail.outbox = []
    from django.db import transaction
    from django.utils import timezone

    now = timezone.now()
    with transaction.atomic():
        start = time.perf_counter()
        reminders.detect(today, now=now)
        timings["detect_s"] = round(time.perf_counter() - start, 2)
        start = time.perf_counter()
        reminders.fan_out(now)
        timings["fan_out_s"] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    for user_id in reminders.recipients_waiting():
        reminders.send_digest(user_id, today=today, token="bench")
    timings["digests_s"] = round(time.perf_counter() - start, 2)
    timings["visits"] = Visit.objects.count()
    timings["planned"] = Visit.objects.filter(status="planned").count()
    timings["reminder_rows"] = VisitReminder.objects.count()
    timings["delivery_rows"] = ReminderDelivery.objects.count()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('patients_visit'))")
        timings["visit_table"] = cursor.fetchone()[0]
    reset_reminders()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000],
                        help="visit counts to time, ascending (default: 100000 1000000)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    url = bench_url(base if base.startswith("postgres") else DEFAULT_SERVER)
    recreate_database(url)
    try:
        setup_django(url)
        from django.utils import timezone

        today = timezone.localdate()
        rng = random.Random(args.seed)
        fixture = Fixture()
        rows, have = [], 0
        for size in sorted(args.sizes):
            start = time.perf_counter()
            fill(fixture, size - have, today, rng)
            have = size
            fill_s = round(time.perf_counter() - start, 1)
            result = {"size": size, "fill_s": fill_s, **time_job(today)}
            rows.append(result)
            print(f"{size:>9,} visits ({result['planned']:,} planned): job {result['job_s']} s "
                  f"[detect {result['detect_s']} s, fan-out {result['fan_out_s']} s, "
                  f"{result['digests_sent']} digests {result['digests_s']} s] — "
                  f"{result['reminders']:,} reminders, {result['deliveries']:,} deliveries; "
                  f"second run {result['second_run_s']} s, {result['second_run_digests']} sent; "
                  f"next day {result['next_day_s']} s ({result['next_day_reminders']:,} "
                  f"reminders, {result['next_day_digests']} digests); "
                  f"(fill {fill_s} s, table {result['visit_table']})", flush=True)
        if len(rows) > 1:
            a, b = rows[0], rows[-1]
            growth = (b["job_s"] / a["job_s"]) / (b["size"] / a["size"])
            print(f"time ratio / size ratio = {growth:.2f} (≤ 1: no worse than linear)")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "daily_reminders.json").write_text(json.dumps(rows, indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
