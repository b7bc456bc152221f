"""Who the API knows: a token or a session (CSRF enforced on writes), nobody else; and the
page where a user makes and revokes their own token, audited."""
from __future__ import annotations

from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token

from core.models import AuditEvent


def test_anonymous_calls_get_401_json(places, client):
    response = client.get(reverse("api_trials"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert "detail" in response.json()


def test_a_token_works_without_a_session(places, make_user, token_client):
    user = make_user("sponsor", places.trial)
    response = token_client(user).get(reverse("api_trials"))
    assert response.status_code == 200
    assert [t["slug"] for t in response.json()] == [places.trial.slug]


def test_a_wrong_token_is_401(places, client):
    response = client.get(reverse("api_trials"), HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401


def test_session_writes_need_the_csrf_token(places, make_user, client_for):
    user = make_user("coordinator", places.trial, places.own.site)
    strict = Client(enforce_csrf_checks=True)  # as a browser: the session of a real login
    strict.cookies = client_for(user).cookies
    url = reverse("api_participants", args=[places.trial.slug])
    response = strict.post(url, {"site": places.own.site.code}, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    strict.get(reverse("home"))  # sets the CSRF cookie, as the browser would have
    response = strict.post(url, {"site": places.own.site.code}, content_type="application/json",
                           HTTP_X_CSRFTOKEN=strict.cookies["csrftoken"].value)
    assert response.status_code == 201


def test_a_user_creates_sees_once_and_revokes_their_token(places, make_user, client_for):
    user = make_user("investigator", places.trial, places.own.site)
    client = client_for(user)
    page = client.get(reverse("api_token"))
    assert page.status_code == 200 and "You have no API token." in page.content.decode()
    created = client.post(reverse("api_token"), {"action": "create"})
    key = Token.objects.get(user=user).key
    assert key in created.content.decode()
    assert created["Cache-Control"].startswith("max-age=0")
    assert key not in client.get(reverse("api_token")).content.decode()  # shown once only
    assert AuditEvent.objects.filter(action="api.token_created", actor=user).exists()
    client.post(reverse("api_token"), {"action": "revoke"})
    assert not Token.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action="api.token_revoked", actor=user).exists()
    anonymous = Client()
    assert anonymous.get(reverse("api_trials"),
                         HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_the_token_page_needs_a_login(db, client):
    response = client.get(reverse("api_token"))
    assert response.status_code == 302 and reverse("login") in response.url
