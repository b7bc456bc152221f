"""What the benchmarks share: a PostgreSQL database of their own, and browser-like clients.

Run from the benchmark scripts (``python bench/<script>.py``), which import it as ``common``.
"""
from __future__ import annotations

import http.client
import re
import socket
import subprocess
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password-2026"


def sh(*args, env=None, **kw):
    return subprocess.run(args, cwd=ROOT, env=env, check=True, **kw)


def recreate_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlparse(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    import psycopg

    parts = urllib.parse.urlparse(url)
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def second_factor(user) -> str:
    """Give ``user`` a confirmed authenticator (TOTP) device, as the setup page does once they
    scanned its QR code; its key (hex), from which ``totp_code`` computes what the app shows.
    Call inside the bench's Django setup, for users whose role requires two factors."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.create(user=user, name="bench authenticator", confirmed=True).key


def totp_code(key_hex: str) -> str:
    """The code an authenticator app shows now for a device's hex key (django-otp's own TOTP,
    with its TOTPDevice defaults: 30-second steps, 6 digits)."""
    from django_otp.oath import totp

    return f"{totp(bytes.fromhex(key_hex)):06d}"


class Client:
    """One browser-like client: a keep-alive connection, a session cookie, a CSRF token."""

    def __init__(self, port: int, cookies: dict[str, str] | None = None):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = dict(cookies or {})

    def request(self, method: str, path: str, form: dict | None = None) -> tuple[int, bytes]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                   "Host": "127.0.0.1"}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            # A worker recycled the keep-alive connection: reconnect once.
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                if name == "messages":
                    # A flash message ("Participant randomised.") is for the page the browser
                    # is redirected to, which shows it and clears the cookie. These clients do
                    # not fetch that page, so they drop the message as it would be dropped;
                    # kept, sixty of them would pile up in the cookie, then in the session.
                    continue
                self.cookies[name] = rest.split(";", 1)[0]
        return response.status, data

    def login(self, username: str, *, totp_key: str | None = None) -> None:
        """The login form, then, for a user with an authenticator (``totp_key`` from
        ``second_factor``), the second step with the code it shows now: as a person logs in."""
        status, page = self.request("GET", "/accounts/login/")
        status, _ = self.request("POST", "/accounts/login/", {
            "csrfmiddlewaretoken": _csrf(page), "username": username, "password": PASSWORD})
        if status != 302:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")
        if totp_key is None:
            return
        status, page = self.request("GET", "/accounts/two-factor/verify/")
        if status != 200:
            raise RuntimeError(f"second step of {username}: HTTP {status} for the verify page")
        status, _ = self.request("POST", "/accounts/two-factor/verify/", {
            "csrfmiddlewaretoken": _csrf(page), "code": totp_code(totp_key)})
        if status != 302:
            raise RuntimeError(f"second step of {username} failed: HTTP {status}")

    def post(self, path: str, form: dict) -> int:
        """A form POST with the session's CSRF token, as the browser sends it."""
        status, _ = self.request("POST", path, {**form,
                                                "csrfmiddlewaretoken": self.cookies["csrftoken"]})
        return status


def _csrf(page: bytes) -> str:
    return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
