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
