"""REMINET stocked at its two sites (40 kits of each arm received at each), the people of the
supply pages, and a shipment on its way to the first site: what tests/supply/test_pages_*.py
share."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from supply import services
from supply.models import Shipment
from tests import factories
from trials.models import Site, Trial


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    if factories.needs_second_factor(user):
        factories.verify_session(client, factories.totp_device(user))
    return client


@dataclass
class SupplyWorld:
    trial: Trial
    site: Site          # the first site
    other: Site         # the second site
    coordinator: object  # of the first site (receives its shipments)
    investigator: object  # of the first site (sees the stock, receives nothing)
    monitor: object     # the sponsor's staff, every site (blinded)
    manager: object     # the supply manager (unblinded to kits)
    statistician: object

    def dispatch(self, site: Site | None = None, **quantities) -> Shipment:
        return services.dispatch_shipment(self.trial, site=site or self.site, by=self.manager,
                                          quantities=quantities or {"LAN": 2, "PBO": 2})


@pytest.fixture
def supply_world(reminet, statistician, make_user) -> SupplyWorld:
    factories.sealed_list(reminet, by=statistician)
    site, other = reminet.sites.order_by("code")[:2]
    return SupplyWorld(
        trial=reminet, site=site, other=other,
        coordinator=make_user("coordinator", reminet, site),
        investigator=make_user("investigator", reminet, site),
        monitor=make_user("sponsor", reminet),
        manager=make_user("supply_manager", reminet),
        statistician=statistician)
