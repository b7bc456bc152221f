"""The OpenAPI schema: generated from the code without a warning, valid OpenAPI 3, covering
every API route; and the docs page served from the project's own static files."""
from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from openapi_spec_validator import validate

from tests.routes import url_patterns


def api_routes():
    """Every route under /api/v1/, as the schema writes its path."""
    for route, pattern in url_patterns():
        if route.startswith("api/v1/"):
            yield pattern.name, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", "/" + route)


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_the_schema_is_valid_openapi_3(schema):
    validate(schema)
    assert schema["openapi"].startswith("3.")


def test_every_api_route_is_in_the_schema(schema):
    routes = dict(api_routes())
    assert len(routes) >= 20
    missing = {name: path for name, path in routes.items() if path not in schema["paths"]}
    assert not missing, f"API routes missing from the schema: {missing}"


def test_every_operation_documents_its_errors(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert {"400", "401", "403", "404"} <= set(operation["responses"]), (method, path)


def test_every_operation_documents_the_503_with_its_body_and_retry_after(schema):
    """The database unreachable: what the middleware answers (``{"detail": ...}``, Retry-After)
    is in the schema, so a client knows to wait and read again."""
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            unavailable = operation["responses"].get("503")
            assert unavailable, (method, path)
            body = unavailable["content"]["application/json"]["schema"]
            assert body["required"] == ["detail"] and "Retry-After" in unavailable["headers"]


def test_a_signed_crf_record_documents_its_signature_validity(schema):
    properties = schema["components"]["schemas"]["CRFRecord"]["properties"]
    assert {"signature", "signatures"} <= set(properties)
    signature = schema["components"]["schemas"]["Signature"]["properties"]
    assert {"status", "valid", "reason"} <= set(signature)


def test_an_unstated_target_enrolment_is_documented_as_null(schema):
    field = schema["components"]["schemas"]["Trial"]["properties"]["target_enrolment"]
    assert field["type"] == "integer" and field.get("nullable") is True


def test_generation_has_no_warning_nor_error(tmp_path, db):
    # The same command CI can run: it exits non-zero on any drf-spectacular warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file",
                 str(tmp_path / "schema.yaml"))
    assert (tmp_path / "schema.yaml").read_text().startswith("openapi: 3")


def test_the_schema_and_docs_are_served_to_users_only(places, make_user, client_for, client):
    assert client.get(reverse("api_schema")).status_code == 401
    assert client.get(reverse("api_docs")).status_code == 302
    user = make_user("sponsor", places.trial)
    assert client_for(user).get(reverse("api_schema")).status_code == 200
    page = client_for(user).get(reverse("api_docs")).content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "http://" not in page.replace("http://testserver", "") and "https://" not in page
    assert "<script>" not in page  # the init script is a file of its own (CSP)
    script = client_for(user).get(reverse("api_docs") + "?script=")
    assert script.status_code == 200 and script["Content-Type"].startswith(
        "application/javascript")
