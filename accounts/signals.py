"""Logins, logouts, failed logins and lockouts, written to the audit log (UTC timestamps).

Receivers of Django's own authentication signals and of django-axes' lockout signal: the
documented hooks for these events. They write audit entries and nothing else.
"""
from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from core import audit


def client_ip(request) -> str:
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


@receiver(user_logged_in, dispatch_uid="accounts.audit_login")
def audit_login(sender, request, user, **kwargs):
    audit.record("auth.login", f"{user.get_username()} logged in (password)", actor=user,
                 detail={"ip": client_ip(request)})


@receiver(user_logged_out, dispatch_uid="accounts.audit_logout")
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        audit.record("auth.logout", f"{user.get_username()} logged out", actor=user,
                     detail={"ip": client_ip(request)})


@receiver(user_login_failed, dispatch_uid="accounts.audit_login_failed")
def audit_login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    audit.record("auth.login_failed", f"failed login for {username!r}",
                 detail={"username": username, "ip": client_ip(request)})


@receiver(user_locked_out, dispatch_uid="accounts.audit_lockout")
def audit_lockout(sender, request, username, ip_address, **kwargs):
    audit.record("auth.locked_out", f"{username!r} locked out from {ip_address}",
                 detail={"username": username, "ip": ip_address})
