"""The connection to PostgreSQL lost before, during and after the randomisation's COMMIT.

Issue 22: randomisations committed while the connection died were answered "Nothing was saved";
on retry they were "already randomised" and the coordinator never saw the kit. Now:

- lost before COMMIT (the backend terminated between the writes): the server rolls back;
  "Nothing was saved" is true, and the retry with the key randomises, once;
- lost during COMMIT (the COMMIT never reaches the server) and lost after it (the server
  commits, its answer never comes back): the client cannot tell these apart, and the answer
  says so: 503, the outcome is unknown, reload the participant's page. The retry with the key
  answers the allocation made, if one was, or makes it: never a second one;
- lost after a COMMIT that succeeded, while the API built its answer: 503 saying it was saved.

"During" and "after" put a TCP proxy between the application and PostgreSQL that cuts the
connection when it sees the COMMIT: before forwarding it, or after the server's reply to it.
"""
from __future__ import annotations

import select
import socket
import threading

import pytest
from django.db import connection
from django.urls import reverse

from core.models import AuditEvent
from patients.models import Participant, Status
from randomisation import services
from randomisation.models import Allocation
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STRATA = {"stratum_grade": "G2", "stratum_l1_response": "stable_disease"}
COMMIT = b"Q\x00\x00\x00\x0bCOMMIT\x00"  # the simple-query message psycopg sends to commit


class CommitCutter:
    """A TCP proxy to PostgreSQL that, once armed, cuts the connection at the first COMMIT:
    ``mode`` "before_server" (the COMMIT is never forwarded: the server rolls back) or
    "after_server" (forwarded; the server's reply is swallowed: the server has committed)."""

    def __init__(self, host: str, port: int, mode: str):
        self.upstream = (host, port)
        self.mode = mode
        self.armed = False
        self.cut = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client, server):
        swallow = False
        try:
            while True:
                ready, _, _ = select.select([client, server], [], [])
                if client in ready:
                    data = client.recv(65536)
                    if not data:
                        return
                    if self.armed and COMMIT in data:
                        self.armed = False
                        if self.mode == "before_server":
                            self.cut.set()
                            return
                        swallow = True
                    server.sendall(data)
                if server in ready:
                    data = server.recv(65536)
                    if not data:
                        return
                    if swallow:  # the server's "COMMIT" reply: committed, never told
                        self.cut.set()
                        return
                    client.sendall(data)
        finally:
            client.close()
            server.close()

    def close(self):
        self.listener.close()


@pytest.fixture
def cutter(request):
    """The test's connections go through a ``CommitCutter`` (mode: the test's parameter)."""
    settings = connection.settings_dict
    saved = (settings["HOST"], settings["PORT"], dict(settings.get("OPTIONS") or {}))
    proxy = CommitCutter(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432),
                         request.param)
    connection.close()
    settings.update(HOST="127.0.0.1", PORT=str(proxy.port),
                    OPTIONS={**saved[2], "sslmode": "disable"})
    yield proxy
    connection.close()
    settings.update(HOST=saved[0], PORT=saved[1], OPTIONS=saved[2])
    proxy.close()


def _ready(reminet_ready, client_for):
    trial, coordinator = reminet_ready
    participant = factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                                 l1_response="stable_disease")
    client_for(coordinator)
    return trial, coordinator, participant


@pytest.mark.parametrize("cutter, committed", [("before_server", False), ("after_server", True)],
                         indirect=["cutter"], ids=["during-commit", "after-commit"])
