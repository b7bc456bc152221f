"""Page latency and query counts at 100 and 10,000 participants, over HTTP.

    .venv/bin/python bench/pages.py                       # 100 then 10000 participants
    .venv/bin/python bench/pages.py --sizes 100 2000      # other sizes
    .venv/bin/python bench/pages.py --requests 100 --clients 1,4

For each size, on this machine only (127.0.0.1):
1. drops and creates its own PostgreSQL database on the local server, named after
   ``BENCH_DATABASE_URL`` (default ``postgres://postgres@127.0.0.1:5432/ctms_bench_pages``)
   with ``_SIZE`` appended (``ctms_bench_pages_100``…; dropped at the end unless ``--keep``),
   migrates it, loads the shipped
   protocols, creates the staff (a coordinator and an investigator per site, a data manager of
   both trials at all their sites, a statistician; all with one known password) and seals an
   allocation list per trial;
2. fills it with N randomised participants spread over both trials (half each) and their
   shipped sites (3 + 2). A few per site are made through the real services (screening,
   consent, eligibility CRF, ``randomise``, the demo's visit history, ``save_crf`` of every
   CRF at their done visits); the rest are replicated from them with ``bulk_create``:
   participant, allocation (no slot; unique kit codes in the blinded trial), the visits
   ``scheduling.services.plan_schedule`` gives for their arm and randomisation date (anywhere
   in the last three years), and a CRF record per CRF of every done visit, copying the
   template records' answers (dates set to the visit's day). Visits whose window closed more
   than two weeks ago are done (95 %), missed (3 %) or left overdue (2 %); more recent ones
   are done or overdue, open ones sometimes done already, later ones planned;
3. counts the SQL queries of each page in-process (``django.test.Client`` and
   ``CaptureQueriesContext``) for several participants and every role that can see the page;
4. starts gunicorn with the production settings (DEBUG off, persistent connections), logs a
   client in per user (session + CSRF, like a browser; investigators with their authenticator
   code, as two factors are required of them), and requests ``--requests`` times each
   page after a warm-up, first from 1 client, then from 4 concurrent ones: a random
   participant's page, one of their CRFs at a visit, the visit worklist of a random user's
   trial, a random participant's visit timeline, each as a random user allowed to see it
   (the site's coordinator or investigator, or the data manager of all sites; CRF entry is
   not for data managers). Every answer must be 200.

All sizes are served at once (one gunicorn per size) and every page's requests go in
``--rounds`` blocks alternating between the sizes, so that load from anything else running on
the machine weighs on every size alike: the ratio between sizes is what the issue asks about.

Prints page, size, clients, p50/p95/p99 ms, queries; the ratio p50(largest)/p50(smallest)
per page (target ≤ 1.5) and whether p95 < 150 ms; writes ``bench/results/pages.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from common import (PASSWORD, Client, drop_database, free_port, recreate_database,
                    second_factor, sh)

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/ctms_bench_pages"
PAGES = ["participant", "crf", "worklist", "timeline"]
TEMPLATE_DAYS_AGO = [300, 120, 40]  # templates per site, made through the real services
P95_TARGET_MS = 150
RATIO_TARGET = 1.5


# ============================================================================ orchestration
# (no Django in this process: each size's data is made by a child process, ``--fill``)


class Work:
    """Draws the requests: a random participant (or trial) and a user allowed to see it."""

    def __init__(self, made: dict, seed: int):
        self.rng = random.Random(seed)
        self.participants = made["participants"]
        self.users = made["users"]
        self.by_site: dict[tuple[str, str], list[dict]] = {}
        self.by_trial: dict[str, list[dict]] = {}
        for u in self.users:
            if u["role"] not in ("coordinator", "investigator", "data_manager"):
                continue
            for trial, site in u["scopes"]:
                self.by_trial.setdefault(trial, []).append(u)
                self.by_site.setdefault((trial, site), []).append(u)
        self.trials = sorted(self.by_trial)

    def _viewer(self, p: dict, *, enter: bool) -> dict:
        # Who may see it: the site's coordinator and investigator, and (not for CRF entry,
        # which data managers may not do) the data manager of all sites.
        site_users = self.by_site[(p["trial"], p["site"])]
        everyone = site_users if enter else site_users + self.by_site.get((p["trial"], None), [])
        return self.rng.choice(everyone)

    def draw(self, page: str) -> tuple[str, str, str]:
        """(username, role, path) of one request of ``page``."""
        if page == "worklist":
            trial = self.rng.choice(self.trials)
            user = self.rng.choice(self.by_trial[trial])
            return user["username"], user["role"], f"/trials/{trial}/visits/"
        p = self.rng.choice(self.participants)
        base = f"/trials/{p['trial']}/participants/{p['study_id']}/"
        user = self._viewer(p, enter=page == "crf")
        path = {"participant": base, "timeline": base + "visits/",
                "crf": f"{base}visits/{p['visit_id']}/crf/{p['crf']}/"}[page]
        return user["username"], user["role"], path


def run_block(port: int, sessions: dict[str, dict], jobs: list[list[tuple[str, str, str]]],
              max_seconds: float) -> tuple[list[tuple[float, str]], list[str], float]:
    """Each of ``len(jobs)`` threads sends its jobs one after another, on its own connections.
    Returns the (latency, role) samples, the failures and the wall time."""
    samples: list[tuple[float, str]] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(jobs))
    deadline = [0.0]

    def drive(my_jobs):
        clients = {name: Client(port, cookies) for name, cookies in sessions.items()}
        mine, bad = [], []
        barrier.wait()
        for username, role, path in my_jobs:
            if time.perf_counter() > deadline[0]:
                break
            start = time.perf_counter()
            status, body = clients[username].request("GET", path)
            mine.append((time.perf_counter() - start, role))
            if status != 200:
                bad.append(f"{path} as {username}: HTTP {status}")
        for c in clients.values():
            c.conn.close()
        with lock:
            samples.extend(mine)
            failures.extend(bad)

    threads = [threading.Thread(target=drive, args=(j,)) for j in jobs]
    start = time.perf_counter()
    deadline[0] = start + max_seconds
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return samples, failures, time.perf_counter() - start


def quantiles(latencies: list[float]) -> dict:
    if len(latencies) < 2:
        return {"n": len(latencies), "p50_ms": None, "p95_ms": None, "p99_ms": None}
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"n": len(latencies), "p50_ms": round(q[49] * 1000, 1),
            "p95_ms": round(q[94] * 1000, 1), "p99_ms": round(q[98] * 1000, 1)}


def summarise(samples: list[tuple[float, str]], failures: list[str], wall: float) -> dict:
    latencies = [s for s, _ in samples]
    return {"requests": len(latencies), "failures": len(failures),
            "first_failures": failures[:3], "seconds": round(wall, 2),
            "throughput_per_s": round(len(latencies) / wall, 1) if wall else None,
            **quantiles(latencies),
            "by_role": {role: quantiles([s for s, r in samples if r == role])
                        for role in sorted({r for _, r in samples})}}


class Server:
    """gunicorn with the production settings on a free port, against one size's database."""

    def __init__(self, env: dict, workers: int):
        self.port = free_port()
        self.process = subprocess.Popen(
            [PY, "-m", "gunicorn", "config.wsgi:application", "--bind",
             f"127.0.0.1:{self.port}", "--workers", str(workers), "--log-level", "warning",
             "--timeout", "120"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError("gunicorn did not start: "
                           + self.process.stderr.read().decode(errors="replace")[-2000:])

    def stop(self) -> str:
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err.decode(errors="replace").strip()


def server_env(env: dict, url: str) -> dict:
    return {**env, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "config.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(60), "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false", "DATABASE_CONN_MAX_AGE": "600",
            "EMAIL_URL": "consolemail://"}


def measure(args, runs: list[dict], servers: dict[int, Server]) -> None:
    """Time every page at every level, alternating between the sizes' servers in rounds, so
    that whatever else the machine does at a moment weighs on every size alike."""
    sessions, works = {}, {}
    for run in runs:
        size, port = run["size"], servers[run["size"]].port
        sessions[size] = {}
        for user in run["made"]["users"]:
            if user["role"] == "statistician":
                continue
            client = Client(port)
            client.login(user["username"], totp_key=user.get("totp_key"))
            sessions[size][user["username"]] = client.cookies
            client.conn.close()
        works[size] = Work(run["made"], seed=args.seed + size)
        # Warm-up: every gunicorn worker loads its code, templates, protocol definitions and
        # connection; the database's caches see each page's queries.
        for page in PAGES:
            warm = [[works[size].draw(page) for _ in range(args.warmup)]
                    for _ in range(args.workers)]
            _, bad, _ = run_block(port, sessions[size], warm, args.max_seconds)
            if bad:
                print(f"  warm-up {page} at {size:,}: {len(bad)} failures, e.g. {bad[0]}",
                      flush=True)
    sizes = [run["size"] for run in runs]
    for n in args.clients:
        for page in PAGES:
            got = {size: ([], [], 0.0) for size in sizes}
            per_block = max(1, round(args.requests / args.rounds / n))
            for r in range(args.rounds):
                order = sizes if r % 2 == 0 else sizes[::-1]
                for size in order:
                    jobs = [[works[size].draw(page) for _ in range(per_block)] for _ in range(n)]
                    samples, bad, wall = run_block(servers[size].port, sessions[size], jobs,
                                                   args.max_seconds / args.rounds)
                    acc = got[size]
                    got[size] = (acc[0] + samples, acc[1] + bad, acc[2] + wall)
            for run in runs:
                result = summarise(*got[run["size"]])
                run["levels"].setdefault(str(n), {})[page] = result
                print(f"  {page:<12} {run['size']:>6,} participants, {n} client(s): "
                      f"p50 {result['p50_ms']} p95 {result['p95_ms']} p99 {result['p99_ms']} ms,"
                      f" {result['throughput_per_s']}/s, {result['requests']} requests, "
                      f"{result['failures']} failures"
                      + (f" e.g. {result['first_failures'][0]}" if result["failures"] else ""),
                      flush=True)


def database_for(base: str, size: int) -> str:
    parts = urllib.parse.urlparse(base)
    return parts._replace(path=f"{parts.path.rstrip('/')}_{size}").geturl()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 10_000],
                        help="participant counts, each in a database of its own "
                             "(default 100 10000)")
    parser.add_argument("--clients", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per page, size and level, split among the clients")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the requests go in this many blocks, alternating between sizes")
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed requests per page per gunicorn worker before timing")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers per size")
    parser.add_argument("--max-seconds", type=float, default=240,
                        help="time limit of one page at one size and level (the rest is skipped)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL",
                                                             DEFAULT_DATABASE),
                        help="PostgreSQL URL; each size gets its own database, named after "
                             "this one with _SIZE appended")
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)  # child: fill the database
    args = parser.parse_args()
    if args.fill is not None:
        fill_main(args.fill, args.seed)
        return 0
    args.clients = [int(n) for n in args.clients.split(",")]
    args.sizes = sorted(set(args.sizes))
    if not urllib.parse.urlparse(args.database).scheme.startswith("postgres"):
        sys.exit(f"The benchmark needs PostgreSQL (got {args.database!r}).")

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "false",
           "CELERY_BROKER_URL": "", "EMAIL_URL": "memorymail://", "PYTHONPATH": str(ROOT),
           "LOG_LEVEL": "WARNING"}
    runs: list[dict] = []
    servers: dict[int, Server] = {}
    load_before = os.getloadavg()
    try:
        for size in args.sizes:
            url = database_for(args.database, size)
            size_env = {**env, "DATABASE_URL": url}
            print(f"== {size:,} participants: preparing {url}", flush=True)
            start = time.perf_counter()
            recreate_database(url)
            sh(PY, "manage.py", "migrate", "-v0", env=size_env)
            migrate_s = time.perf_counter() - start
            out = sh(PY, str(Path(__file__).resolve()), "--fill", str(size), "--seed",
                     str(args.seed), env=size_env, stdout=subprocess.PIPE, text=True)
            made = json.loads(out.stdout.strip().splitlines()[-1])
            setup_s = round(time.perf_counter() - start, 1)
            t = made["timing"]
            print(f"  setup {setup_s} s (database + migrate {migrate_s:.1f} s, templates "
                  f"{t['templates_s']} s, bulk {t['bulk_s']} s, vacuum {t['vacuum_s']} s, "
                  f"query counts {t['queries_s']} s): {made['counts']}", flush=True)
            print("  queries per page: " + ", ".join(
                f"{page} {summary_queries(made['queries'][page])}" for page in PAGES), flush=True)
            runs.append({"size": size, "database": url, "setup_s": setup_s, "timing": t,
                         "counts": made["counts"], "queries": made["queries"], "levels": {},
                         "made": made})
        sh(PY, "manage.py", "collectstatic", "--noinput", "-v0",
           env=server_env(env, runs[0]["database"]))
        for run in runs:
            servers[run["size"]] = Server(server_env(env, run["database"]), args.workers)
        print(f"== timing: {args.requests} requests per page, size and level, in "
              f"{args.rounds} rounds alternating between sizes", flush=True)
        measure(args, runs, servers)
    finally:
        for size, server in servers.items():
            err = server.stop()
            if err:
                print(f"server log at {size:,} (tail):\n{err[-3000:]}")
        if not args.keep:
            for run in runs:
                drop_database(run["database"])
    for run in runs:
        del run["made"]

    summary = report(runs, args)
    tree = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    results_file = ROOT / "bench" / "results" / "pages.json"
    results_file.parent.mkdir(exist_ok=True)
    results_file.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": os.getloadavg()},
        "tree": tree, "workers": args.workers, "rounds": args.rounds,
        "requests_per_page_per_level": args.requests, "clients": args.clients,
        "targets": {"p95_ms_below": P95_TARGET_MS, "p50_ratio_at_most": RATIO_TARGET},
        "runs": runs, "summary": summary}, indent=2))
    print(f"Written to {results_file.relative_to(ROOT)}")
    failures = sum(r["failures"] for run in runs for lvl in run["levels"].values()
                   for r in lvl.values())
    return 1 if failures else 0


