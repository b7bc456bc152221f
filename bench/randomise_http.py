"""Randomisation over HTTP under concurrency, against a trivial authenticated write.

    .venv/bin/python bench/randomise_http.py [--clients 1,4,16] [--requests 40]

What it does, on this machine only (127.0.0.1):
1. creates a fresh PostgreSQL database (``--database``, default ``ctms_bench_randomise`` on the
   local server), migrates it, loads the protocols, seals a REMINET allocation list and
   registers enough consented, eligible participants spread over the four strata;
2. starts the app with gunicorn and the production settings (DEBUG off, persistent database
   connections) and gunicorn's production configuration (``gunicorn.conf.py``: a worker per
   core plus one), as it runs in production behind its proxy;
3. for each number of concurrent clients N, each client logs in (session + CSRF, like a
   browser) and sends ``--requests`` POSTs to the trivial endpoint (saving the interface
   language on the profile: one authenticated write), then ``--requests`` randomisations
   (the confirmation form's POST, which checks eligibility, derives the strata, locks the
   stratum, takes the slot and writes the allocation, status and audit entry);
4. prints throughput and p50/p95/p99 latency for both (the trivial write shows how fast the
   machine is at the time: a reference, not a target), then the targets, met or not; writes
   them to ``bench/results/randomise_http.json``.

Targets (bench/README.md): randomisation p95 under 150 ms at 4 clients, and at 16 clients every
request answered (no error, no lock time-out).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from common import PASSWORD, Client, free_port, recreate_database, sh

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


SETUP = r"""
import json, django
django.setup()
from django.contrib.auth import get_user_model
from trials.models import Membership, Trial
from trials.services import load_protocol, shipped_protocol_files
from randomisation import services
from tests import factories

for path in shipped_protocol_files():
    load_protocol(path)
trial = Trial.objects.get(slug="reminet")
User = get_user_model()
stat = User.objects.create_user("bench-stat", password="{pw}")
Membership.objects.create(user=stat, trial=trial, role="statistician")
services.seal_and_activate(services.generate_list(trial, by=stat, seed="bench",
                                                  slots_per_stratum={slots}), by=stat)
out = {{"clients": [], "participants": []}}
for i in range({clients}):
    user = User.objects.create_user(f"bench-coord-{{i}}", password="{pw}")
    Membership.objects.create(user=user, trial=trial, role="coordinator")
    out["clients"].append(user.username)
levels = [("G1", "objective_response"), ("G1", "stable_disease"),
          ("G2", "objective_response"), ("G2", "stable_disease")]
for i in range({participants}):
    grade, response = levels[i % 4]
    p = factories.eligible_participant(trial, trial.sites.order_by("code")[i % 2], by=stat,
                                       tumour_grade=grade, l1_response=response)
    out["participants"].append({{"study_id": p.study_id,
                                 "strata": {{"grade": grade, "l1_response": response}}}})
