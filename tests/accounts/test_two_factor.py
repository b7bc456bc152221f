"""Two-factor authentication: who must use it, the login's second step, set-up, management."""
import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.models import AuditEvent
from tests import factories
from tests.conftest import PASSWORD
from trials.models import Membership, Role
from trials.policy import ROLE_PERMISSIONS, TWO_FACTOR_PERMS, requires_two_factor

pytestmark = pytest.mark.django_db


def password_login(client, user):
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return response


@pytest.mark.parametrize("role", [r.value for r in Role])
def test_the_roles_that_sign_unblind_or_manage_lists_require_two_factors(role, rectal, make_user):
    user = make_user(role, rectal)
    assert requires_two_factor(user) == bool(ROLE_PERMISSIONS[role] & TWO_FACTOR_PERMS)
    assert requires_two_factor(user) == (role in {"investigator", "statistician",
                                                  "safety_officer", "supply_manager",
                                                  "dmc"})


def test_superusers_require_two_factors_and_inactive_memberships_do_not(rectal, make_user):
    from django.contrib.auth import get_user_model

    root = get_user_model().objects.create_superuser("root", "r@example.org", PASSWORD)
    assert requires_two_factor(root)
    investigator = make_user("investigator", rectal)
    Membership.objects.filter(user=investigator).update(active=False)
    assert not requires_two_factor(investigator)


