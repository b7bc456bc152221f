"""Production settings pass Django's deployment checks with real values, and refuse fake ones."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env):
    # The browser tests allow async-unsafe calls in their own process; the checked process must
    # see the environment a production server sees.
    environ = {k: v for k, v in os.environ.items()
               if k not in ("DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    environ.update(DJANGO_SETTINGS_MODULE="config.settings.production", **env)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=ROOT, env=environ, capture_output=True, text=True)


def test_check_deploy_is_clean_with_real_values():
    result = run_check(SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="trials.example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_demo_secret_key():
    result = run_check(SECRET_KEY="insecure-demo-key-change-me-in-production-0123456789",
                       ALLOWED_HOSTS="trials.example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be a random string" in result.stderr


def _gunicorn_config(**env) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("WEB_WORKERS", "WEB_TIMEOUT")}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "--print-config",
                             "config.wsgi:application"], cwd=ROOT, env={**environ, **env},
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {name.strip(): value.strip() for name, _, value in
            (line.partition("=") for line in result.stdout.splitlines())}


def test_gunicorn_runs_a_worker_per_core_and_one_more_with_room_for_long_exports():
    config = _gunicorn_config()
    assert config["config"] == "./gunicorn.conf.py"
    assert config["workers"] == str(len(os.sched_getaffinity(0)) + 1)
    assert config["timeout"] == "600"  # a streamed export runs longer than gunicorn's 30 s
    config = _gunicorn_config(WEB_WORKERS="5", WEB_TIMEOUT="120")
    assert (config["workers"], config["timeout"]) == ("5", "120")


def test_every_way_of_serving_the_app_leaves_workers_and_timeout_to_the_config():
    for path in ("docker-compose.yml", "bin/run-stack"):
        command = [line for line in (ROOT / path).read_text().splitlines()
                   if "gunicorn config.wsgi" in line]
        assert command and not any("--workers" in line or "--timeout" in line
                                   for line in command), path
