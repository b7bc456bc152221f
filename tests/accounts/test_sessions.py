"""Sessions end after inactivity (SESSION_IDLE_MINUTES, 30 by default) and with the browser;
passwords are hashed with Argon2 and must be strong."""
import datetime as dt

import pytest
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db


def test_each_request_pushes_the_expiry_back_and_an_idle_session_ends(client, client_for,
                                                                        make_user):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    client_for(make_user())
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    Session.objects.filter(pk=key).update(expire_date=timezone.now() + dt.timedelta(minutes=5))
    assert client.get(reverse("home")).status_code == 200
    left = Session.objects.get(pk=key).expire_date - timezone.now()
    assert dt.timedelta(minutes=29) < left <= dt.timedelta(minutes=30)
    # 30 minutes without a request: the session is over.
    Session.objects.filter(pk=key).update(expire_date=timezone.now() - dt.timedelta(seconds=1))
    response = client.get(reverse("home"))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_the_session_cookie_lasts_until_the_browser_closes(client, make_user):
    from tests.conftest import PASSWORD

    user = make_user()
    client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["expires"] == "" and cookie["max-age"] == ""
    assert cookie["httponly"]


@pytest.mark.parametrize("password, problem", [
    ("short-pw-1", "at least 12 characters"),
    ("123456789012345", "entirely numeric"),
    ("password1234", "too common"),
    ("janedoe-smith", "too similar"),
])
def test_weak_passwords_are_refused(password, problem, django_user_model):
    user = django_user_model(username="janedoe-smith", first_name="Jane", last_name="Smith")
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user)
    assert problem in " ".join(refused.value.messages)


def test_argon2_is_the_hasher_of_new_passwords():
    """The test suite swaps in a fast hasher (tests/conftest.py); production settings do not."""
    import subprocess
    import sys

    code = ("import django;django.setup();from django.contrib.auth.hashers import make_password;"
            "print(make_password('x-long-enough-pass'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"DJANGO_SETTINGS_MODULE": "config.settings.base",
                              "PATH": "/usr/bin:/bin"}, cwd=settings.BASE_DIR, check=True)
    assert out.stdout.startswith("argon2$argon2id$")


def test_the_expiry_is_pushed_back_at_most_once_a_minute(client, client_for, make_user, reminet):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client_for(make_user("sponsor", reminet))
    client.get(reverse("home"))  # touches the session, checks the second factor once
    with CaptureQueriesContext(connection) as queries:
        assert client.get(reverse("home")).status_code == 200
    sql = " ".join(q["sql"] for q in queries)
    assert "UPDATE \"django_session\"" not in sql, "not saved again within the minute"
    assert "otp_totp_totpdevice" not in sql and "otp_static" not in sql


def test_a_role_that_requires_two_factors_applies_within_a_minute(client, client_for, make_user,
                                                                  reminet):
    from accounts.middleware import PENDING_KEY
    from trials.models import Membership

    user = make_user("sponsor", reminet)
    client_for(user)
    assert client.get(reverse("home")).status_code == 200
    Membership.objects.create(user=user, trial=reminet, role="statistician")
    session = client.session
    checked = session[PENDING_KEY]
    session[PENDING_KEY] = [checked[0], checked[1] - 61, checked[2]]  # a minute later
    session.save()
    response = client.get(reverse("home"))
    assert response.status_code == 302 and "/two-factor/setup/" in response.url
