"""Browser tests: Debian's Chromium driven by Playwright against the live test server.

Chromium is the system one (``/usr/bin/chromium``, Debian package ``chromium``); Playwright's own
browser download is never used. Without it these tests skip, and fail under CI. Screenshots of
each flow's final state are kept in ``test-artifacts/``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in the test's thread; the test itself only drives
# the browser, and the live server answers from its own thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser():
    if not shutil.which(CHROMIUM):
        message = f"needs Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + " — under CI it must be installed", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield browser
        browser.close()


@pytest.fixture(params=[{"width": 1280, "height": 800}, {"width": 820, "height": 1180}],
                ids=["laptop", "tablet"])
def page(request, browser, live_server):
    context = browser.new_context(viewport=request.param, base_url=live_server.url)
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def login(page, username: str, password: str) -> None:
    """Log in through the forms, with the second factor when the user needs one: at set-up the
    code is computed from the secret the page shows (as an authenticator app would), at the
    second step from the device's key."""
    from base64 import b32decode

    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.factories import totp_code

    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    if "/two-factor/setup/" in page.url:
        secret = page.text_content("code.secret").strip()
        page.fill("#id_code", totp_code(TOTPDevice(key=b32decode(secret).hex())))
        page.click("button:has-text('Confirm')")
        page.click("text=Continue")
    elif "/two-factor/verify/" in page.url:
        device = TOTPDevice.objects.get(user__username=username, confirmed=True)
        page.fill("#id_code", totp_code(device))
        page.click("button:has-text('Verify')")
    page.wait_for_url("**/")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