def test_a_connection_cut_at_commit_says_the_outcome_is_unknown_and_the_retry_tells(
        reminet_ready, client, client_for, cutter, committed):
    trial, _coordinator, participant = _ready(reminet_ready, client_for)
    url = reverse("randomise", args=[trial.slug, participant.study_id])
    cutter.armed = True
    response = client.post(url, {**STRATA, "key": "retry-me"})
    assert cutter.cut.is_set(), "the proxy saw the COMMIT"
    body = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert "whether they were saved is unknown" in body
    assert "Nothing was saved" not in body
    assert f'href="{url}"' in body  # reload: the participant's allocation, if one was made
    connection.close()
    assert Allocation.objects.filter(participant=participant).exists() is committed
    # The coordinator reloads and submits again with the same key: one allocation, with kit.
    retry = client.post(url, {**STRATA, "key": "retry-me"})
    assert retry.status_code == 302, retry.content.decode()[:2000]
    allocation = Allocation.objects.get()
    assert allocation.participant == participant and allocation.idempotency_key == "retry-me"
    assert allocation.kit_code in client.get(retry.url).content.decode()
    assert AuditEvent.objects.filter(action="participant.randomised").count() == 1
    assert Participant.objects.get(pk=participant.pk).status == Status.RANDOMISED


@pytest.mark.parametrize("cutter", ["after_server"], indirect=True)
def test_the_api_says_the_outcome_is_unknown_and_the_retry_answers_the_same_allocation(
        reminet_ready, client, client_for, cutter):
    trial, _coordinator, participant = _ready(reminet_ready, client_for)
    url = reverse("api_randomise", args=[trial.slug, participant.study_id])
    cutter.armed = True
    response = client.post(url, {}, content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="api-retry")
    assert response.status_code == 503
    assert response.json()["outcome"] == "unknown"
    assert "Nothing was saved" not in response.json()["detail"]
    connection.close()
    retry = client.post(url, {}, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="api-retry")
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.json()["kit_code"] == Allocation.objects.get().kit_code


def _terminate_own_backend():
    import psycopg

    s = connection.settings_dict
    dsn = f"host={s['HOST'] or '127.0.0.1'} port={s['PORT'] or 5432} dbname={s['NAME']} " \
          f"user={s['USER']}" + (f" password={s['PASSWORD']}" if s["PASSWORD"] else "")
    pid = connection.connection.info.backend_pid
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_connection_lost_before_commit_saved_nothing_and_the_retry_randomises_once(
        reminet_ready, client, client_for, monkeypatch):
    """Terminated (pg_terminate_backend, from another connection) after the allocation is
    written and before the status and the audit entry: one transaction, rolled back."""
    from patients import status as participant_status

    trial, _coordinator, participant = _ready(reminet_ready, client_for)
    real = participant_status.mark_randomised

    def lose_the_connection(p, *, by):
        assert Allocation.objects.filter(participant=p).exists()  # written, not committed
        _terminate_own_backend()
        return real(p, by=by)

    monkeypatch.setattr(participant_status, "mark_randomised", lose_the_connection)
    url = reverse("randomise", args=[trial.slug, participant.study_id])
    response = client.post(url, {**STRATA, "key": "before"})
    assert response.status_code == 503
    assert "Nothing was saved" in response.content.decode()
    connection.close()
    assert not Allocation.objects.exists()
    monkeypatch.setattr(participant_status, "mark_randomised", real)
    assert client.post(url, {**STRATA, "key": "before"}).status_code == 302
    assert client.post(url, {**STRATA, "key": "before"}).status_code == 302
    assert Allocation.objects.get().participant == participant


def test_a_connection_lost_after_the_commit_while_answering_says_it_was_saved(
        reminet_ready, client, client_for, monkeypatch):
    from api import views as api_views

    trial, _coordinator, participant = _ready(reminet_ready, client_for)
    real = api_views.allocations.allocation_of

    def lose_the_connection(p):
        _terminate_own_backend()
        return real(p)

    monkeypatch.setattr(api_views.allocations, "allocation_of", lose_the_connection)
    url = reverse("api_randomise", args=[trial.slug, participant.study_id])
    response = client.post(url, {}, content_type="application/json",
                           HTTP_IDEMPOTENCY_KEY="saved")
    assert response.status_code == 503
    assert response.json()["outcome"] == "saved"
    assert "were saved" in response.json()["detail"]
    connection.close()
    monkeypatch.setattr(api_views.allocations, "allocation_of", real)
    retry = client.post(url, {}, content_type="application/json",
                        HTTP_IDEMPOTENCY_KEY="saved")
    assert retry.status_code == 201 and retry.json()["kit_code"]
    assert Allocation.objects.count() == 1
