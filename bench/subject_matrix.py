"""The subject matrix at 1,000 and 100,000 participants of one trial, fifty visits each, over HTTP.

    .venv/bin/python bench/subject_matrix.py                      # 1000 and 100000
    .venv/bin/python bench/subject_matrix.py --sizes 1000 20000   # other sizes
    .venv/bin/python bench/subject_matrix.py --requests 100 --clients 1,4
    .venv/bin/python bench/subject_matrix.py --keep --fill-only   # make the data (long)…
    .venv/bin/python bench/subject_matrix.py --reuse              # …then time it, as often

On this machine only (127.0.0.1):
1. drops and creates its own PostgreSQL database (``BENCH_DATABASE_URL``, default
   ``postgres://postgres@127.0.0.1:5432/ctms_bench_matrix``; dropped at the end unless
   ``--keep``; ``--reuse`` takes it as a previous ``--keep`` left it), migrates it, and loads
   REMINET's protocol once per size as a trial of its own (``matrix-1000``,
   ``matrix-100000``: the same visits and forms, blinded), each with its staff (a data manager
   of all sites, a coordinator per site; one known password);
2. fills each trial up to its size with ``bulk_create`` in batches of 1,000 participants:
   each randomised some day of the last three years, with fifty visits written from the
   protocol's templates (baseline, first injection, 36 injections every 28 days, 12 tumour
   assessments every 3 months, with their windows and expected forms): a visit whose window
   closed more than two weeks ago is done (95 %), missed (3 %) or left overdue; a more recent
   one done (60 %) or overdue; later ones planned. Each form of a done visit has its record
   (complete 80 %, signed 10 %, draft 5 %, locked 5 %) but 3 % are left missing; 1 % of the
   records carry a data query (70 % open, 10 % answered, 20 % closed). Then ``VACUUM ANALYZE``
   (what autovacuum does on a live server after such a load);
3. counts the SQL queries of each kind of request in-process (``django.test.Client``);
4. starts gunicorn with the production settings (DEBUG off, persistent connections, 3 workers
   as ``gunicorn.conf.py`` gives a 2-core machine), logs each user in over HTTP, and sends
   ``--requests`` matrix pages per kind, size and level after a warm-up, from 1 client then
   from 4 concurrent ones: the first page, a page from a random study ID on (``?after=``), a
   site coordinator's page from a random study ID of their site, the "open query" filter from
   a random study ID; each page 25 participants and every visit's column. Every answer must be
   200. The requests go in ``--rounds`` blocks alternating between the sizes (both trials are
   in the one database, served by the one gunicorn), so that load from anything else running
   on the machine weighs on every size alike.

Prints kind, size, clients, p50/p95/p99 ms, queries; the p50 ratio largest/smallest (target
≤ 1.5), whether p95 < 200 ms, whether the query counts are the same at every size; writes
``bench/results/subject_matrix.json``.
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

from common import PASSWORD, Client, drop_database, free_port, recreate_database, sh

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/ctms_bench_matrix"
PROTOCOL = "reminet.yaml"
KINDS = ["first", "random", "site", "query"]
P95_TARGET_MS = 200
RATIO_TARGET = 1.5
BATCH = 1000  # participants written per bulk_create round


# ============================================================================ orchestration


def draw(kind: str, made: dict, rng: random.Random) -> tuple[str, str]:
    """(username, path) of one request of ``kind``."""
    base = f"/trials/{made['trial']}/matrix/"
    if kind == "first":
        return made["dm"], base
    if kind == "random":
        return made["dm"], f"{base}?after={rng.choice(made['study_ids'])}"
    if kind == "query":
        return made["dm"], f"{base}?state=query&after={rng.choice(made['study_ids'])}"
    site = rng.choice(sorted(made["by_site"]))
    return made["coordinators"][site], f"{base}?after={rng.choice(made['by_site'][site])}"


def run_block(port: int, sessions: dict, jobs: list[list[tuple[str, str]]]
              ) -> tuple[list[float], list[str], float]:
    samples, failures, lock = [], [], threading.Lock()
    barrier = threading.Barrier(len(jobs))

    def drive(mine):
        clients = {name: Client(port, cookies) for name, cookies in sessions.items()}
        got, bad = [], []
        barrier.wait()
        for username, path in mine:
            start = time.perf_counter()
            status, body = clients[username].request("GET", path)
            got.append(time.perf_counter() - start)
            if status != 200:
                bad.append(f"{path} as {username}: HTTP {status}")
        for c in clients.values():
            c.conn.close()
        with lock:
            samples.extend(got)
            failures.extend(bad)

    threads = [threading.Thread(target=drive, args=(j,)) for j in jobs]
    start = time.perf_counter()
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


class Server:
    """gunicorn with the production settings on a free port."""

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


def measure(args, runs: list[dict], server: Server) -> None:
    """Time every kind at every level, in rounds alternating between the sizes."""
    rng = random.Random(args.seed)
    sessions = {}
    for run in runs:
        for username in run["made"]["users"]:
            client = Client(server.port)
            client.login(username)
            sessions[username] = client.cookies
            client.conn.close()
    for run in runs:  # warm-up: every worker loads its code, templates and connection
        for kind in KINDS:
            _, bad, _ = run_block(server.port, sessions,
                                  [[draw(kind, run["made"], rng) for _ in range(args.warmup)]
                                   for _ in range(args.workers)])
            if bad:
                print(f"  warm-up {kind}: {len(bad)} failures, e.g. {bad[0]}", flush=True)
    for n in args.clients:
        for kind in KINDS:
            got = {run["size"]: ([], [], 0.0) for run in runs}
            per_client = max(1, round(args.requests / args.rounds / n))
            for r in range(args.rounds):
                for run in (runs if r % 2 == 0 else runs[::-1]):
                    samples, bad, wall = run_block(
                        server.port, sessions,
                        [[draw(kind, run["made"], rng) for _ in range(per_client)]
                         for _ in range(n)])
                    a = got[run["size"]]
                    got[run["size"]] = (a[0] + samples, a[1] + bad, a[2] + wall)
            for run in runs:
                samples, bad, wall = got[run["size"]]
                result = {**quantiles(samples), "failures": len(bad), "first_failures": bad[:3],
                          "seconds": round(wall, 2),
                          "throughput_per_s": round(len(samples) / wall, 1)}
                run["levels"].setdefault(str(n), {})[kind] = result
                print(f"  {kind:<7} {run['size']:>8,} participants, {n} client(s): p50 "
                      f"{result['p50_ms']} p95 {result['p95_ms']} p99 {result['p99_ms']} ms, "
                      f"{result['throughput_per_s']}/s, {result['failures']} failures"
                      + (f" e.g. {bad[0]}" if bad else ""), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000])
    parser.add_argument("--clients", default="1,4", help="concurrency levels (default 1,4)")
    parser.add_argument("--requests", type=int, default=200,
                        help="timed requests per kind, size and level, split among the clients")
    parser.add_argument("--rounds", type=int, default=4,
                        help="the requests go in this many blocks, alternating between sizes")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--reuse", action="store_true",
                        help="use the database a previous --keep left (grow it if needed)")
    parser.add_argument("--fill-only", action="store_true", help="make the data, time nothing")
    parser.add_argument("--no-grow", action="store_true",
                        help="with --reuse: time the trials as they are, even if a fill was "
                             "stopped short of a size (the counts printed say what was timed)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL",
                                                             DEFAULT_DATABASE))
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)  # child: grow to N
    args = parser.parse_args()
    if args.fill is not None:
        fill_main(args.fill, args.seed, grow_it=not args.no_grow)
        return 0
    args.clients = [int(n) for n in args.clients.split(",")]
    args.sizes = sorted(set(args.sizes))
    if not urllib.parse.urlparse(args.database).scheme.startswith("postgres"):
        sys.exit(f"The benchmark needs PostgreSQL (got {args.database!r}).")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "false",
           "CELERY_BROKER_URL": "", "EMAIL_URL": "memorymail://", "PYTHONPATH": str(ROOT),
           "LOG_LEVEL": "WARNING", "DATABASE_URL": args.database}
    runs = []
    server = None
    load_before = os.getloadavg()
    try:
        if not args.reuse:
            recreate_database(args.database)
        sh(PY, "manage.py", "migrate", "-v0", env=env)
        for size in args.sizes:
            print(f"== trial matrix-{size}: {size:,} participants", flush=True)
            start = time.perf_counter()
            out = sh(PY, str(Path(__file__).resolve()), "--fill", str(size), "--seed",
                     str(args.seed), *(["--no-grow"] if args.no_grow else []), env=env,
                     stdout=subprocess.PIPE, text=True)
            made = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"  setup {time.perf_counter() - start:.0f} s ({made['timing']}): "
                  f"{made['counts']}", flush=True)
            print(f"  queries per request: {made['queries']}", flush=True)
            runs.append({"size": size, "counts": made["counts"], "timing": made["timing"],
                         "queries": made["queries"], "levels": {}, "made": made})
        if args.fill_only:
            return 0
        sh(PY, "manage.py", "collectstatic", "--noinput", "-v0",
           env=server_env(env, args.database))
        server = Server(server_env(env, args.database), args.workers)
        print(f"== timing: {args.requests} requests per kind, size and level, in "
              f"{args.rounds} rounds alternating between sizes", flush=True)
        measure(args, runs, server)
    finally:
        if server is not None:
            err = server.stop()
            if err:
                print(f"server log (tail):\n{err[-3000:]}")
        if not args.keep:
            drop_database(args.database)
    for run in runs:
        del run["made"]
    summary = report(runs, args)
    tree = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    results = ROOT / "bench" / "results" / "subject_matrix.json"
    results.parent.mkdir(exist_ok=True)
    results.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_before": load_before,
                    "load_after": os.getloadavg()},
        "tree": tree, "workers": args.workers, "rounds": args.rounds,
        "requests_per_kind_per_level": args.requests, "clients": args.clients,
        "targets": {"p95_ms_below": P95_TARGET_MS, "p50_ratio_at_most": RATIO_TARGET},
        "runs": runs, "summary": summary}, indent=2))
    print(f"Written to {results.relative_to(ROOT)}")
    failures = sum(r["failures"] for run in runs for lvl in run["levels"].values()
                   for r in lvl.values())
    return 1 if failures else 0


def report(runs: list[dict], args) -> dict:
    print()
    print(f"{'kind':<8}{'participants':>13}{'clients':>8}{'p50 ms':>9}{'p95 ms':>9}"
          f"{'p99 ms':>9}{'req/s':>8}{'queries':>9}  p95<{P95_TARGET_MS}")
    for kind in KINDS:
        for n in args.clients:
            for run in runs:
                r = run["levels"][str(n)][kind]
                ok = r["p95_ms"] is not None and r["p95_ms"] < P95_TARGET_MS
                print(f"{kind:<8}{run['size']:>13,}{n:>8}{r['p50_ms']!s:>9}{r['p95_ms']!s:>9}"
                      f"{r['p99_ms']!s:>9}{r['throughput_per_s']!s:>8}"
                      f"{run['queries'][kind]!s:>9}  {'yes' if ok else 'NO'}")
    summary: dict = {}
    if len(runs) > 1:
        small, large = runs[0], runs[-1]
        print(f"\np50 ratio {large['size']:,} / {small['size']:,} (target ≤ {RATIO_TARGET}), "
              f"queries the same at both sizes:")
        for kind in KINDS:
            same = small["queries"][kind] == large["queries"][kind]
            summary[kind] = {"queries_same": same}
            for n in args.clients:
                a = small["levels"][str(n)][kind]["p50_ms"]
                b = large["levels"][str(n)][kind]["p50_ms"]
                ratio = round(b / a, 2) if a and b else None
                summary[kind][f"{n}_clients_p50_ratio"] = ratio
            print(f"  {kind:<8} {summary[kind]}")
    return summary


# ============================================================================ the child: data


def fill_main(size: int, seed: int, *, grow_it: bool = True) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.db import connection

    from patients.models import Participant

    timing = {}
    start = time.perf_counter()
    fixture = make_fixture(size)
    trial = fixture["trial"]
    have = Participant.objects.filter(trial=trial).count()
    if grow_it:
        grow(fixture, size - have, random.Random(seed + size + have))
    timing["bulk_s"] = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    if have < size:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    timing["vacuum_s"] = round(time.perf_counter() - start, 1)
    ids = list(Participant.objects.filter(trial=trial).values_list("site__code", "study_id"))
    rng = random.Random(seed)
    sample = rng.sample(ids, min(2000, len(ids)))
    made = {"trial": trial.slug, "users": fixture["users"], "dm": fixture["users"][0],
            "coordinators": {s.code: u.username for s, u in
                             zip(fixture["sites"], fixture["coordinators"].values())},
            "study_ids": [s for _, s in sample], "by_site": {}}
    for site, study_id in sample:
        made["by_site"].setdefault(site, []).append(study_id)
    made["queries"] = count_queries(made)
    made["counts"] = table_counts(trial)
    made["timing"] = timing
    print(json.dumps(made))


def make_fixture(size: int) -> dict:
    """REMINET's protocol loaded as trial ``matrix-<size>``, with its staff (made once, found
    again when growing)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    from trials.models import Membership, Trial
    from trials.protocol import read_protocol_file
    from trials.services import PROTOCOL_DIR, store_protocol

    User = get_user_model()
    slug = f"matrix-{size}"
    if not Trial.objects.filter(slug=slug).exists():
        definition = read_protocol_file(PROTOCOL_DIR / PROTOCOL)
        definition["trial"] = {**definition["trial"], "slug": slug,
                               "short_title": f"REMINET × {size:,}"}
        store_protocol(definition, source_file=PROTOCOL)
    trial = Trial.objects.select_related("current_version").get(slug=slug)
    password = make_password(PASSWORD)
    dm_name = f"bench-dm-{size}"
    dm, _ = User.objects.get_or_create(username=dm_name, defaults={"password": password})
    Membership.objects.get_or_create(user=dm, trial=trial, role="data_manager", site=None)
    users, coordinators = [dm_name], {}
    for site in trial.sites.order_by("code"):
        name = f"bench-coord-{size}-{site.code.lower()}"
        user, _ = User.objects.get_or_create(username=name, defaults={"password": password})
        Membership.objects.get_or_create(user=user, trial=trial, site=site, role="coordinator")
        users.append(name)
        coordinators[site.pk] = user
    return {"trial": trial, "users": users, "coordinators": coordinators,
            "sites": list(trial.sites.order_by("code"))}


