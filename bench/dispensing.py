"""Benchmark: dispensing at an injection visit (issue 19), 50 sites and 20,000 kits.

    .venv/bin/python bench/dispensing.py                  # 1 then 4 clients
    .venv/bin/python bench/dispensing.py --clients 1,4,8 --requests 100 --keep

Needs a PostgreSQL server: ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` when it is a
PostgreSQL URL, names it (default ``postgres://postgres@127.0.0.1:5432/ctms``); only the server
is used: the benchmark works in a database of its own, ``ctms_bench_supply``, which it drops,
creates and migrates, and drops again at the end (``--keep`` keeps it). Nothing else is touched.

What it builds, through the services as the product does: REMINET with 50 active sites (its
two and 48 more), a coordinator per site; a kit list of 20,000 kits (lots of 20) generated and
sealed by the statistician; every site sent 200 kits of each arm by the supply manager (all
20,000 kits) and each shipment received by the site's coordinator; ``--participants`` (default
4 a site) consented, eligible, confirmed and randomised (which assigns the first kit), their
first injection given (visit done, injection form with that kit), so that each has the 28-day
injection visits of the whole follow-up planned, without kits.

Timed: the kit assignment at an injection visit, as the visit page's "Assign kit" and the API's
POST do it (both call ``randomisation.services.assign_kit``): each timed operation is what such
a POST does in its request, with the database behaviour of the deployment that
bench/randomise_http.py measures (``ATOMIC_REQUESTS`` off, persistent connections:
``DATABASE_CONN_MAX_AGE=600``): load the logged-in user, load the visit with its
participant, trial and site, then ``assign_kit`` (permission check, the allocation read, the
site's kits of the arm locked and the earliest suitable one assigned, its event written, in
one transaction), then the commit hook. By default Celery tasks run eagerly (no broker): the
site's stock check that production queues to the worker after the commit
(``supply.check_site_stock``, ``supply.resupply.levels``) runs here inside the operation and is
counted in its time, so the figures are an upper bound. ``--broker redis://…/12`` queues the
tasks to Redis as production does (no worker runs them; the database is emptied at the end):
what the person at the page waits for. HTTP (gunicorn, session, CSRF)
is not included: bench/randomise_http.py shows what it adds on this machine.

Each client is a process of its own with its own database connection; at N clients they start
together (a barrier), each taking the next injection visit of the participants it is given (a
participant is never served by two clients at once; clients serve every site, so sites are
shared between them). Latencies: p50/p95/p99. After the runs: every assigned visit has exactly
one current kit, no kit is assigned twice, every kit is of its participant's allocated arm.

Target (bench/README.md): p95 under 150 ms at 4 clients.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from common import drop_database, recreate_database

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "ctms_bench_supply"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/ctms"
SITES = 50
KITS = 20_000
LOT = 20
TARGET_P95_MS = 150


def bench_url(base: str) -> str:
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit(f"DATABASE_URL must point at PostgreSQL (got {parts.scheme!r}).")
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def settle(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def setup_django(url: str, broker: str = "") -> None:
    os.environ.update(DJANGO_SETTINGS_MODULE="config.settings.base", DATABASE_URL=url,
                      DEBUG="false", CELERY_BROKER_URL=broker, EMAIL_URL="memorymail://",
                      LOG_LEVEL="WARNING", DATABASE_CONN_MAX_AGE="600")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("load_protocol", stdout=open(os.devnull, "w"))


def build(per_site: int) -> dict:
    """The trial, its stock and its participants (see the module docstring): the ids the
    clients need."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from patients.models import Visit
    from randomisation import kitlist
    from randomisation import services as randomisation
    from scheduling.services import record_visit_done, save_crf_and_replan
    from supply.services import current_assignment, dispatch_shipment, receive_shipment
    from tests import factories
    from trials.models import Membership, Site, Trial

    User = get_user_model()
    trial = Trial.objects.get(slug="reminet")
    have = trial.sites.filter(active=True).count()
    Site.objects.bulk_create([Site(trial=trial, code=f"BENCH-{n:03d}", name=f"Bench site {n}")
                              for n in range(SITES - have)])
    sites = list(trial.sites.filter(active=True).order_by("code"))
    assert len(sites) == SITES
    stat = User.objects.create_user("bench-stat", password=None)
    Membership.objects.create(user=stat, trial=trial, role="statistician")
    manager = User.objects.create_user("bench-supply", password=None)
    Membership.objects.create(user=manager, trial=trial, role="supply_manager")
    coordinators = {}
    for site in sites:
        user = User.objects.create_user(f"bench-coord-{site.code}".lower(), password=None)
        Membership.objects.create(user=user, trial=trial, role="coordinator", site=site)
        coordinators[site.pk] = user
    start = time.perf_counter()
    kit_list = kitlist.seal(kitlist.generate(
        trial, by=stat, kits=KITS, lot_size=LOT, seed="bench-kits",
        expires_on=timezone.localdate() + dt.timedelta(days=6 * 366)), by=stat)
    arms = list(trial.arms.order_by("position").values_list("code", flat=True))
    per_arm = KITS // len(arms) // SITES
    for site in sites:
        shipment = dispatch_shipment(trial, site=site, by=manager,
                                     quantities={arm: per_arm for arm in arms})
        receive_shipment(shipment, by=coordinators[site.pk], outcomes={})
    print(f"kit list #{kit_list.number}: {KITS:,} kits sealed and shipped to {SITES} sites "
          f"({per_arm} of each arm each) in {time.perf_counter() - start:.0f} s", flush=True)
    randomisation.seal_and_activate(randomisation.generate_list(trial, by=stat, seed="bench"),
                                    by=stat)
    start = time.perf_counter()
    participants = []
    levels = [("G1", "objective_response"), ("G1", "stable_disease"),
              ("G2", "objective_response"), ("G2", "stable_disease")]
    today = timezone.localdate()
    for i in range(per_site * SITES):
        site = sites[i % SITES]
        grade, response = levels[i % 4]
        by = coordinators[site.pk]
        p = factories.randomised(trial, site, by=by, tumour_grade=grade, l1_response=response)
        first = Visit.objects.get(participant=p, code="first_injection")
        record_visit_done(first, done_on=today, by=by)
        save_crf_and_replan(p, "injection", {
            "injection_date": today.isoformat(), "dose_given": True,
            "kit_code": current_assignment(first).kit.number}, by=by, complete=True, visit=first)
        participants.append({"id": p.pk, "user": by.pk, "visits": list(
            Visit.objects.filter(participant=p, code="injection").order_by("target_date")
            .values_list("pk", flat=True))})
    print(f"{len(participants)} participants randomised, first injection given, in "
          f"{time.perf_counter() - start:.0f} s", flush=True)
    return {"participants": participants}


