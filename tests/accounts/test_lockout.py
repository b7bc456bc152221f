"""Lockout after repeated failed logins (django-axes: 5 failures per username + address lock
that pair for 15 minutes), and the audit entries of failed logins and lockouts."""
import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.urls import reverse

from core.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def attempt(client, username, password, ip="203.0.113.7"):
    return client.post(reverse("login"), {"username": username, "password": password},
                       REMOTE_ADDR=ip)


def test_five_wrong_passwords_lock_the_account_from_that_address(client, make_user):
    user = make_user()
    assert settings.AXES_FAILURE_LIMIT == 5
    for n in range(4):
        response = attempt(client, user.username, f"wrong-{n}")
        assert response.status_code == 200
        assert "Please enter a correct username and password" in response.content.decode()
    locked = attempt(client, user.username, "wrong-4")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Even the right password is refused now, from that address, for that user.
    assert attempt(client, user.username, PASSWORD).status_code == 429
    assert client.get(reverse("home")).status_code == 302  # not logged in
    # Another address (a colleague's workstation) is not locked out.
    assert attempt(client, user.username, PASSWORD, ip="198.51.100.2").status_code == 302


def test_failed_logins_and_the_lockout_are_audited_with_username_and_address(client, make_user):
    user = make_user()
    for n in range(5):
        attempt(client, user.username, f"wrong-{n}")
    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert failed.count() == 5
    event = failed.first()
    assert event.detail == {"username": user.username, "ip": "203.0.113.7"}
    assert event.at.utcoffset().total_seconds() == 0  # an aware UTC instant
    assert PASSWORD not in str(list(failed.values_list("message", "detail")))
    lockout = AuditEvent.objects.get(action="auth.locked_out")
    assert lockout.detail == {"username": user.username, "ip": "203.0.113.7"}


def test_an_unknown_username_is_counted_and_audited_too(client, db):
    attempt(client, "nobody", "guess")
    assert AuditEvent.objects.get(action="auth.login_failed").detail["username"] == "nobody"
    assert AccessAttempt.objects.filter(username="nobody").exists()


def test_a_successful_login_resets_the_count(client, make_user):
    user = make_user()
    for n in range(4):
        attempt(client, user.username, f"wrong-{n}")
    assert attempt(client, user.username, PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for n in range(4):
        assert attempt(client, user.username, f"again-{n}").status_code == 200


def test_wrong_passwords_at_signature_count_towards_the_lockout(rf, make_user):
    """The password typed again to sign or unblind goes through the same lockout."""
    from core.reauth import password_confirmed
    from django.contrib.sessions.backends.db import SessionStore

    user = make_user()
    for _ in range(5):
        request = rf.post("/", REMOTE_ADDR="203.0.113.9")
        request.session = SessionStore()
        assert not password_confirmed(request, user, "wrong")
    request = rf.post("/", REMOTE_ADDR="203.0.113.9")
    request.session = SessionStore()
    assert not password_confirmed(request, user, PASSWORD)
