"""Benchmark: the casebook PDF of one REMINET participant with 60 visits (issue 20).

    .venv/bin/python bench/casebook.py                    # 60 visits
    .venv/bin/python bench/casebook.py --visits 60 120 --runs 2 --keep

Needs a PostgreSQL server: ``BENCH_DATABASE_URL``, else ``DATABASE_URL`` when it is a
PostgreSQL URL, else ``postgres://postgres@127.0.0.1:5432/ctms``; it works in a database of
its own, ``ctms_bench_casebook``, which it creates, migrates and drops at the end (``--keep``
keeps it).

Data, per size N (one participant each, built with the ORM's bulk inserts, answers made by the
demo's ``crf_answers`` from the shipped protocol so that every field has a value to print):
a randomised REMINET participant (kit-coded allocation, two consent records) with N visits
as the protocol plans them — baseline (demographics, tumour assessment), then an injection
every 28 days (injection and adverse events, two adverse events a visit) and a tumour
assessment every 3 months —, every visit done and every form entered; each form with three
versions in its history (draft, complete, a corrected value with its reason), a signature,
and one form in four with a query answered by the site (two messages); plus the eligibility
form outside visits.

Timed: the casebook built exactly as the Celery task builds it (``reports.services.build``:
claim, read, lay out, PDF, publish) for the blinded data manager (kit codes) and for the
unblinded statistician (arms), each in a fresh Python process; the build's SQL statements are
counted too (the same at every N). Target: under 5 s at 60 visits.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "ctms_bench_casebook"
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/ctms"


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


def _answers(crf: dict, on: dt.date) -> dict:
    from demo.data import crf_answers

    data = crf_answers(crf, on=on)
    for field in crf["fields"]:
        if field["type"] == "group":
            data[field["code"]] = [crf_answers({"fields": field["fields"]}, on=on)
                                   for _ in range(2)]
    return data


def _corrected(data: dict) -> tuple[dict, dict]:
    """(the version before the correction, the corrected one): the first number answered
    was one more."""
    before = dict(data)
    for code, value in data.items():
        if isinstance(value, int) and not isinstance(value, bool):
            before[code] = value + 1
            break
        if isinstance(value, str) and value and not value[:1].isdigit():
            before[code] = value + " (to check)"
            break
    return before, data


def fill(n_visits: int, number: int) -> dict:
    """One participant with ``n_visits`` visits, every form entered, changed, signed."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from crfs import trail
    from crfs.models import CRFRecord, CRFSignature, DataQuery, QueryMessage
    from patients.models import ConsentRecord, Participant, Visit
    from randomisation.models import Allocation, AllocationList
    from trials.models import Membership, Trial, crf_of

    User = get_user_model()
    History = CRFRecord.history.model
    trial = Trial.objects.get(slug="reminet")
    site = trial.sites.order_by("code").first()
    version = trial.current_version
    users = {}
    for name, role, first, last in (("investigator", "investigator", "Irène", "Curie"),
                                    ("data_manager", "data_manager", "Damien", "Manager"),
                                    ("statistician", "statistician", "Stéphane", "Statistician")):
        users[name], created = User.objects.get_or_create(
            username=name, defaults={"first_name": first, "last_name": last})
        if created:
            Membership.objects.create(user=users[name], trial=trial, role=role,
                                      site=site if role == "investigator" else None)
    inv = users["investigator"]
    alist = AllocationList.objects.filter(trial=trial).first() or AllocationList.objects.create(
        trial=trial, protocol_version=version, number=1, method="permuted_blocks",
        source="generated", seed="bench", status="active", created_by=inv)
    start = timezone.localdate() - dt.timedelta(days=28 * n_visits + 30)
    participant = Participant.objects.create(
        trial=trial, site=site, study_id=f"BENCH-{number:04d}", protocol_version=version,
        status="on_treatment", screened_on=start - dt.timedelta(days=10),
        consent_date=start - dt.timedelta(days=10), consent_version="1.0", created_by=inv)
    ConsentRecord.objects.create(participant=participant, kind="first", version="1.0",
                                 consent_date=start - dt.timedelta(days=10), taken_by="Dr Curie",
                                 protocol_version=version, recorded_by=inv)
    arm = trial.arms.order_by("position").first()
    Allocation.objects.create(participant=participant, trial=trial, allocation_list=alist,
                              stratum_key="bench", strata={}, arm=arm,
                              kit_code=f"K{number:05d}",
                              randomised_at=timezone.make_aware(dt.datetime.combine(
                                  start, dt.time(10))), randomised_by=inv)
    # The visits as the protocol plans them: baseline, injections every 28 days, tumour
    # assessments every 3 months, merged by date.
    plan = [(start, "baseline", "Baseline", ["demographics", "tumour_assessment"])]
    k = 1
    while len(plan) < n_visits:
        plan.append((start + dt.timedelta(days=28 * k), "injection", "Injection",
                     ["injection", "adverse_events"]))
        if k % 3 == 0 and len(plan) < n_visits:
            plan.append((start + dt.timedelta(days=28 * k + 1), "tumour_assessment",
                         "Tumour assessment", ["tumour_assessment"]))
        k += 1
    occurrences: dict[str, int] = {}
    visits = []
    for day, code, label, crfs in plan:
        occurrences[code] = occurrences.get(code, 0) + 1
        visits.append(Visit(participant=participant, code=code, label=label,
                            occurrence=occurrences[code], anchor_code="randomisation",
                            anchor_date=start, target_date=day,
                            window_opens=day - dt.timedelta(days=3),
                            window_closes=day + dt.timedelta(days=3), status="done",
                            done_on=day, crfs=crfs))
    Visit.objects.bulk_create(visits)
    visits = list(Visit.objects.filter(participant=participant).order_by("target_date"))
    records, payloads = [], []
    for visit in [None] + visits:
        codes = ["eligibility"] if visit is None else visit.crfs
        for code in codes:
            crf = crf_of(version.pk, code)
            day = visit.target_date if visit else start - dt.timedelta(days=5)
            before, after = _corrected(_answers(crf, day))
            records.append(CRFRecord(participant=participant, crf_code=code, visit=visit,
                                     protocol_version=version, data=after, status="signed",
                                     ever_completed=True, created_by=inv, updated_by=inv))
            payloads.append(before)
    CRFRecord.objects.bulk_create(records)  # PostgreSQL returns their keys
    now = timezone.now()
    history, signatures = [], []
    for record, before in zip(records, payloads):
        common = {f.attname: getattr(record, f.attname) for f in CRFRecord._meta.concrete_fields}
        draft = {k: v for k, v in before.items() if k != next(iter(before))}
        for step, (data, status, reason, kind) in enumerate((
                (draft, "draft", None, "+"), (before, "complete", None, "~"),
                (record.data, "complete", "Corrected after checking the source document", "~"),
                (record.data, "signed", "Signed", "~"))):
            history.append(History(**{**common, "data": data, "status": status},
                                   history_date=now + dt.timedelta(seconds=step),
                                   history_change_reason=reason, history_type=kind,
                                   history_user=inv))
    History.objects.bulk_create(history)
    signed_rows = {row.id: row for row in History.objects.filter(
        id__in=[r.pk for r in records], status="signed")}
    for record in records:
        signatures.append(CRFSignature(record=record, signer=inv, signed_at=now,
                                       meaning="accurate", printed_name="Irène Curie",
                                       digest=trail.content_digest(record),
                                       signed_version=signed_rows[record.pk]))
    CRFSignature.objects.bulk_create(signatures)
    queries = DataQuery.objects.bulk_create([
        DataQuery(record=r, field_path=next(iter(r.data)), status="answered", raised_at=now,
                  raised_by=users["data_manager"]) for r in records[::4]])
    QueryMessage.objects.bulk_create(
        [QueryMessage(query=q, kind="raised", author=users["data_manager"], at=now,
                      text="Please confirm this value against the source.") for q in queries]
        + [QueryMessage(query=q, kind="answered", author=inv, at=now,
                        text="Confirmed: as in the hospital record.") for q in queries])
    return {"participant": participant.pk, "visits": len(visits), "forms": len(records),
            "history_rows": len(history), "queries": len(queries),
            "data_manager": users["data_manager"].pk, "statistician": users["statistician"].pk}