def fifty_visits(definition: dict, randomised_on, rng: random.Random) -> list[dict]:
    """Fifty visits from REMINET's templates: baseline, first injection, 36 injections every 28
    days after it, 12 tumour assessments every 3 months (91 days) after randomisation."""
    import datetime as dt

    templates = {v["code"]: v for v in definition["visits"]}
    first = randomised_on + dt.timedelta(days=rng.randrange(0, 15))
    day = dt.timedelta(days=1)
    out = [("baseline", 1, randomised_on, randomised_on - 14 * day, randomised_on),
           ("first_injection", 1, first, randomised_on, randomised_on + 14 * day)]
    out += [("injection", k, first + 28 * k * day, first + (28 * k - 3) * day,
             first + (28 * k + 3) * day) for k in range(1, 37)]
    out += [("tumour_assessment", k, randomised_on + 91 * k * day,
             randomised_on + (91 * k - 14) * day, randomised_on + (91 * k + 14) * day)
            for k in range(1, 13)]
    return [{"code": code, "occurrence": k, "label": templates[code]["label"],
             "crfs": list(templates[code]["crfs"]), "target": target, "opens": opens,
             "closes": closes,
             "anchor": templates[code]["anchor"] if isinstance(templates[code]["anchor"], str)
             else templates[code]["anchor"][0]}
            for code, k, target, opens, closes in out]


