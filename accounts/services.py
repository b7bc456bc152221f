"""Two-factor authentication: set up, verify, backup codes, remove. Every change is audited.

A user has at most one TOTP device (an authenticator app) and one set of static backup codes
(django-otp's plugins). A device is *confirmed* once the user has typed a code it produced.
"""
from __future__ import annotations

import io

from django.db import transaction
from django_otp import devices_for_user, login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core import audit

BACKUP_CODES = 10
DEMO_DEVICE_NAME = "demo authenticator (published secret)"


def has_device(user) -> bool:
    return any(True for _ in devices_for_user(user, confirmed=True))


def pending_device(user) -> TOTPDevice:
    """The unconfirmed TOTP device being set up (made on first call, kept until confirmed, so
    reloading the page does not change the secret the user is scanning)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    return device


def qr_svg(device: TOTPDevice) -> str:
    """The provisioning URI as an inline SVG (no external service, no inline style)."""
    import qrcode
    import qrcode.image.svg

    out = io.BytesIO()
    qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage).save(out)
    svg = out.getvalue().decode()
    return svg[svg.index("<svg"):]


def secret_base32(device: TOTPDevice) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode()


@transaction.atomic
def confirm_device(request, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm ``device`` with a code it produced; return new backup codes, or None if the code
    is wrong. The session becomes OTP-verified."""
    user = request.user
    device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
    if not device.verify_token(code.strip().replace(" ", "")):
        audit.record("auth.2fa_setup_failed", f"{user.get_username()}: wrong code at set-up",
                     actor=user)
        return None
    TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes = _new_backup_codes(user)
    otp_login(request, device)
    audit.record("auth.2fa_enabled", f"{user.get_username()} set up two-factor authentication",
                 actor=user)
    return codes


def verify(request, code: str) -> bool:
    """Check ``code`` against the user's devices (authenticator first, then backup codes);
    on success mark the session verified. Every attempt is audited; devices throttle guesses."""
    user = request.user
    code = code.strip().replace(" ", "")
    for device in devices_for_user(user, confirmed=True):
        with transaction.atomic():
            locked = type(device).objects.select_for_update().get(pk=device.pk)
            allowed, _ = locked.verify_is_allowed()
            if allowed and locked.verify_token(code):
                otp_login(request, locked)
                how = "backup code" if isinstance(locked, StaticDevice) else "authenticator"
                audit.record("auth.2fa_verified", f"{user.get_username()} verified ({how})",
                             actor=user, detail={"device": how})
                return True
    audit.record("auth.2fa_failed", f"{user.get_username()}: wrong two-factor code", actor=user)
    return False


def _new_backup_codes(user) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, name="backup codes",
                                                   defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
    return codes


@transaction.atomic
def new_backup_codes(user) -> list[str]:
    """Replace the user's backup codes (each works once); the old ones stop working."""
    codes = _new_backup_codes(user)
    audit.record("auth.2fa_backup_codes", f"{user.get_username()} generated new backup codes",
                 actor=user)
    return codes


def remaining_backup_codes(user) -> int:
    return StaticToken.objects.filter(device__user=user).count()


@transaction.atomic
def remove_two_factor(user, *, by) -> None:
    """Delete the user's devices. A user who must use two factors is sent back to set-up."""
    TOTPDevice.objects.filter(user=user).delete()
    StaticDevice.objects.filter(user=user).delete()
    audit.record("auth.2fa_removed", f"two-factor authentication of {user.get_username()} "
                 f"removed by {by.get_username()}", actor=by, detail={"user": user.pk})


def create_demo_device(user, key_hex: str) -> TOTPDevice:
    """A confirmed TOTP device with a published secret: demo accounts only (demo_setup)."""
    device, _ = TOTPDevice.objects.update_or_create(
        user=user, name=DEMO_DEVICE_NAME, defaults={"key": key_hex, "confirmed": True})
    return device


def current_code(device: TOTPDevice) -> str:
    """The code an authenticator app shows now for ``device`` (demo command, tests)."""
    import time

    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"