def build_one(url: str, participant_id: int, user_id: int, out: str) -> None:
    """In the child process: request and build one casebook as the task does; print timings."""
    start = time.perf_counter()
    setup_django(url, migrate=False)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from patients.models import Participant
    from reports import services as reports
    from reports.models import ReportRequest

    user = get_user_model().objects.get(pk=user_id)
    participant = Participant.objects.select_related("trial").get(pk=participant_id)
    report = ReportRequest.objects.create(trial=participant.trial, kind="casebook",
                                          requested_by=user, participant=participant,
                                          requested_at=timezone.now())
    statements = []
    ready = time.perf_counter()
    with connection.execute_wrapper(lambda execute, sql, *a: (statements.append(sql),
                                                              execute(sql, *a))[1]):
        outcome = reports.build(report.pk, token=f"bench-{report.pk}")
    done = time.perf_counter()
    report.refresh_from_db()
    Path(out).write_bytes(bytes(report.content or b""))
    print(json.dumps({"outcome": outcome, "error": report.error, "build_s": done - ready,
                      "startup_s": ready - start, "bytes": report.size,
                      "statements": len(statements), "with_arms": report.with_arms}))


def measure(url: str, participant_id: int, user_id: int, out: Path) -> dict:
    start = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--build-one", url, str(participant_id),
                            str(user_id), str(out)], stdout=subprocess.PIPE, text=True,
                           cwd=ROOT, check=True)
    wall = time.perf_counter() - start
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    if figures["outcome"] != "done":
        raise SystemExit(f"build failed: {figures['error']}")
    pages = None
    try:
        info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True)
        pages = int(next(line.split()[-1] for line in info.stdout.splitlines()
                         if line.startswith("Pages:")))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return {"build_s": round(figures["build_s"], 2), "process_s": round(wall, 2),
            "statements": figures["statements"], "with_arms": figures["with_arms"],
            "pdf_kb": round(figures["bytes"] / 1024, 1), "pages": pages}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--build-one":
        build_one(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[60])
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
        sizes = []
        for i, n in enumerate(args.visits, start=1):
            t = time.perf_counter()
            data = fill(n, i)
            print(f"{data['visits']} visits, {data['forms']} forms, {data['history_rows']} "
                  f"history rows, {data['queries']} queries, inserted in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            sizes.append(data)
        from django.db import connection, connections

        with connection.cursor() as c:
            c.execute("ANALYZE")
        connections.close_all()
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        rows = []
        for data in sizes:
            for reader in ("data_manager", "statistician"):
                for run in range(args.runs):
                    pdf = out_dir / f"casebook_{data['visits']}_{reader}.pdf"
                    row = {"visits": data["visits"], "forms": data["forms"], "reader": reader,
                           "run": run + 1, **measure(url, data["participant"], data[reader],
                                                     pdf)}
                    rows.append(row)
                    verdict = "OK" if row["build_s"] < 5 else "OVER"
                    print(f"{data['visits']:>4} visits {reader:>12} run {run + 1}: build "
                          f"{row['build_s']} s (whole process {row['process_s']} s), "
                          f"{row['statements']} SQL statements, {row['pages']} pages, "
                          f"PDF {row['pdf_kb']} kB [{verdict}]", flush=True)
        (out_dir / "casebook.json").write_text(json.dumps({"sizes": sizes, "builds": rows},
                                                          indent=2))
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    main()
