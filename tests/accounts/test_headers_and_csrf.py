"""Security headers on every page, a content security policy the templates keep to (no inline
script, style or event handler), and a CSRF token in every POST form of every page."""
import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from tests.crawl import Page, crawl

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo, built once for the six crawls (about 20 s each to build) and committed; each
    crawl still runs in its own rolled-back transaction. Emptied after the module, as a
    transactional test's database is."""
    from config.celery import app

    eager = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = True  # as in every test (conftest ``_celery_eager``)
    try:
        with django_db_blocker.unblock(), override_settings(DEBUG=True):
            call_command("demo_setup", stdout=open("/dev/null", "w"))
    finally:
        app.conf.CELERY_TASK_ALWAYS_EAGER = eager
    yield
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.mark.parametrize("username", ["admin", "investigator", "coordinator", "datamanager",
                                      "statistician", "dmc"])
def test_every_post_form_carries_a_csrf_token_and_no_page_has_inline_code(
        username, demo, settings, client, client_for, django_user_model):
    settings.DEBUG = True
    client_for(django_user_model.objects.get(username=username))
    pages = crawl(client)
    assert len(pages) > 5
    forms = 0
    for url, (response, page) in pages.items():
        for form in page.forms:
            if form["method"] == "post":
                forms += 1
                assert form["csrf"], f"{url}: POST form to {form['action']} without CSRF token"
        if not url.startswith("/admin/"):  # Django's own admin templates are not ours
            assert not page.inline, f"{url}: {page.inline}"
    assert forms > 0


def test_the_login_page_has_a_csrf_token_and_no_inline_code(client, db):
    page = Page()
    page.feed(client.get(reverse("login")).content.decode())
    assert [f["csrf"] for f in page.forms if f["method"] == "post"] == [True]
    assert not page.inline


def test_a_post_without_its_csrf_token_is_refused(make_user, client_for, db):
    from tests.conftest import PASSWORD

    strict = Client(enforce_csrf_checks=True)
    user = make_user()
    assert strict.post(reverse("login"), {"username": user.username,
                                          "password": PASSWORD}).status_code == 403
    strict.force_login(user)
    assert strict.post(reverse("set_profile_language"), {"language": "fr"}).status_code == 403
    assert strict.post(reverse("logout")).status_code == 403


EXPECTED_CSP = ["default-src 'self'", "script-src 'self'", "style-src 'self'",
                "frame-ancestors 'none'", "form-action 'self'", "object-src 'none'"]


@pytest.mark.parametrize("url", ["/accounts/login/", "/", "/health/", "/admin/login/"])
def test_security_headers_are_on_every_response(url, client, client_for, make_user):
    client_for(make_user())
    response = client.get(url)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "camera=()" in response["Permissions-Policy"]
    csp = [d.strip() for d in response["Content-Security-Policy"].split(";")]
    for directive in EXPECTED_CSP:
        assert directive in csp, (directive, csp)
    assert "unsafe-inline" not in response["Content-Security-Policy"]


def test_production_adds_hsts_and_secure_cookies():
    import os
    import secrets
    import subprocess
    import sys

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.production",
           "SECRET_KEY": secrets.token_urlsafe(60), "ALLOWED_HOSTS": "trials.example.org"}
    env.pop("DEBUG", None)
    code = ("import django;django.setup();from django.conf import settings as s;"
            "print(s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
            "s.SECURE_SSL_REDIRECT, s.DEBUG)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=settings.BASE_DIR, check=True)
    assert out.stdout.split() == ["31536000", "True", "True", "True", "False"]