def grow(fixture: dict, count: int, rng: random.Random) -> None:
    """``count`` more randomised participants of the trial, with visits, records and queries."""
    import datetime as dt

    from django.utils import timezone

    from crfs.models import CRFRecord, DataQuery
    from patients.models import Participant, Status, Visit, VisitStatus

    trial, sites = fixture["trial"], fixture["sites"]
    definition = trial.current_version.definition
    today = timezone.localdate()
    now = timezone.now()
    numbers = {s.pk: Participant.objects.filter(site=s).count() for s in sites}
    index = sum(numbers.values())
    while count > 0:
        chunk = min(count, BATCH)
        count -= chunk
        rows = []
        for _ in range(chunk):
            site = sites[index % len(sites)]
            index += 1
            numbers[site.pk] += 1
            rows.append((site, numbers[site.pk],
                         today - dt.timedelta(days=rng.randrange(365 * 3))))
        participants = Participant.objects.bulk_create([
            Participant(trial=trial, site=site, study_id=f"{site.code}-{number:06d}",
                        protocol_version=trial.current_version, status=Status.ON_TREATMENT,
                        screened_on=day - dt.timedelta(days=21),
                        consent_date=day - dt.timedelta(days=21), consent_version="1.0",
                        created_by=fixture["coordinators"][site.pk])
            for site, number, day in rows])
        visits = []
        for p, (site, _, day) in zip(participants, rows):
            for v in fifty_visits(definition, day, rng):
                status, done_on = VisitStatus.PLANNED, None
                if v["closes"] < today - dt.timedelta(days=14):
                    draw_ = rng.random()
                    status = (VisitStatus.DONE if draw_ < 0.95 else
                              VisitStatus.MISSED if draw_ < 0.98 else VisitStatus.PLANNED)
                elif v["closes"] < today and rng.random() < 0.6:
                    status = VisitStatus.DONE
                if status == VisitStatus.DONE:
                    done_on = min(v["target"], today)
                visits.append(Visit(
                    participant=p, code=v["code"], label=v["label"], occurrence=v["occurrence"],
                    anchor_code=v["anchor"], anchor_date=day, target_date=v["target"],
                    window_opens=v["opens"], window_closes=v["closes"], status=status,
                    done_on=done_on, status_reason="" if status != VisitStatus.MISSED
                    else "Bench: patient did not come", crfs=v["crfs"]))
        visits = Visit.objects.bulk_create(visits, batch_size=5000)
        site_of = {p.pk: site for p, (site, _, _) in zip(participants, rows)}
        records = []
        for v in visits:
            if v.status != VisitStatus.DONE:
                continue
            coord = fixture["coordinators"][site_of[v.participant_id].pk]
            for code in v.crfs:
                draw_ = rng.random()
                if draw_ < 0.03:
                    continue  # missing
                status = ("complete" if draw_ < 0.83 else "signed" if draw_ < 0.93 else
                          "draft" if draw_ < 0.98 else "locked")
                records.append(CRFRecord(
                    participant_id=v.participant_id, crf_code=code, visit=v,
                    protocol_version=trial.current_version, data={"bench": True},
                    status=status, ever_completed=status != "draft", created_by=coord,
                    updated_by=coord, locked_at=now if status == "locked" else None,
                    locked_by=coord if status == "locked" else None))
        records = CRFRecord.objects.bulk_create(records, batch_size=5000)
        dm_queries = []
        for r in records:
            if rng.random() < 0.01:
                draw_ = rng.random()
                status = "open" if draw_ < 0.7 else "answered" if draw_ < 0.8 else "closed"
                dm_queries.append(DataQuery(record=r, field_path="bench", status=status,
                                            raised_at=now,
                                            closed_at=now if status == "closed" else None))
        DataQuery.objects.bulk_create(dm_queries, batch_size=5000)


