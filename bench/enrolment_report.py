"""Benchmark: the enrolment report PDF for 100,000 participants over 50 sites.

    .venv/bin/python bench/enrolment_report.py                  # 100,000 participants
    .venv/bin/python bench/enrolment_report.py --participants 20000 --keep

Needs a PostgreSQL server: ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` when it is a
PostgreSQL URL, else ``postgres://postgres@127.0.0.1:5432/ctms``; it works in a database of
its own, ``ctms_bench_reports``, which it creates, migrates and drops at the end (``--keep``
keeps it).

Data, inserted set-wise on the server (``INSERT … SELECT`` over ``generate_series``, no row
built in Python): the REMINET protocol with 50 sites (site sizes skewed, as in real trials)
and a target of 120,000; participants screened over four years, accrual rising: 8 % screen
failures, 4 % still in screening, the rest randomised (with allocations, 1:1) and now on
treatment, in follow-up, completed, withdrawn or dead. Six visits each (monthly), those past
done or, 5 %, overdue; one CRF expected per visit, entered for 90 % of the done ones; 2 % of
the CRFs carry an open query, 1 % of the visits a deviation.

Timed: the report built exactly as the Celery task builds it (``reports.services.build``,
claim, figures, charts, PDF, publish) for the blinded sponsor and for the unblinded
statistician, each in a fresh Python process, so that its peak memory (``ru_maxrss`` of the
child, read with ``wait4``) is the build's (Django's start included). Target: under 5 s and under 300 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "ctms_bench_reports"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/ctms"
SITES = 50


def bench_url(base: str) -> str:
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"DATABASE_URL must point at PostgreSQL (got {parts.scheme!r}).")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def setup_django(url: str, *, migrate: bool) -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=url,
                      DEBUG="false", CELERY_BROKER_URL="", EMAIL_URL="memorymail://",
                      LOG_LEVEL="WARNING")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("load_protocol", stdout=open(os.devnull, "w"))


def fill(n: int) -> dict:
    """The trial, its people and ``n`` participants with their history, in a few statements."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from randomisation.models import AllocationList
    from trials.models import Membership, Site, Trial

    User = get_user_model()
    trial = Trial.objects.get(slug="reminet")
    Trial.objects.filter(pk=trial.pk).update(target_enrolment=120_000)
    Site.objects.filter(trial=trial).update(active=False)
    Site.objects.bulk_create([Site(trial=trial, code=f"FR-{i:02d}", name=f"Centre {i:02d}",
                                   city="Paris") for i in range(1, SITES + 1)])
    sites = list(Site.objects.filter(trial=trial, code__startswith="FR-")
                 .order_by("code").values_list("pk", flat=True))
    creator = User.objects.create(username="bench-coordinator")
    sponsor = User.objects.create(username="sponsor", first_name="Sophie", last_name="Sponsor")
    statistician = User.objects.create(username="statistician", first_name="Stéphane",
                                       last_name="Statistician")
    Membership.objects.create(user=sponsor, trial=trial, role="sponsor")
    Membership.objects.create(user=statistician, trial=trial, role="statistician")
    alist = AllocationList.objects.create(
        trial=trial, protocol_version=trial.current_version, number=1, method="permuted_blocks",
        source="generated", seed="bench", status="active", created_by=creator)
    arms = list(trial.arms.order_by("position").values_list("pk", flat=True))
    params = {"trial": trial.pk, "version": trial.current_version_id, "n": n, "sites": sites,
              "user": creator.pk, "list": alist.pk, "arm_a": arms[0], "arm_b": arms[1]}
    timings = {}
    with connection.cursor() as c:
        def run(label: str, sql: str) -> None:
            start = time.perf_counter()
            c.execute(sql, params)
            timings[label] = round(time.perf_counter() - start, 2)

        # Participant g: screened d days ago (rising accrual: more recent days more likely);
        # the site skewed towards the first ones; the status drawn from a fixed mix.
        run("participants", """
            INSERT INTO patients_participant (trial_id, site_id, study_id, protocol_version_id,
                status, screened_on, consent_date, consent_version, created_at, created_by_id)
            SELECT %(trial)s, (%(sites)s::int[])[1 + floor(50 * power(random(), 1.6))::int],
                   'B' || lpad(g::text, 7, '0'), %(version)s,
                   CASE WHEN r < 0.08 THEN 'screen_failed' WHEN r < 0.12 THEN 'screened'
                        WHEN r < 0.17 THEN 'withdrawn' WHEN r < 0.20 THEN 'dead'
                        WHEN r < 0.26 THEN 'completed' WHEN r < 0.60 THEN 'follow_up'
                        ELSE 'on_treatment' END,
                   current_date - d, current_date - d, '1.0', now(), %(user)s
            FROM (SELECT g, random() AS r,
                         floor(1460 * (1 - sqrt(random())))::int AS d
                  FROM generate_series(1, %(n)s) AS g) AS s
            ORDER BY g""")
        # A screened-only participant was screened lately; a randomised one is 7 days later.
        run("screening", """
            UPDATE patients_participant SET screened_on = current_date - (id %% 20)::int,
                   consent_date = current_date - (id %% 20)::int
            WHERE trial_id = %(trial)s AND status = 'screened'""")
        run("allocations", """
            INSERT INTO randomization_allocation (participant_id, trial_id, allocation_list_id,
                stratum_key, strata, arm_id, kit_code, randomised_at, randomised_by_id)
            SELECT p.id, %(trial)s, %(list)s, 'site=' || p.site_id, '{}'::jsonb,
                   CASE WHEN p.id %% 2 = 0 THEN %(arm_a)s ELSE %(arm_b)s END,
                   'K' || p.id, least(p.screened_on + 7, current_date)::timestamp AT TIME ZONE 'UTC'
                                + interval '10 hours',
                   %(user)s
            FROM patients_participant p
            WHERE p.trial_id = %(trial)s
              AND p.status NOT IN ('screened', 'screen_failed')""")
        run("visits", """
            INSERT INTO patients_visit (participant_id, code, label, occurrence, anchor_code,
                anchor_date, target_date, window_opens, window_closes, status, done_on,
                status_reason, closed_by, crfs, unscheduled, created_at, updated_at)
            SELECT participant_id, 'assessment', 'Assessment', k, 'randomisation', day,
                   day + 30 * k, day + 30 * k - 3, day + 30 * k + 3,
                   CASE WHEN done THEN 'done' ELSE 'planned' END,
                   CASE WHEN done THEN day + 30 * k END,
                   '', '', '["tumour_assessment"]'::jsonb, false, now(), now()
            FROM (SELECT a.participant_id, a.randomised_at::date AS day, k,
                         a.randomised_at::date + 30 * k + 3 < current_date
                         AND random() > 0.05 AS done
                  FROM randomization_allocation a
                  CROSS JOIN generate_series(1, 6) AS k
                  WHERE a.trial_id = %(trial)s) AS s""")
        run("crfs", """
            INSERT INTO outcomes_crfrecord (participant_id, crf_code, visit_id,
                protocol_version_id, data, status, ever_completed, created_at, created_by_id,
                updated_at, updated_by_id)
            SELECT v.participant_id, 'tumour_assessment', v.id, %(version)s, '{}'::jsonb,
                   CASE WHEN random() < 0.8 THEN 'complete' ELSE 'draft' END, false,
                   now(), %(user)s, now(), %(user)s
            FROM patients_visit v WHERE v.status = 'done' AND random() < 0.9""")
        run("queries", """
            INSERT INTO outcomes_dataquery (record_id, field_path, status, check_code,
                raised_at, raised_by_id)
            SELECT id, 'assessment_date', 'open', '', now(), %(user)s
            FROM outcomes_crfrecord WHERE random() < 0.02""")
        run("deviations", """
            INSERT INTO patients_deviation (participant_id, visit_id, rule, days_outside,
                description, detected_at, detected_by_id, void_reason)
            SELECT participant_id, id, 'visit_window', 5, 'Visit done 5 days late', now(),
                   %(user)s, ''
            FROM patients_visit WHERE status = 'done' AND random() < 0.01""")
        run("analyze", "ANALYZE")
        c.execute("SELECT (SELECT count(*) FROM patients_participant WHERE trial_id = %(trial)s),"
                  " (SELECT count(*) FROM randomization_allocation),"
                  " (SELECT count(*) FROM patients_visit),"
                  " (SELECT count(*) FROM outcomes_crfrecord)", params)
        counts = dict(zip(["participants", "randomised", "visits", "crf_records"], c.fetchone()))
    return {"trial": trial.pk, "sponsor": sponsor.pk, "statistician": statistician.pk,
            "fill": timings, **counts}