print(json.dumps(out))
"""


def settle(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        conn.execute("CHECKPOINT")


def _stat(pid: str) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the process ended


def _cpu(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # user + system


def cpu_now(server_pid: int) -> tuple[float, float, float]:
    """CPU seconds used so far by the app server (gunicorn and its workers), by the database
    server (every ``postgres`` process) and by these clients."""
    app = database = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(pid)
        if fields is None:
            continue
        if pid == str(server_pid) or fields[1] == str(server_pid):
            app += _cpu(fields)
        else:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres"):
                    database += _cpu(fields)
            except OSError:
                pass
    return app, database, time.process_time()


def run_phase(clients: list[Client], work: list[list[tuple[str, dict]]], server_pid: int,
              into: dict) -> None:
    """Every client sends its jobs at once; latencies, wall time and CPU are added to ``into``."""
    failures = into.setdefault("failure_list", [])
    latencies = into.setdefault("latencies", [])
    lock = threading.Lock()
    barrier = threading.Barrier(len(clients))

    def drive(client: Client, jobs):
        mine = []
        barrier.wait()
        for path, form in jobs:
            start = time.perf_counter()
            status = client.post(path, form)
            mine.append(time.perf_counter() - start)
            if status != 302:
                with lock:
                    failures.append(f"{path}: HTTP {status}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=drive, args=(c, w)) for c, w in zip(clients, work)]
    cpu_before = cpu_now(server_pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    into["seconds"] = into.get("seconds", 0.0) + time.perf_counter() - start
    cpu = [after - before for before, after in zip(cpu_before, cpu_now(server_pid))]
    into["cpu"] = [a + b for a, b in zip(into.get("cpu", [0.0, 0.0, 0.0]), cpu)]


def summary(phase: dict) -> dict:
    latencies, n = phase["latencies"], len(phase["latencies"])
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    app, database, clients = (round(c / n * 1000, 2) for c in phase["cpu"])
    return {"requests": n, "failures": len(phase["failure_list"]),
            "first_failures": phase["failure_list"][:3], "seconds": round(phase["seconds"], 3),
            "throughput_per_s": round(n / phase["seconds"], 1),
            "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1),
            "p99_ms": round(q[98] * 1000, 1),
            "cpu_ms_per_request": {"app": app, "database": database, "clients": clients}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--requests", type=int, default=20,
                        help="requests per client per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of trivial then randomise at each level")
    parser.add_argument("--workers", type=int, default=None,
                        help="gunicorn worker processes (default: gunicorn.conf.py's, a worker "
                             "per core plus one, as in production)")
    parser.add_argument("--database", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ctms_bench_randomise"))
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    max_clients = max(levels)
    needed = sum(n * args.requests * args.rounds for n in levels)

    env = {**os.environ, "DATABASE_URL": args.database, "DJANGO_SETTINGS_MODULE":
           "config.settings.base", "DEBUG": "false", "CELERY_BROKER_URL": "",
           "PYTHONPATH": str(ROOT), "LOG_LEVEL": "WARNING"}
    print(f"Preparing {args.database} with {needed} eligible participants…", flush=True)
    recreate_database(args.database)
    sh(PY, "manage.py", "migrate", "-v0", env=env)
    setup = SETUP.format(pw=PASSWORD, slots=needed, clients=max_clients, participants=needed)
    made = json.loads(sh(PY, "-c", setup, env=env, capture_output=True, text=True).stdout
                      .strip().splitlines()[-1])
    # Statistics and a checkpoint now, as a database in service has them, rather than an
    # autovacuum of the freshly loaded tables and a checkpoint in the middle of a measurement.
    settle(args.database)

    port = free_port()
    server_env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings.production",
                  "SECRET_KEY": secrets.token_urlsafe(60), "ALLOWED_HOSTS": "127.0.0.1",
                  "SECURE_SSL_REDIRECT": "false", "DATABASE_CONN_MAX_AGE": "600",
                  "EMAIL_URL": "consolemail://"}
    sh(PY, "manage.py", "collectstatic", "--noinput", "-v0", env=server_env)
    if args.workers is not None:
        server_env["WEB_WORKERS"] = str(args.workers)
    server = subprocess.Popen(
        [PY, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        clients = [Client(port) for _ in range(max_clients)]
        for client, username in zip(clients, made["clients"]):
            client.login(username)
        # Counted once the logins were answered: gunicorn listens before its workers start.
        workers = sum(1 for pid in filter(str.isdigit, os.listdir("/proc"))
                      if (_stat(pid) or [None, None])[1] == str(server.pid))
        print(f"gunicorn: {workers} workers on {len(os.sched_getaffinity(0))} cores", flush=True)
        pool = iter(made["participants"])
        results = []
        for n in levels:
            # Rounds alternate the two endpoints, so that a change in the machine's speed
            # during the run (a shared virtual machine's) weighs on both alike.
            phases: dict[str, dict] = {"trivial": {}, "randomise": {}}
            for _ in range(args.rounds):
                run_phase(clients[:n], [[("/profile/language/", {"language": "en", "next": "/"})]
                                        * args.requests for _ in range(n)],
                          server.pid, phases["trivial"])
                randomise_work = []
                for _ in range(n):
                    jobs = []
                    for _ in range(args.requests):
                        p = next(pool)
                        form = {f"stratum_{k}": v for k, v in p["strata"].items()}
                        jobs.append((f"/trials/reminet/participants/{p['study_id']}/randomise/",
                                     form))
                    randomise_work.append(jobs)
                run_phase(clients[:n], randomise_work, server.pid, phases["randomise"])
            trivial, randomise = summary(phases["trivial"]), summary(phases["randomise"])
            results.append({"clients": n, "trivial": trivial, "randomise": randomise})
            print(f"N={n:>2}  trivial {trivial['throughput_per_s']:>6}/s "
                  f"p50 {trivial['p50_ms']:>6} p95 {trivial['p95_ms']:>6} p99 {trivial['p99_ms']:>6} ms"
                  f" | randomise {randomise['throughput_per_s']:>6}/s p50 {randomise['p50_ms']:>6} "
                  f"p95 {randomise['p95_ms']:>6} p99 {randomise['p99_ms']:>6} ms"
                  f" | failures {trivial['failures'] + randomise['failures']}",
                  flush=True)
            for name, phase in (("trivial", trivial), ("randomise", randomise)):
                cpu = phase["cpu_ms_per_request"]
                print(f"      {name:>9} CPU per request: app {cpu['app']} ms, database "
                      f"{cpu['database']} ms, clients {cpu['clients']} ms", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
        if err.strip():
            print("server log:\n" + err.decode()[-2000:])

    check = sh(PY, "-c", (
        "import django; django.setup()\n"
        "from randomisation.models import Allocation\n"
        "seq = sorted(Allocation.objects.values_list('stratum_key', 'slot__sequence'))\n"
        "by = {}\n"
        "[by.setdefault(k, []).append(s) for k, s in seq]\n"
        "print(all(sorted(v) == list(range(1, len(v) + 1)) for v in by.values()), len(seq))"),
        env=env, capture_output=True, text=True).stdout.split()
    results_file = ROOT / "bench" / "results" / "randomise_http.json"
    results_file.parent.mkdir(exist_ok=True)
    report = {"machine": {"cpus": os.cpu_count()}, "workers": workers,
              "requests_per_client_per_round": args.requests, "rounds": args.rounds,
              "levels": results,
              "slots_consecutive": check[0] == "True", "allocations": int(check[1])}
    results_file.write_text(json.dumps(report, indent=2))
    print(f"Allocations made: {check[1]}; every stratum's slots consecutive: {check[0]}")
    print(f"Written to {results_file.relative_to(ROOT)}")
    failures = sum(r["trivial"]["failures"] + r["randomise"]["failures"] for r in results)
    at = {r["clients"]: r["randomise"] for r in results}
    if 4 in at:
        p95 = at[4]["p95_ms"]
        print(f"Target: randomisation p95 < 150 ms at 4 clients: {p95} ms, "
              f"{'met' if p95 < 150 else 'NOT met'}")
    if 16 in at:
        failed = at[16]["failures"]
        print(f"Target: every randomisation answered at 16 clients: {failed} failed, "
              f"{'met' if not failed else 'NOT met'}")
    return 1 if failures or check[0] != "True" else 0


if __name__ == "__main__":
    sys.exit(main())