def summary_queries(by_role: dict) -> str:
    values = sorted({n for counts in by_role.values() for n in counts})
    if not values:
        return "?"
    return str(values[0]) if len(values) == 1 else f"{values[0]}–{values[-1]}"


def report(runs: list[dict], args) -> dict:
    print()
    print(f"{'page':<12}{'participants':>13}{'clients':>8}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'req/s':>8}{'queries':>9}{'fail':>6}  p95<{P95_TARGET_MS}")
    for page in PAGES:
        for n in args.clients:
            for run in runs:
                r = run["levels"][str(n)][page]
                ok = r["p95_ms"] is not None and r["p95_ms"] < P95_TARGET_MS
                print(f"{page:<12}{run['size']:>13,}{n:>8}{r['p50_ms']!s:>9}{r['p95_ms']!s:>9}"
                      f"{r['p99_ms']!s:>9}{r['throughput_per_s']!s:>8}"
                      f"{summary_queries(run['queries'][page]):>9}{r['failures']:>6}  "
                      f"{'yes' if ok else 'NO'}")
    summary: dict = {}
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        print()
        print(f"p50 ratio {large['size']:,} / {small['size']:,} participants "
              f"(target ≤ {RATIO_TARGET}); p95 < {P95_TARGET_MS} ms at every size; "
              f"queries the same at both sizes:")
        for page in PAGES:
            same = small["queries"][page] == large["queries"][page]
            summary[page] = {"queries_same": same}
            parts = []
            for n in args.clients:
                a = small["levels"][str(n)][page]["p50_ms"]
                b = large["levels"][str(n)][page]["p50_ms"]
                ratio = round(b / a, 2) if a and b else None
                p95_ok = all(run["levels"][str(n)][page]["p95_ms"] is not None
                             and run["levels"][str(n)][page]["p95_ms"] < P95_TARGET_MS
                             for run in runs)
                ratio_ok = ratio is not None and ratio <= RATIO_TARGET
                summary[page][f"{n}_clients"] = {"p50_ratio": ratio, "ratio_ok": ratio_ok,
                                                 "p95_ok_all_sizes": p95_ok}
                parts.append(f"{n} client(s): ratio {ratio} {'ok' if ratio_ok else 'MISS'}, "
                             f"p95 {'ok' if p95_ok else 'MISS'}")
            print(f"  {page:<12} " + "; ".join(parts)
                  + f"; queries {'same' if same else 'DIFFER'} "
                    f"({summary_queries(small['queries'][page])} vs "
                    f"{summary_queries(large['queries'][page])})")
    for run in runs:
        print(f"setup at {run['size']:,} participants: {run['setup_s']} s "
              f"({run['counts']['visits']:,} visits, {run['counts']['crf_records']:,} CRF records)")
    return summary


