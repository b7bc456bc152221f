"""Fixtures of the API tests: REMINET (double-blind) at two sites, and clients."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.api import world


@pytest.fixture
def places(reminet, statistician, make_user):
    """REMINET with, at each of its two sites, a randomised participant, a visit, a CRF, a
    query (see ``tests.api.world``)."""
    staff, data_manager = world.ready(reminet, statistician=statistician, make_user=make_user)
    own, other = reminet.sites.order_by("code")[:2]
    return SimpleNamespace(
        trial=reminet, staff=staff, data_manager=data_manager,
        own=world.build(reminet, own, staff=staff, data_manager=data_manager),
        other=world.build(reminet, other, staff=staff, data_manager=data_manager))


@pytest.fixture
def token_client(db):
    """``token_client(user)``: a DRF client sending the user's API token, no session."""
    def make(user):
        token, _ = Token.objects.get_or_create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client
    return make


@pytest.fixture
def api(client_for):
    """``api(user)``: the test client logged in as ``user``, speaking JSON."""
    class JSONClient:
        def __init__(self, client):
            self.client = client

        def get(self, url, data=None):
            return self.client.get(url, data)

        def post(self, url, data=None):
            return self.client.post(url, data or {}, content_type="application/json")

        def put(self, url, data=None):
            return self.client.put(url, data or {}, content_type="application/json")

    return lambda user: JSONClient(client_for(user))
