"""Fault: a Celery worker killed (SIGKILL) in the middle of sending a reminder digest.

    .venv/bin/python bench/fault_worker_kill.py

Real services: PostgreSQL (``BENCH_DATABASE_URL``, else ``DATABASE_URL`` when PostgreSQL, else
``postgres://postgres@127.0.0.1:5432/ctms``: only the server is used, the script works in its
own database ``ctms_fault_worker``, dropped at the end) and Redis (``BENCH_REDIS_URL``, default
``redis://127.0.0.1:6379/15``, purged first).

1. The demo data is loaded, plus extra coordinators, so the daily job has a dozen digests.
2. Worker 1 (``celery -A config worker``, the production command) runs the daily job, which
   queues one digest task per person; the first digest hangs on an SMTP server that accepts
   the connection and never answers. Worker 1 is killed with SIGKILL while it waits.
3. Worker 2 starts with a working mail backend (files). Tasks are acknowledged late
   (``CELERY_TASK_ACKS_LATE``), so the killed task was never acknowledged: Redis gives it back
   after the visibility timeout (``CELERY_VISIBILITY_TIMEOUT``, 20 s here, one hour by default),
   with the same task id, which is the claim token, so it re-takes its own claimed rows.
4. Checked: every reminder delivery is marked sent, each recipient got exactly one e-mail,
   nothing lost, nothing doubled. Results in ``bench/results/fault_worker_kill.json``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, drop_database, recreate_database  # noqa: E402

DB = "ctms_fault_worker"
VISIBILITY_TIMEOUT = 20


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class BlackHoleSMTP:
    """Accepts connections and never says a word: a send blocks until EMAIL_TIMEOUT."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections.append(conn)


def start_worker(name: str, env: dict, logfile: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
         "-n", f"{name}@%h"],
        cwd=ROOT, env=env, stdout=open(logfile, "w"), stderr=subprocess.STDOUT)


def main() -> int:
    server = os.environ.get("BENCH_DATABASE_URL") or (
        os.environ.get("DATABASE_URL", "") if os.environ.get("DATABASE_URL", "").startswith(
            "postgres") else "postgres://postgres@127.0.0.1:5432/ctms")
    db_url = urllib.parse.urlparse(server)._replace(path=f"/{DB}").geturl()
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    work = Path(tempfile.mkdtemp(prefix="fault-worker-"))
    outbox = work / "mail"
    outbox.mkdir()
    base_env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.base", "DEBUG": "true",
                "DATABASE_URL": db_url, "CELERY_BROKER_URL": redis_url,
                "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT), "LOG_LEVEL": "WARNING"}
    os.environ.update(base_env)
    sys.path.insert(0, str(ROOT))
    recreate_database(db_url)
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from config.celery import app
    from patients import tasks
    from patients.models import ReminderDelivery
    from trials.models import Membership, Role, Trial

    workers: list[subprocess.Popen] = []
    result: dict = {"visibility_timeout_s": VISIBILITY_TIMEOUT}
    try:
        log(f"database {DB}: migrate and load the demo")
        call_command("migrate", verbosity=0)
        call_command("demo_setup", stdout=open(os.devnull, "w"))
        User = get_user_model()
        for trial in Trial.objects.all():
            for n, site in enumerate(trial.sites.filter(active=True).order_by("code")):
                user, _ = User.objects.get_or_create(
                    username=f"coord-{trial.slug[:6]}-{n}",
                    defaults={"email": f"coord-{trial.slug[:6]}-{n}@demo.invalid"})
                Membership.objects.get_or_create(user=user, trial=trial, site=site,
                                                 role=Role.COORDINATOR)
        app.control.purge()

        smtp = BlackHoleSMTP()
        env1 = {**base_env, "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}", "EMAIL_TIMEOUT": "600"}
        workers.append(start_worker("fault-1", env1, work / "worker1.log"))
        today = timezone.localdate().isoformat()
        tasks.send_visit_reminders.delay(today)
        log("worker 1 started; daily job queued")
        deadline = time.monotonic() + 120
        while not smtp.connections or not ReminderDelivery.objects.exclude(
                claimed_by="").filter(sent_at=None).exists():
            if time.monotonic() > deadline:
                raise SystemExit("worker 1 never reached the mail server:\n"
                                 + (work / "worker1.log").read_text()[-3000:])
            time.sleep(0.2)
        time.sleep(1)
        claimed = ReminderDelivery.objects.exclude(claimed_by="").filter(sent_at=None)
        victim = claimed.first().recipient_id
        result.update(
            deliveries=ReminderDelivery.objects.count(),
            recipients=ReminderDelivery.objects.values("recipient").distinct().count(),
            claimed_when_killed=claimed.count(),
            sent_when_killed=ReminderDelivery.objects.exclude(sent_at=None).count())
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed_at = time.monotonic()
        log(f"worker 1 killed (SIGKILL) while sending to user {victim}: {result}")

        env2 = {**base_env, "EMAIL_URL": f"filemail:///{outbox}"}
        workers.append(start_worker("fault-2", env2, work / "worker2.log"))
        log("worker 2 started, mail to files; waiting for the killed task to come back")
        deadline = time.monotonic() + VISIBILITY_TIMEOUT + 120
        while ReminderDelivery.objects.filter(sent_at=None).exists():
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        result["recovered_after_s"] = round(time.monotonic() - killed_at, 1)
        mails = [p.read_text() for p in outbox.iterdir()]
        to_lines = [line for m in mails for line in m.splitlines() if line.startswith("To: ")]
        expected = {u.email for u in User.objects.filter(
            pk__in=ReminderDelivery.objects.values("recipient"))}
        victim_email = User.objects.get(pk=victim).email
        result.update(
            unsent_at_end=ReminderDelivery.objects.filter(sent_at=None).count(),
            emails=len(mails),
            duplicates=len(to_lines) - len(set(to_lines)),
            missing=sorted(expected - {line[4:].strip() for line in to_lines}),
            killed_recipient_mails=sum(1 for line in to_lines if victim_email in line))
        ok = (result["unsent_at_end"] == 0 and result["duplicates"] == 0 and not result["missing"]
              and result["emails"] == result["recipients"]
              and result["killed_recipient_mails"] == 1)
        result["ok"] = ok
        log(("PASS" if ok else "FAIL") + f": {json.dumps(result)}")
        out = ROOT / "bench" / "results" / "fault_worker_kill.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
        return 0 if ok else 1
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
        from django.db import connections

        connections.close_all()
        app.control.purge()
        drop_database(db_url)


if __name__ == "__main__":
    sys.exit(main())
