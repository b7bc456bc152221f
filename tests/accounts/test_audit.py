"""Accounts in the audit log: logins, logouts, password changes, accounts and memberships
created or changed in the admin. Every entry has a UTC timestamp."""
import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from core.models import AuditEvent
from tests.conftest import PASSWORD
from trials.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_verified(client, client_for):
    root = get_user_model().objects.create_superuser("root", "r@example.org", PASSWORD)
    return client_for(root), root


def test_login_and_logout_are_audited_in_utc(client, make_user):
    user = make_user()
    client.post(reverse("login"), {"username": user.username, "password": PASSWORD},
                REMOTE_ADDR="192.0.2.4")
    client.post(reverse("logout"))
    login = AuditEvent.objects.get(action="auth.login")
    assert login.actor == user and login.detail["ip"] == "192.0.2.4"
    assert login.at.tzinfo is not None and login.at.utcoffset() == dt.timedelta(0)
    assert AuditEvent.objects.get(action="auth.logout").actor == user


def test_a_password_change_is_audited(client, client_for, make_user):
    user = make_user()
    client_for(user)
    new = "a-much-Longer-pass-2026"
    client.post(reverse("password_change"), {"old_password": PASSWORD, "new_password1": new,
                                             "new_password2": new})
    assert AuditEvent.objects.get(action="auth.password_changed").actor == user


def test_accounts_created_and_changed_in_the_admin_are_audited(admin_client_verified):
    client, root = admin_client_verified
    response = client.post("/admin/auth/user/add/", {
        "username": "newcomer", "password1": "Another-long-pass-2026",
        "password2": "Another-long-pass-2026", "usable_password": "true"})
    assert response.status_code == 302, response.content.decode()[:2000]
    user = get_user_model().objects.get(username="newcomer")
    assert AuditEvent.objects.get(action="account.created").actor == root
    response = client.post(f"/admin/auth/user/{user.pk}/change/", {
        "username": "newcomer", "email": "n@example.org", "is_active": "on", "is_staff": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00",
        "initial-date_joined_0": "2026-01-01", "initial-date_joined_1": "10:00:00"})
    assert response.status_code == 302, response.content.decode()[:3000]
    changed = AuditEvent.objects.get(action="account.changed")
    assert "is_staff" in changed.message and "email" in changed.message
    response = client.post(f"/admin/auth/user/{user.pk}/password/", {
        "password1": "Yet-another-pass-2026", "password2": "Yet-another-pass-2026",
        "usable_password": "true"})
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="auth.password_changed", actor=root).exists()


def test_memberships_created_changed_and_deactivated_in_the_admin_are_audited(
        admin_client_verified, rectal, make_user):
    client, root = admin_client_verified
    user = make_user()
    site = rectal.sites.order_by("code").first()
    response = client.post("/admin/trials/membership/add/", {
        "user": user.pk, "trial": rectal.pk, "site": site.pk, "role": "coordinator",
        "active": "on"})
    assert response.status_code == 302, response.content.decode()[:2000]
    membership = Membership.objects.get(user=user)
    created = AuditEvent.objects.get(action="membership.created")
    assert created.actor == root and created.trial == rectal and user.username in created.message
    client.post(f"/admin/trials/membership/{membership.pk}/change/", {
        "user": user.pk, "trial": rectal.pk, "site": site.pk, "role": "investigator",
        "active": "on"})
    assert "role" in AuditEvent.objects.get(action="membership.changed").detail["changed"]
    client.post(f"/admin/trials/membership/{membership.pk}/change/", {
        "user": user.pk, "trial": rectal.pk, "site": site.pk, "role": "investigator"})
    assert AuditEvent.objects.filter(action="membership.deactivated").count() == 1