def client(index: int, jobs: list[tuple[int, int]], barrier, queue) -> None:
    """One client: its own process and connection; ``jobs`` are (user id, visit id)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from patients.models import Visit
    from randomisation.services import assign_kit

    User = get_user_model()
    latencies, failures = [], []
    connection.ensure_connection()  # a worker's persistent connection, made before the start
    barrier.wait()
    for user_id, visit_id in jobs:
        start = time.perf_counter()
        try:
            user = User.objects.get(pk=user_id)  # the session's user, as each request loads it
            visit = Visit.objects.select_related("participant__trial", "participant__site").get(
                pk=visit_id)
            assign_kit(visit, by=user)
        except Exception as exc:  # counted, never hidden
            failures.append(f"visit {visit_id}: {type(exc).__name__}: {exc}")
        latencies.append(time.perf_counter() - start)
    connection.close()
    queue.put((index, latencies, failures))


def run(n: int, plan: dict, cursor: dict, requests: int) -> dict:
    """``n`` clients, ``requests`` assignments each, at once."""
    from django.db import connections

    participants = plan["participants"]
    jobs: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    for c in range(n):
        mine = participants[c::n]  # a participant is served by one client only
        k = 0
        while len(jobs[c]) < requests:
            p = mine[k % len(mine)]
            k += 1
            visits = p["visits"]
            if cursor[p["id"]] < len(visits):
                jobs[c].append((p["user"], visits[cursor[p["id"]]]))
                cursor[p["id"]] += 1
    connections.close_all()  # the children open their own
    ctx = multiprocessing.get_context("fork")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=client, args=(i, jobs[i], barrier, queue)) for i in range(n)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    wall = time.perf_counter() - start
    latencies = sorted(x for _, lat, _ in results for x in lat)
    failures = [f for _, _, fails in results for f in fails]
    q = statistics.quantiles(latencies, n=100)
    return {"clients": n, "requests": len(latencies), "per_second": round(len(latencies) / wall, 1),
            "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1),
            "p99_ms": round(q[98] * 1000, 1), "max_ms": round(latencies[-1] * 1000, 1),
            "failures": len(failures), "failure_examples": failures[:5]}


def check() -> dict:
    """Every assigned visit has one current kit, no kit twice, every kit of the right arm."""
    from django.db.models import Count, F

    from supply.models import Kit, KitAssignment, KitStatus

    current = KitAssignment.objects.filter(release__isnull=True)
    twice = current.values("kit").annotate(n=Count("pk")).filter(n__gt=1).count()
    two_kits = current.values("visit").annotate(n=Count("pk")).filter(n__gt=1).count()
    wrong_arm = current.exclude(kit__arm=F("participant__allocation__arm")).count()
    assigned = Kit.objects.filter(status__in=[KitStatus.ASSIGNED, KitStatus.DISPENSED]).count()
    out = {"assignments": current.count(), "kit_assigned_twice": twice,
           "visit_with_two_kits": two_kits, "wrong_arm": wrong_arm,
           "kits_assigned_or_dispensed": assigned}
    assert not (twice or two_kits or wrong_arm) and assigned == current.count(), out
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4", help="numbers of clients (default 1,4)")
    parser.add_argument("--requests", type=int, default=100,
                        help="assignments per client per run (default 100)")
    parser.add_argument("--participants-per-site", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--broker", default="", help=(
        "a Redis URL (e.g. redis://127.0.0.1:6379/12, a database of its own: emptied at the "
        "end): tasks are queued there, as in production, instead of run eagerly; no worker "
        "takes them, so the stock check after each commit is off the timed path"))
    args = parser.parse_args()
    base = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("DATABASE_URL", "")
    url = bench_url(base if base.startswith("postgres") else DEFAULT_SERVER)
    recreate_database(url)
    try:
        setup_django(url, args.broker)
        plan = build(args.participants_per_site)
        settle(url)
        cursor = {p["id"]: 0 for p in plan["participants"]}
        run(2, plan, cursor, 10)  # warm-up: plans cached, first connections made; not counted
        rows = []
        for n in (int(x) for x in args.clients.split(",")):
            row = run(n, plan, cursor, args.requests)
            rows.append(row)
            print(f"{n} client(s): {row['requests']} assignments, {row['per_second']}/s, "
                  f"p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, p99 {row['p99_ms']} ms, "
                  f"max {row['max_ms']} ms, {row['failures']} failures", flush=True)
        consistency = check()
        print(f"after the runs: {consistency}")
        at4 = next((r for r in rows if r["clients"] == 4), None)
        if at4 is not None:
            met = at4["p95_ms"] < TARGET_P95_MS and not at4["failures"]
            print(f"target p95 < {TARGET_P95_MS} ms at 4 clients: "
                  f"{'met' if met else 'NOT met'} ({at4['p95_ms']} ms)")
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        (out / "dispensing.json").write_text(json.dumps(
            {"sites": SITES, "kits": KITS, "participants": len(plan["participants"]),
             "celery": "queued to " + args.broker if args.broker else "eager",
             "runs": rows, "consistency": consistency}, indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url)
        if args.broker:
            import redis

            redis.Redis.from_url(args.broker).flushdb()  # the tasks queued, never run


if __name__ == "__main__":
    main()