def count_queries(made: dict) -> dict:
    """The SQL queries of each kind of request, in-process: {kind: [distinct counts]}."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client as TestClient
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    setup_test_environment()
    User = get_user_model()
    clients = {}
    for username in made["users"]:
        c = TestClient()
        c.force_login(User.objects.get(username=username))
        clients[username] = c
    rng = random.Random(1)
    for username in made["users"]:  # warm: each session's first request, protocol definitions
        clients[username].get(f"/trials/{made['trial']}/matrix/")
    out = {}
    for kind in KINDS:
        counts = set()
        for i in range(6):
            username, path = draw(kind, made, rng)
            with CaptureQueriesContext(connection) as ctx:
                response = clients[username].get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path} as {username}: HTTP {response.status_code}")
            counts.add(len(ctx.captured_queries))
        out[kind] = sorted(counts)
    return out


def table_counts(trial) -> dict:
    from crfs.models import CRFRecord, DataQuery
    from patients.models import Participant, Visit

    return {"participants": Participant.objects.filter(trial=trial).count(),
            "visits": Visit.objects.filter(participant__trial=trial).count(),
            "crf_records": CRFRecord.objects.filter(participant__trial=trial).count(),
            "queries": DataQuery.objects.filter(record__participant__trial=trial).count()}


if __name__ == "__main__":
    sys.exit(main())
