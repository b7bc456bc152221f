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
    """``api(user)``: the test client as ``user``, speaking JSON. Each call logs ``user`` in
    again (``client_for``), so a test may hold clients for several users at once."""
    class JSONClient:
        def __init__(self, user):
            self.user = user

        def get(self, url, data=None):
            return client_for(self.user).get(url, data)

        def post(self, url, data=None):
            return client_for(self.user).post(url, data or {}, content_type="application/json")

        def put(self, url, data=None):
            return client_for(self.user).put(url, data or {}, content_type="application/json")

    return JSONClient