def build_one(url: str, trial_id: int, user_id: int, out: str) -> None:
    """In the child process: request and build one report as the task does; print timings."""
    start = time.perf_counter()
    setup_django(url, migrate=False)
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from reports import services as reports
    from reports.models import ReportRequest
    from trials.models import Trial

    user = get_user_model().objects.get(pk=user_id)
    trial = Trial.objects.get(pk=trial_id)
    report = ReportRequest.objects.create(trial=trial, kind="enrolment", requested_by=user,
                                          requested_at=timezone.now())
    ready = time.perf_counter()
    outcome = reports.build(report.pk, token=f"bench-{report.pk}")
    done = time.perf_counter()
    report.refresh_from_db()
    Path(out).write_bytes(bytes(report.content or b""))
    print(json.dumps({"outcome": outcome, "error": report.error, "build_s": done - ready,
                      "startup_s": ready - start, "bytes": report.size}))


def measure(url: str, trial_id: int, user_id: int, out: Path) -> dict:
    """Build in a child process; its own peak RSS comes from wait4 (``ru_maxrss``, kB)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, __file__, "--build-one", url, str(trial_id),
                              str(user_id), str(out)], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT)
    stdout = child.stdout.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise SystemExit(f"the build process failed (exit {child.returncode})")
    peak_kb = usage.ru_maxrss
    figures = json.loads(stdout.strip().splitlines()[-1])
    if figures["outcome"] != "done":
        raise SystemExit(f"build failed: {figures['error']}")
    return {"build_s": round(figures["build_s"], 2), "process_s": round(wall, 2),
            "startup_s": round(figures["startup_s"], 2),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "pdf_kb": round(figures["bytes"] / 1024, 1)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--build-one":
        build_one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2, help="builds per reader (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    url = bench_url(base if base.startswith("postgres") else DEFAULT_SERVER)
    sys.path.insert(0, str(ROOT / "bench"))
    from common import drop_database, recreate_database

    recreate_database(url)
    try:
        setup_django(url, migrate=True)
        start = time.perf_counter()
        data = fill(args.participants)
        fill_s = round(time.perf_counter() - start, 1)
        print(f"{data['participants']:,} participants ({data['randomised']:,} randomised, "
              f"{data['visits']:,} visits, {data['crf_records']:,} CRFs) over {SITES} sites, "
              f"inserted in {fill_s} s", flush=True)
        from django.db import connections

        connections.close_all()
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        rows = []
        for reader in ("sponsor", "statistician"):
            for run in range(args.runs):
                pdf = out_dir / f"enrolment_report_{reader}.pdf"
                row = {"reader": reader, "run": run + 1,
                       **measure(url, data["trial"], data[reader], pdf)}
                rows.append(row)
                verdict = "OK" if row["build_s"] < 5 and row["peak_rss_mb"] < 300 else "OVER"
                print(f"{reader:>12} run {run + 1}: build {row['build_s']} s (whole process "
                      f"{row['process_s']} s, of which Django start {row['startup_s']} s), "
                      f"peak RSS {row['peak_rss_mb']} MB, PDF {row['pdf_kb']} kB "
                      f"[{verdict}]", flush=True)
        (out_dir / "enrolment_report.json").write_text(json.dumps(
            {"data": data, "fill_s": fill_s, "builds": rows}, indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
