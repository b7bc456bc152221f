"""Schemathesis against the API's own schema, in process (WSGI, no server), with every role's
token and anonymously: no input gives a 5xx, and every answer conforms to the schema (status
code documented, content type, body).

Each operation is tried with the URL naming real objects (the first site's participant, visit,
CRF, query: so writes reach the services) and with generated URLs. Every call runs in a
transaction rolled back afterwards: fuzzed writes never change what the next call, or another
test, sees. Bounded and derandomised (``MAX_EXAMPLES``), so CI takes a minute or two.
"""
from __future__ import annotations

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

pytestmark = pytest.mark.fuzz

MAX_EXAMPLES = 8  # per operation, per role, per kind of URL
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]
ROLES = ["investigator", "coordinator", "data_manager", "sponsor", "statistician",
         "supply_manager", "dmc", "superuser", None]


@pytest.fixture
def in_process():
    """The WSGI application, sharing the test's database connection and transaction (as the
    test client does: no closing of "old" connections around each request)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def _headers(places, make_user, role):
    if role is None:
        return {}
    if role == "superuser":
        user = make_user(is_superuser=True, is_staff=True)
    else:
        user = make_user(role, places.trial,
                         places.own.site if role in ("investigator", "coordinator") else None)
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


def test_no_input_breaks_the_api(places, make_user, in_process):
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw)
    schema.app = in_process
    real = {k: v for k, v in places.own.kwargs().items()
            if k in ("slug", "study_id", "visit_id", "record_id", "query_id")}
    failures = []
    for role in ROLES:
        headers = _headers(places, make_user, role)
        for result in schema.get_all_operations():
            operation = result.ok()
            names = {p.name for p in operation.path_parameters}
            for fixed in ({k: v for k, v in real.items() if k in names}, None):
                if fixed is None and not names:
                    continue
                strategy = operation.as_strategy(headers=headers, path_parameters=fixed)

                @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                          derandomize=True, phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=strategy)
                def run(case):
                    with transaction.atomic():
                        response = case.call()
                        transaction.set_rollback(True)
                    case.validate_response(response, checks=CHECKS)

                try:
                    run()
                except Exception as exc:  # collect them all, then report
                    failures.append(f"{operation.method.upper()} {operation.path} as "
                                    f"{role or 'anonymous'}: {exc}")
    assert not failures, "\n\n".join(failures)