# ============================================================================ the child: data
# ``--fill N``: runs with Django set up against the benchmark database (already migrated).


def fill_main(size: int, seed: int) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    timing = {}
    rng = random.Random(seed)
    start = time.perf_counter()
    fixture = make_fixture()
    templates = make_templates(fixture)
    timing["templates_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    replicate(fixture, templates, size - len(templates["participants"]), rng)
    timing["bulk_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    from django.db import connection

    with connection.cursor() as cursor:
        # What autovacuum does on a live server after such a load: planner statistics and the
        # visibility map.
        cursor.execute("VACUUM ANALYZE")
    timing["vacuum_s"] = round(time.perf_counter() - start, 1)
    participants = sample_targets()
    start = time.perf_counter()
    queries = count_queries(fixture, participants, rng)
    timing["queries_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps({"users": fixture["users"], "participants": participants,
                      "counts": table_counts(), "queries": queries, "timing": timing}))


def make_fixture() -> dict:
    """Protocols, staff with a known password, a sealed allocation list per trial."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from randomisation import services as randomisation
    from trials.models import Membership, Trial
    from trials.services import load_protocol, shipped_protocol_files

    for path in shipped_protocol_files():
        load_protocol(path)
    User = get_user_model()
    password = make_password(PASSWORD)  # hashed once: logins still check it for real
    trials = list(Trial.objects.select_related("current_version").order_by("slug"))
    stat = User.objects.create(username="bench-stat", password=password)
    dm = User.objects.create(username="bench-dm", password=password)
    users = [{"username": "bench-dm", "role": "data_manager",
              "scopes": [[t.slug, None] for t in trials]}]
    coordinators = {}
    for trial in trials:
        Membership.objects.create(user=stat, trial=trial, role="statistician")
        Membership.objects.create(user=dm, trial=trial, role="data_manager")
        for site in trial.sites.order_by("code"):
            for role, short in (("coordinator", "coord"), ("investigator", "inv")):
                name = f"bench-{short}-{site.code.lower()}"
                user = User.objects.create(username=name, password=password)
                Membership.objects.create(user=user, trial=trial, site=site, role=role)
                users.append({"username": name, "role": role, "scopes": [[trial.slug, site.code]],
                              # investigators sign CRFs: they log in with two factors
                              **({"totp_key": second_factor(user)}
                                 if role == "investigator" else {})})
                if role == "coordinator":
                    coordinators[site.pk] = user
        randomisation.seal_and_activate(
            randomisation.generate_list(trial, by=stat, seed=f"bench-{trial.slug}"), by=stat)
    users.append({"username": "bench-stat", "role": "statistician", "scopes": [],
                  "totp_key": second_factor(stat)})
    return {"trials": trials, "users": users, "coordinators": coordinators, "stat": stat}


def make_templates(fixture: dict) -> dict:
    """A few participants per site through the real services: screened, consented, eligible,
    randomised some days ago, their past visits done (the demo's ``visit_history``: one late,
    one missed, anchor CRFs entered) and every CRF of every done visit saved with ``save_crf``.
    Their records are what the replicas copy."""
    from django.core.exceptions import ValidationError

    from crfs.models import CRFRecord, CRFStatus
    from scheduling.services import save_crf_and_replan as save_crf
    from patients.models import Visit, VisitStatus
    from tests import factories
    from demo.data import crf_answers, visit_history

    made = []
    for trial in fixture["trials"]:
        crfs = {c["code"]: c for c in trial.definition["crfs"]}
        for site in trial.sites.order_by("code"):
            coord = fixture["coordinators"][site.pk]
            for days_ago in TEMPLATE_DAYS_AGO:
                p = factories.randomised(trial, site, by=coord, days_ago=days_ago)
                visit_history(p, by=coord, days_ago=0)
                have = set(CRFRecord.objects.filter(participant=p).values_list("visit_id",
                                                                                "crf_code"))
                for visit in Visit.objects.filter(participant=p, status=VisitStatus.DONE):
                    for code in visit.crfs:
                        if (visit.pk, code) in have:
                            continue
                        try:
                            save_crf(p, code, crf_answers(crfs[code], on=visit.done_on), by=coord,
                                     complete=True, visit=visit)
                        except ValidationError:
                            pass  # an edit check this demo answer fails: no template from it
                made.append(p.pk)
    data: dict[tuple[int, str], dict] = {}
    for trial_id, code, record in (CRFRecord.objects.filter(participant__in=made)
                                   .exclude(status=CRFStatus.DRAFT)
                                   .values_list("participant__trial", "crf_code", "data")
                                   .order_by("created_at")):
        data[(trial_id, code)] = record  # the latest of each CRF per trial
    return {"participants": made, "data": data}


def _date_fields(crf: dict) -> list[str]:
    return [f["code"] for f in crf["fields"] if f["type"] == "date"]


def replicate(fixture: dict, templates: dict, count: int, rng: random.Random) -> None:
    """``count`` more randomised participants with visits and CRFs, written with bulk_create."""
    import datetime as dt

    from django.utils import timezone

    from crfs.models import CRFRecord, CRFStatus
    from patients.models import Participant, Status, Visit, VisitStatus
    from crfs.facts import Facts, RANDOMISATION
    from scheduling.services import plan_schedule
    from randomisation import generator
    from randomisation.models import Allocation, AllocationList, AllocationSlot
    from randomisation.services import stratification
    from demo.data import crf_answers

    if count <= 0:
        return
    today = timezone.localdate()
    tz = timezone.get_current_timezone()
    per_trial = {t.pk: count // len(fixture["trials"]) for t in fixture["trials"]}
    per_trial[fixture["trials"][0].pk] += count - sum(per_trial.values())

    for trial in fixture["trials"]:
        definition = trial.current_version.definition
        crfs = {c["code"]: c for c in definition["crfs"]}
        dates = {code: _date_fields(crf) for code, crf in crfs.items()}
        data_of = {code: templates["data"].get((trial.pk, code))
                   or crf_answers(crf, on=today) for code, crf in crfs.items()}
        sites = list(trial.sites.order_by("code"))
        numbers = {s.pk: Participant.objects.filter(site=s).count() for s in sites}
        arms = list(trial.arms.order_by("code"))
        arm_weights = [a.ratio for a in arms]
        factors = stratification(trial)
        sources = {f["code"]: (f["source"]["field"], {lvl["code"]: lvl["values"][0]
                                                      for lvl in f["levels"]})
                   for f in definition.get("stratification_factors", [])}
        alist = AllocationList.objects.get(trial=trial, status="active")
        blinded = trial.masking != "open"
        kits = iter([])
        if blinded:
            taken = set(AllocationSlot.objects.filter(trial=trial).exclude(kit_code=None)
                        .values_list("kit_code", flat=True)) | set(
                Allocation.objects.filter(trial=trial).exclude(kit_code="")
                .values_list("kit_code", flat=True))
            kits = iter(generator.kit_codes(f"bench-replicas-{trial.slug}", per_trial[trial.pk],
                                            definition["randomisation"]["kit_code_length"],
                                            taken=taken))
        anchors = {a["code"]: a for a in definition.get("anchors", [])}
        # The anchor each replica gets: the one whose CRF is entered at a visit hanging on
        # randomisation (REMINET first injection; rectal arm A surgery).
        anchor_visits = {}  # visit code → anchor code whose date is that visit's day
        for v in definition["visits"]:
            for code in v["crfs"]:
                for a in anchors.values():
                    if a["source"]["crf"] == code and v["anchor"] == RANDOMISATION:
                        anchor_visits[v["code"]] = (a["code"], v.get("arms"), v["window"])
        coord_by_site = {s.pk: fixture["coordinators"][s.pk] for s in sites}

        remaining = per_trial[trial.pk]
        index = 0
        while remaining > 0:
            chunk = min(remaining, 1000)
            remaining -= chunk
            rows = []
            for _ in range(chunk):
                site = sites[index % len(sites)]
                index += 1
                numbers[site.pk] += 1
                randomised_on = today - dt.timedelta(days=rng.randrange(365 * 3))
                arm = rng.choices(arms, weights=arm_weights)[0]
                strata = {}
                for code, levels in factors:
                    strata[code] = site.code if code == "site" else rng.choice(levels)
                known = {RANDOMISATION: randomised_on}
                anchor_days = {}
                for visit_code, (anchor_code, arms_of, window) in anchor_visits.items():
                    if arms_of and arm.code not in arms_of:
                        continue
                    day = randomised_on + dt.timedelta(
                        days=rng.randrange(window["start"], window["end"] + 1))
                    if day <= today:
                        known[anchor_code] = day
                        anchor_days[visit_code] = day
                plan = plan_schedule(definition, arm.code, Facts(randomised_on, known, {}))
                rows.append((site, numbers[site.pk], randomised_on, arm, strata, plan,
                             anchor_days))

            participants = Participant.objects.bulk_create([
                Participant(trial=trial, site=site, study_id=f"{site.code}-{number:04d}",
                            protocol_version=trial.current_version, status=Status.RANDOMISED,
                            screened_on=day - dt.timedelta(days=21),
                            consent_date=day - dt.timedelta(days=21), consent_version="1.0",
                            created_by=coord_by_site[site.pk])
                for site, number, day, *_ in rows])
            Allocation.objects.bulk_create([
                Allocation(participant=p, trial=trial, allocation_list=alist, slot=None,
                           stratum_key=generator.stratum_key(list(strata.items())),
                           strata=strata, arm=arm, kit_code=next(kits, "") if blinded else "",
                           randomised_at=dt.datetime.combine(day, dt.time(10, 0), tzinfo=tz),
                           randomised_by=coord_by_site[site.pk])
                for p, (site, _, day, arm, strata, _, _) in zip(participants, rows)])
            visits = []
            for p, (site, _, day, arm, strata, plan, anchor_days) in zip(participants, rows):
                for pv in plan:
                    w = pv.window
                    status, done_on, reason = VisitStatus.PLANNED, None, ""
                    if pv.code in anchor_days:
                        status, done_on = VisitStatus.DONE, anchor_days[pv.code]
                    elif w.closes < today - dt.timedelta(days=14):
                        draw = rng.random()
                        if draw < 0.95:
                            status = VisitStatus.DONE
                        elif draw < 0.98:
                            status, reason = VisitStatus.MISSED, "Bench: patient did not come"
                    elif w.closes < today:
                        if rng.random() < 0.6:
                            status = VisitStatus.DONE
                    elif w.opens <= today and rng.random() < 0.3:
                        status = VisitStatus.DONE
                    if status == VisitStatus.DONE and done_on is None:
                        last = min(w.closes, today)
                        done_on = w.opens + dt.timedelta(days=rng.randrange((last - w.opens).days
                                                                            + 1))
                    visits.append(Visit(
                        participant=p, code=pv.code, label=pv.label, occurrence=pv.occurrence,
                        anchor_code=pv.anchor_code, anchor_date=pv.anchor_date,
                        target_date=w.target, window_opens=w.opens, window_closes=w.closes,
                        status=status, done_on=done_on, status_reason=reason,
                        crfs=list(pv.crfs)))
            visits = Visit.objects.bulk_create(visits, batch_size=5000)
            records = []
            for p, (site, _, day, arm, strata, _, _) in zip(participants, rows):
                coord = coord_by_site[site.pk]
                eligibility = dict(data_of["eligibility"])
                for code, level in strata.items():
                    if code in sources:
                        field, values = sources[code]
                        eligibility[field] = values[level]
                records.append(CRFRecord(
                    participant=p, crf_code="eligibility", visit=None,
                    protocol_version=trial.current_version, data=eligibility,
                    status=CRFStatus.COMPLETE, ever_completed=True, created_by=coord,
                    updated_by=coord))
            site_of = {p.pk: site for p, (site, *_) in zip(participants, rows)}
            for v in visits:
                if v.status != VisitStatus.DONE:
                    continue
                coord = coord_by_site[site_of[v.participant_id].pk]
                for code in v.crfs:
                    data = dict(data_of[code])
                    for field in dates[code]:
                        if data.get(field):
                            data[field] = v.done_on.isoformat()
                    records.append(CRFRecord(
                        participant_id=v.participant_id, crf_code=code, visit=v,
                        protocol_version=trial.current_version, data=data,
                        status=CRFStatus.COMPLETE, ever_completed=True, created_by=coord,
                        updated_by=coord))
            CRFRecord.objects.bulk_create(records, batch_size=5000)


def sample_targets() -> list[dict]:
    """Every randomised participant, with one of their CRF records at a visit, for the pages."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            SELECT DISTINCT ON (r.participant_id) t.slug, p.study_id, s.code, r.visit_id,
                   r.crf_code
            FROM outcomes_crfrecord r
            JOIN patients_participant p ON p.id = r.participant_id
            JOIN trials_trial t ON t.id = p.trial_id
            JOIN trials_site s ON s.id = p.site_id
            WHERE r.visit_id IS NOT NULL
            ORDER BY r.participant_id, md5(r.id::text)""")
        return [{"trial": slug, "study_id": study_id, "site": site, "visit_id": visit_id,
                 "crf": crf} for slug, study_id, site, visit_id, crf in cursor.fetchall()]


def _verify_session(client, user) -> None:
    """Mark an in-process client's session verified with the user's authenticator
    (django_otp's own login helper, as the verify page calls), without spending a code that
    the HTTP login of the same user may need within the same 30 seconds."""
    from django.http import HttpRequest
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice

    request = HttpRequest()
    request.session = client.session
    request.user = user
    otp_login(request, TOTPDevice.objects.get(user=user, confirmed=True))
    request.session.save()


def count_queries(fixture: dict, participants: list[dict], rng: random.Random) -> dict:
    """Queries each page runs for several participants, per trial and role:
    {page: {"trial/role": [distinct counts]}}."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client as TestClient
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()  # lets the test client's host in; e-mail to memory
    User = get_user_model()
    clients = {}
    for u in fixture["users"]:
        c = TestClient()
        user = User.objects.get(username=u["username"])
        c.force_login(user)
        if "totp_key" in u:  # the session verified with the device, as the second step does
            _verify_session(c, user)
        clients[u["username"]] = c
    made = {"users": fixture["users"], "participants": participants}
    work = Work(made, seed=1)
    out: dict[str, dict[str, list[int]]] = {page: {} for page in PAGES}
    sample = rng.sample(participants, min(8, len(participants)))
    for page in PAGES:
        jobs = []
        for p in sample:
            base = f"/trials/{p['trial']}/participants/{p['study_id']}/"
            path = {"participant": base, "timeline": base + "visits/",
                    "crf": f"{base}visits/{p['visit_id']}/crf/{p['crf']}/",
                    "worklist": f"/trials/{p['trial']}/visits/"}[page]
            site_users = work.by_site[(p["trial"], p["site"])]
            viewers = site_users + ([] if page == "crf" else
                                    work.by_site.get((p["trial"], None), []))
            jobs += [(u["username"], f"{p['trial']}/{u['role']}", path) for u in viewers]
        for username, role, path in jobs[:1]:
            clients[username].get(path)  # warm: protocol definitions, content types
        for username, role, path in jobs:
            with CaptureQueriesContext(connection) as ctx:
                response = clients[username].get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path} as {username}: HTTP {response.status_code}")
            out[page].setdefault(role, []).append(len(ctx.captured_queries))
    return {page: {role: sorted(set(v)) for role, v in roles.items()}
            for page, roles in out.items()}


def table_counts() -> dict:
    from crfs.models import CRFRecord
    from patients.models import Participant, Visit

    return {"participants": Participant.objects.count(), "visits": Visit.objects.count(),
            "planned_visits": Visit.objects.filter(status="planned").count(),
            "crf_records": CRFRecord.objects.count()}


if __name__ == "__main__":
    sys.exit(main())
