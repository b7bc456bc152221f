"""Streamed exports at 1,000 and 10,000 participants: time, rows, bytes and memory.

    .venv/bin/python bench/export_stream.py                    # 1000 then 10000 participants
    .venv/bin/python bench/export_stream.py --sizes 1000 --keep

For each size, on the local PostgreSQL (``BENCH_DATABASE_URL``, default
``postgres://postgres@127.0.0.1:5432/ctms_bench_exports``, with ``_SIZE`` appended; dropped at
the end unless ``--keep``): the database is created, migrated and filled as ``bench/pages.py``
does (both shipped trials, half the participants each, randomised over three years, their
visits and a CRF record per CRF of every done visit; bulk-loaded from a few participants made
through the real services). Then, each in a fresh process, as the data manager (all sites;
blinded in REMINET):

- ``long``: every CRF of both trials as long CSV (one file per CRF), requested through Django's
  test client and read chunk by chunk from the ``StreamingHttpResponse``;
- ``wide``: the same in the wide form;
- ``odm``: both trials' CDISC ODM 1.3.2 files.

Each is run twice: once timed (wall time, rows = lines, bytes, SQL queries, peak RSS of the
process and its growth over the RSS after start-up and one warm-up export), once under
``tracemalloc`` for the peak of Python allocations while streaming. Rows are CSV lines
(headers included), or participants (``SubjectData``) for ODM. Memory must stay flat:
the same at 10,000 as at 1,000 participants. Results in ``bench/results/export_stream.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from common import drop_database, recreate_database, sh

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_DATABASE = "postgres://postgres@127.0.0.1:5432/ctms_bench_exports"
KINDS = ["long", "wide", "odm"]
FLAT_TARGET = 1.25  # peak RSS growth at the largest size at most this times the smallest's + 8 MB


def database_for(base: str, size: int) -> str:
    parts = urllib.parse.urlparse(base)
    return parts._replace(path=f"{parts.path.rstrip('/')}_{size}").geturl()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--reuse", action="store_true",
                        help="use databases kept by --keep instead of building them")
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL",
                                                             DEFAULT_DATABASE))
    parser.add_argument("--fill", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fill is not None:
        fill(args.fill, args.seed)
        return 0
    if args.measure:
        print(json.dumps(measure(args.measure, trace=args.trace)))
        return 0
    if not urllib.parse.urlparse(args.database).scheme.startswith("postgres"):
        sys.exit(f"The benchmark needs PostgreSQL (got {args.database!r}).")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "false",
           "CELERY_BROKER_URL": "", "EMAIL_URL": "memorymail://", "PYTHONPATH": str(ROOT),
           "LOG_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore::UserWarning"}
    runs = []
    try:
        for size in sorted(set(args.sizes)):
            url = database_for(args.database, size)
            size_env = {**env, "DATABASE_URL": url}
            run = {"size": size, "database": url, "kinds": {}}
            if not args.reuse:
                print(f"== {size:,} participants: preparing {url}", flush=True)
                start = time.perf_counter()
                recreate_database(url)
                sh(PY, "manage.py", "migrate", "-v0", env=size_env)
                out = sh(PY, str(Path(__file__).resolve()), "--fill", str(size), "--seed",
                         str(args.seed), env=size_env, stdout=subprocess.PIPE, text=True)
                run["counts"] = json.loads(out.stdout.strip().splitlines()[-1])
                run["setup_s"] = round(time.perf_counter() - start, 1)
                print(f"  setup {run['setup_s']} s: {run['counts']}", flush=True)
            for kind in KINDS:
                result = {}
                for trace in (False, True):
                    cmd = [PY, str(Path(__file__).resolve()), "--measure", kind]
                    out = sh(*cmd, *(["--trace"] if trace else []), env=size_env,
                             stdout=subprocess.PIPE, text=True)
                    measured = json.loads(out.stdout.strip().splitlines()[-1])
                    if trace:
                        result["tracemalloc_peak_mb"] = measured["tracemalloc_peak_mb"]
                    else:
                        result.update(measured)
                run["kinds"][kind] = result
                print(f"  {kind:5} {result['seconds']:7.1f} s  {result['files']} files  "
                      f"{result['rows']:>11,} rows  {result['bytes'] / 1e6:9.1f} MB  "
                      f"{result['queries']} queries  peak RSS {result['peak_rss_mb']} MB "
                      f"(+{result['rss_growth_mb']} MB while streaming)  tracemalloc peak "
                      f"{result['tracemalloc_peak_mb']} MB", flush=True)
            runs.append(run)
    finally:
        if not args.keep:
            for size in args.sizes:
                drop_database(database_for(args.database, size))
    verdict = flatness(runs)
    print(verdict["text"])
    results = ROOT / "bench" / "results" / "export_stream.json"
    results.parent.mkdir(exist_ok=True)
    tree = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    results.write_text(json.dumps({"machine": {"cpus": os.cpu_count(),
                                               "load": os.getloadavg()},
                                   "tree": tree, "runs": runs, "flat": verdict}, indent=2))
    print(f"Written to {results.relative_to(ROOT)}")
    return 0 if verdict["flat"] else 1


def flatness(runs: list[dict]) -> dict:
    if len(runs) < 2:
        return {"flat": True, "text": "one size only: flatness not compared"}
    small, large = runs[0], runs[-1]
    lines, flat = [], True
    for kind in KINDS:
        a, b = small["kinds"][kind], large["kinds"][kind]
        ok = (b["rss_growth_mb"] <= a["rss_growth_mb"] * FLAT_TARGET + 8
              and b["tracemalloc_peak_mb"] <= a["tracemalloc_peak_mb"] * FLAT_TARGET + 8)
        flat &= ok
        lines.append(f"{kind}: {a['rows']:,} → {b['rows']:,} rows; RSS growth "
                     f"{a['rss_growth_mb']} → {b['rss_growth_mb']} MB, tracemalloc peak "
                     f"{a['tracemalloc_peak_mb']} → {b['tracemalloc_peak_mb']} MB: "
                     + ("flat" if ok else "NOT FLAT"))
    return {"flat": flat, "text": "\n".join(lines)}


def fill(size: int, seed: int) -> None:
    """The data of ``bench/pages.py``: its fixture, templates and bulk replicas."""
    import random

    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    import pages

    fixture = pages.make_fixture()
    templates = pages.make_templates(fixture)
    pages.replicate(fixture, templates, size - len(templates["participants"]),
                    random.Random(seed))
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(json.dumps(pages.table_counts()))


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def measure(kind: str, *, trace: bool) -> dict:
    import tracemalloc

    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from reports.exports import trial_layouts
    from trials.models import Trial

    user = get_user_model().objects.get(username="bench-dm")
    client = Client()
    client.force_login(user)
    urls = []
    for trial in Trial.objects.order_by("slug"):
        if kind == "odm":
            urls.append(reverse("export_odm", args=[trial.slug]))
        else:
            urls += [reverse("export_crf_csv", args=[trial.slug, code, kind])
                     for code in trial_layouts(trial)]

    def stream(url: str) -> tuple[int, int, int]:
        response = client.get(url)
        assert response.status_code == 200 and response.streaming, url
        n_bytes = n_rows = n_chunks = 0
        for chunk in response.streaming_content:
            n_bytes += len(chunk)
            n_rows += chunk.count(b"</SubjectData>" if kind == "odm" else b"\n")
            n_chunks += 1
        return n_bytes, n_rows, n_chunks

    stream(urls[-1])  # warm-up: imports, templates, definitions cached
    baseline = _current_rss_mb()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    totals = [0, 0, 0]
    with CaptureQueriesContext(connection) as queries:
        for url in urls:
            for i, n in enumerate(stream(url)):
                totals[i] += n
    seconds = time.perf_counter() - start
    result = {"files": len(urls), "bytes": totals[0], "rows": totals[1], "chunks": totals[2],
              "seconds": round(seconds, 2), "queries": len(queries),
              "baseline_rss_mb": baseline, "peak_rss_mb": _rss_mb(),
              "rss_growth_mb": round(max(0.0, _rss_mb() - baseline), 1)}
    if trace:
        result["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 2)
    return result


if __name__ == "__main__":
    sys.exit(main())
