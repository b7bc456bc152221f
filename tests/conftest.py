"""Shared fixtures. Tests talk to the real database named by DATABASE_URL (SQLite by default,
PostgreSQL in CI) and, where marked, the real Redis broker.

Under CI (``CI`` set), a test that would skip because PostgreSQL or Redis is missing fails
instead: CI must prove those paths, not skip them.
"""
from __future__ import annotations

import copy
import os

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from tests import factories
from trials.models import Membership, Trial
from trials.protocol import read_protocol_file
from trials.services import shipped_protocol_files, store_protocol

PASSWORD = "correct-horse-battery-staple"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} — under CI this service must be available", pytrace=False)
    pytest.skip(reason)


def pytest_runtest_setup(item):
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing("needs PostgreSQL: set DATABASE_URL=postgres://...")
    if item.get_closest_marker("redis"):
        from django.conf import settings

        if not settings.CELERY_BROKER_URL.startswith("redis"):
            _missing("needs Redis: set CELERY_BROKER_URL=redis://...")


@pytest.fixture(autouse=True)
def _ctcae_terms(request):
    """The NCI-CTCAE list the data migration loads (trials/migrations/0006_load_ctcae_terms.py)
    is wiped by the flush that ends every transactional test: tests that use the database get
    it back as the migration loads it (no audit entry: a test counting them sees none)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and not {"db", "transactional_db", "live_server"} & set(request.fixturenames):
        return
    request.getfixturevalue("_django_db_helper")
    from trials.models import Terminology
    if not Terminology.objects.exists():
        from trials.models import Term
        from trials.terminology import (read_terminology_file, shipped_terminology_codes,
                                        shipped_terminology_file, store_terminology)
        for code in shipped_terminology_codes():
            store_terminology(read_terminology_file(shipped_terminology_file(code)),
                              terminology_model=Terminology, term_model=Term)


@pytest.fixture(scope="session")
def shipped_definitions() -> list[tuple[str, dict]]:
    """The shipped protocol files, read and validated once per test session."""
    return [(path.name, read_protocol_file(path)) for path in shipped_protocol_files()]


@pytest.fixture
def protocols(db, shipped_definitions) -> dict[str, Trial]:
    """Both shipped trials, loaded from their protocol files, and live (a loaded trial starts
    in test mode; ``tests/randomisation/test_test_mode.py`` keeps one there)."""
    for name, definition in shipped_definitions:
        store_protocol(copy.deepcopy(definition), source_file=name)
    Trial.objects.update(live_since=timezone.now())
    return {t.slug: t for t in Trial.objects.all()}


@pytest.fixture
def rectal(protocols) -> Trial:
    return protocols["rectal-resection"]


@pytest.fixture
def reminet(protocols) -> Trial:
    return protocols["reminet"]


@pytest.fixture
def kit_coded(protocols, shipped_definitions) -> Trial:
    """A blinded trial whose allocation list carries the kit codes (``kit_code_length``) and
    which keeps no kit list: REMINET's file without its ``supply`` section, as every blinded
    trial was before kit lists existed."""
    definition = copy.deepcopy(dict(shipped_definitions)["reminet.yaml"])
    definition["trial"].update(slug="kit-coded", short_title="Kit-coded")
    definition.pop("supply")
    definition["randomisation"]["kit_code_length"] = 6
    for site in definition["sites"]:
        site["code"] = site["code"].replace("REMINET", "KITCODED")
    store_protocol(definition, source_file="kit-coded.yaml")
    Trial.objects.filter(slug="kit-coded").update(live_since=timezone.now())
    return Trial.objects.get(slug="kit-coded")


@pytest.fixture
def make_user(db):
    """``make_user("coordinator", trial, site)``: a user with that role (site None = all sites)."""
    User = get_user_model()
    counter = {"n": 0}

    def make(role: str | None = None, trial: Trial | None = None, site=None, **extra):
        counter["n"] += 1
        user = User.objects.create_user(
            username=extra.pop("username", f"{role or 'user'}{counter['n']}"),
            password=PASSWORD, email=f"u{counter['n']}@example.org", **extra)
        if role:
            Membership.objects.create(user=user, trial=trial, site=site, role=role)
        return user

    return make


@pytest.fixture
def client_for(client):
    """``client_for(user)``: the test client, logged in as ``user`` with both factors when the
    user needs two (an authenticator device is made, and the session marked OTP-verified by
    django-otp's own login helper, as the second login step does)."""
    def login(user):
        client.force_login(user)
        if factories.needs_second_factor(user):
            factories.verify_session(client, factories.totp_device(user))
        return client
    return login


def pytest_configure(config):
    from django.conf import settings

    # Hashing demo passwords with production strength would dominate the suite's time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_definition_cache():
    """Test databases are rolled back between tests and reuse row ids: start each test with an
    empty cache of protocol definitions (in production, version ids are never reused)."""
    from trials import models

    models._DEFINITIONS.clear()
    yield
    models._DEFINITIONS.clear()


@pytest.fixture(autouse=True)
def _default_language():
    """A request activates its user's language in the thread and leaves it active (the
    middleware sets it anew on each request): start and end every test in the default language,
    so a French request in one test does not make the next test's service errors French."""
    from django.utils import translation

    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _celery_eager(request):
    """Tasks run in the test's own process and transaction, even when CI sets
    CELERY_BROKER_URL for the whole suite; only tests marked ``redis`` use the real broker."""
    from config.celery import app

    if request.node.get_closest_marker("redis"):
        yield
        return
    # The app reads its settings from Django's with the CELERY_ namespace: the namespaced key is
    # the one that counts (``app.conf.task_always_eager = True`` would be ignored).
    previous = app.conf.CELERY_TASK_ALWAYS_EAGER
    app.conf.CELERY_TASK_ALWAYS_EAGER = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER = previous


# A broker that does not answer (the fault tests, reports and mail when Redis is down).
DEAD_BROKER = "redis://127.0.0.1:1/0"


def _drop_connections(app) -> None:
    """Forget the app's broker connection pools, so the next publish connects anew (to the
    broker configured now). Not closed: kombu shares pools between apps."""
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def redis_down(settings, monkeypatch):
    """Redis unreachable: the real Celery app (not eager) with a broker on a port nobody listens
    on, so publishing a task fails as it does in production.

    Celery reads the CELERY_BROKER_URL environment variable before its configuration (CI sets
    it to the real Redis), so the variable is pointed at the dead port too, and connections
    already open to the real broker are dropped."""
    from config.celery import app

    previous = (app.conf.CELERY_BROKER_URL, app.conf.CELERY_TASK_ALWAYS_EAGER)
    monkeypatch.setenv("CELERY_BROKER_URL", DEAD_BROKER)
    app.conf.CELERY_BROKER_URL = DEAD_BROKER
    app.conf.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.task_always_eager = False  # a test before may have set the un-namespaced key
    _drop_connections(app)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    yield app
    app.conf.CELERY_BROKER_URL, app.conf.CELERY_TASK_ALWAYS_EAGER = previous
    _drop_connections(app)


# Trials ready to randomise (used by the randomisation, French and other tests).
@pytest.fixture
def statistician(make_user, protocols):
    from trials.models import Membership

    user = make_user("statistician", protocols["reminet"], first_name="Stat", last_name="Istician")
    Membership.objects.create(user=user, trial=protocols["rectal-resection"], role="statistician")
    return user


@pytest.fixture
def coordinator_factory(make_user):
    def make(trial, site=None):
        site = site or trial.sites.order_by("code").first()
        return make_user("coordinator", trial, site)
    return make


@pytest.fixture
def reminet_ready(reminet, statistician, coordinator_factory):
    """REMINET with a sealed list and a coordinator at its first site."""
    factories.sealed_list(reminet, by=statistician)
    return reminet, coordinator_factory(reminet)


@pytest.fixture
def rectal_ready(rectal, statistician, coordinator_factory):
    factories.sealed_list(rectal, by=statistician)
    return rectal, coordinator_factory(rectal)
