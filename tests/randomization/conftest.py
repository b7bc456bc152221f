import pytest

from tests import factories


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