def test_a_user_who_needs_two_factors_and_has_none_is_sent_to_set_up(client, rectal, make_user):
    user = make_user("investigator", rectal, rectal.sites.first())
    password_login(client, user)
    for url in (reverse("home"), reverse("trial_detail", args=[rectal.slug]),
                reverse("two_factor_manage"), "/admin/"):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.url.startswith(reverse("two_factor_setup")), url
    page = client.get(reverse("two_factor_setup"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "<svg" in html and "style=" not in html.split("<svg", 1)[1].split("</svg>")[0]
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', html).group(1)
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert secret  # the same key as the device's, in base32
    assert client.get(reverse("two_factor_setup")).content.decode().count(secret) == 1

    wrong = client.post(reverse("two_factor_setup"), {"code": "000000" if factories.totp_code(
        device) != "000000" else "111111"})
    assert "not the one your app shows" in wrong.content.decode()
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed

    # After a wrong code the device refuses every code for a while (1 s, doubling with each
    # failure): guessing is throttled.
    throttled = client.post(reverse("two_factor_setup"), {"code": factories.totp_code(device)})
    assert not TOTPDevice.objects.get(pk=device.pk).confirmed, throttled
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=None)
    done = client.post(reverse("two_factor_setup"), {"code": factories.totp_code(device)})
    assert done.status_code == 200 and "backup codes" in done.content.decode()
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert StaticToken.objects.filter(device__user=user).count() == 10
    assert client.get(reverse("home")).status_code == 200
    assert AuditEvent.objects.filter(action="auth.2fa_enabled", actor=user).exists()


def test_with_a_device_the_password_alone_opens_nothing(client, rectal, make_user):
    user = make_user("statistician", rectal)
    device = factories.totp_device(user)
    password_login(client, user)
    response = client.get(reverse("trial_detail", args=[rectal.slug]))
    assert response.status_code == 302 and response.url.startswith(reverse("two_factor_verify"))
    assert client.get("/api/anything/").status_code == 403
    refused = client.post(reverse("two_factor_verify"), {"code": "12345"})
    assert "Wrong or expired code" in refused.content.decode()
    assert AuditEvent.objects.filter(action="auth.2fa_failed", actor=user).exists()
    TOTPDevice.objects.filter(pk=device.pk).update(throttling_failure_timestamp=None)  # 1 s on
    ok = client.post(reverse("two_factor_verify") + "?next=/trials/" + rectal.slug + "/",
                     {"code": factories.totp_code(device),
                      "next": f"/trials/{rectal.slug}/"})
    assert ok.status_code == 302 and ok.url == f"/trials/{rectal.slug}/"
    assert client.get(ok.url).status_code == 200


def test_a_backup_code_works_once(client, rectal, make_user):
    from accounts import services

    user = make_user("investigator", rectal)
    factories.totp_device(user)
    code = services.new_backup_codes(user)[0]
    password_login(client, user)
    assert client.post(reverse("two_factor_verify"), {"code": code}).status_code == 302
    assert client.get(reverse("home")).status_code == 200
    client.post(reverse("logout"))
    password_login(client, user)
    again = client.post(reverse("two_factor_verify"), {"code": code})
    assert again.status_code == 200 and client.get(reverse("home")).status_code == 302


def test_an_external_next_url_is_not_followed(client, rectal, make_user):
    user = make_user("investigator", rectal)
    device = factories.totp_device(user)
    password_login(client, user)
    response = client.post(reverse("two_factor_verify"), {
        "code": factories.totp_code(device), "next": "https://evil.example.org/"})
    assert response.url == "/"


def test_other_users_may_opt_in_and_then_need_the_code(client, client_for, rectal, make_user):
    user = make_user("sponsor", rectal)
    assert not requires_two_factor(user)
    client_for(user)
    assert client.get(reverse("home")).status_code == 200
    assert "Off." in client.get(reverse("two_factor_manage")).content.decode()
    client.get(reverse("two_factor_setup"))
    device = TOTPDevice.objects.get(user=user)
    client.post(reverse("two_factor_setup"), {"code": factories.totp_code(device)})
    client.post(reverse("logout"))
    password_login(client, user)
    assert client.get(reverse("home")).url.startswith(reverse("two_factor_verify"))


def test_removing_or_resetting_needs_the_password_and_is_audited(client, client_for, rectal,
                                                                 make_user):
    user = make_user("investigator", rectal)
    client_for(user)
    refused = client.post(reverse("two_factor_manage"), {"action": "remove", "password": "no"})
    assert "This is not your password" in refused.content.decode()
    assert TOTPDevice.objects.filter(user=user).exists()
    codes = client.post(reverse("two_factor_manage"),
                        {"action": "backup_codes", "password": PASSWORD})
    assert codes.status_code == 200 and StaticToken.objects.filter(device__user=user).count() == 10
    reset = client.post(reverse("two_factor_manage"), {"action": "remove", "password": PASSWORD})
    # An investigator must have a second factor: removing it means setting up a new one.
    assert reset.url == reverse("two_factor_setup")
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert client.get(reverse("home")).url.startswith(reverse("two_factor_setup"))
    assert AuditEvent.objects.filter(action="auth.2fa_removed", actor=user).exists()
    assert AuditEvent.objects.filter(action="auth.2fa_backup_codes", actor=user).exists()


def test_an_unverified_session_cannot_remove_the_device(client, rectal, make_user):
    user = make_user("investigator", rectal)
    factories.totp_device(user)
    password_login(client, user)
    response = client.post(reverse("two_factor_manage"), {"action": "remove",
                                                           "password": PASSWORD})
    assert response.status_code == 302 and response.url.startswith(reverse("two_factor_verify"))
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def test_client_for_gives_a_verified_session_to_those_who_need_one(client, client_for, rectal,
                                                                    make_user):
    investigator = make_user("investigator", rectal)
    client_for(investigator)
    assert client.get(reverse("home")).status_code == 200


def test_demo_accounts_that_need_two_factors_get_the_published_secret(settings, client):
    from base64 import b32decode
    from io import StringIO

    from django.core.management import CommandError, call_command

    from demo.management.commands.demo_setup import DEMO_TOTP_SECRET

    settings.DEBUG = True
    out = StringIO()
    call_command("demo_setup", stdout=out)
    assert DEMO_TOTP_SECRET in out.getvalue()
    with_device = set(TOTPDevice.objects.filter(confirmed=True)
                      .values_list("user__username", flat=True))
    assert with_device == {"admin", "investigator", "investigator2", "investigator3",
                           "statistician", "safety", "supply", "dmc"}
    assert {d.key for d in TOTPDevice.objects.all()} == {b32decode(DEMO_TOTP_SECRET).hex()}

    code = StringIO()
    call_command("demo_totp_code", "investigator", stdout=code)
    client.post(reverse("login"), {"username": "investigator", "password": "demo-trials-2026"})
    assert client.post(reverse("two_factor_verify"),
                       {"code": code.getvalue().strip()}).status_code == 302
    assert client.get(reverse("home")).status_code == 200

    real = TOTPDevice.objects.get(user__username="statistician")
    real.name, real.key = "authenticator", TOTPDevice().key  # the statistician's own phone
    real.save()
    with pytest.raises(CommandError, match="demo accounts only"):
        call_command("demo_totp_code", "statistician", stdout=StringIO())
    with pytest.raises(CommandError, match="demo accounts only"):
        call_command("demo_totp_code", "sponsor", stdout=StringIO())


@pytest.mark.parametrize("name", ["two_factor_setup", "two_factor_verify", "two_factor_manage"])
def test_the_two_factor_pages_send_anonymous_visitors_to_log_in(client, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login")) and "next=" in response["Location"]


def test_verify_sends_a_verified_session_on_and_one_without_a_device_to_set_up(
        client_for, rectal, make_user):
    verified = client_for(make_user("investigator", rectal, rectal.sites.first()))
    response = verified.get(reverse("two_factor_verify") + "?next=/trials/")
    assert (response.status_code, response["Location"]) == (302, "/trials/")
    without = client_for(make_user("sponsor", rectal))  # two factors optional, none set up
    response = without.get(reverse("two_factor_verify"))
    assert (response.status_code, response["Location"]) == (302, reverse("two_factor_setup"))
