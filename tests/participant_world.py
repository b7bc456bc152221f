import pytest

from tests import factories


@pytest.fixture
def rectal_site(rectal):
    return rectal.sites.order_by("code").first()


@pytest.fixture
def rectal_coordinator(rectal, rectal_site, statistician, make_user):
    """A coordinator at the rectal trial's first site; every stratum allocates A, B, A, B…"""
    factories.scripted_list(rectal, by=statistician, arms=["A", "B"])
    return make_user("coordinator", rectal, rectal_site)


@pytest.fixture
def reminet_coordinator(reminet, statistician, make_user):
    factories.scripted_list(reminet, by=statistician, arms=["LAN", "PBO"])
    return make_user("coordinator", reminet, reminet.sites.order_by("code").first())


@pytest.fixture
def arm_a(rectal, rectal_coordinator):
    """A rectal participant in arm A (first of their stratum), randomised today."""
    p = factories.randomised(rectal, by=rectal_coordinator)
    assert p.allocation.arm.code == "A"
    return p


@pytest.fixture
def arm_b(rectal, rectal_coordinator, arm_a):
    """A rectal participant in arm B (second of the same stratum), randomised today."""
    p = factories.randomised(rectal, by=rectal_coordinator)
    assert p.allocation.arm.code == "B"
    return p
