"""Test mode (issue 22, item 7): a trial runs on a test list of its own until it goes live; its
test participants are randomised from the test list only and counted nowhere; going live is
the statistician's or data manager's act, with their password, refused without a sealed live
list, audited and irreversible."""
from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from core.models import AuditEvent
from patients.models import Participant
from randomisation import services
from randomisation.models import Allocation, AllocationList, ListStatus, Purpose
from reports.enrolment import enrolment_figures
from reports.exports import export_csv
from tests import factories
from tests.conftest import PASSWORD
from trials.models import Trial

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_test_mode(rectal, statistician, coordinator_factory):
    """The rectal trial as loaded, before going live (the fixtures set trials live), its sites
    stocked with kits, and a coordinator at its first site."""
    Trial.objects.filter(pk=rectal.pk).update(live_since=None)
    rectal.refresh_from_db()
    factories.stocked(rectal, by=statistician)
    return rectal, coordinator_factory(rectal)


def sealed(trial, by, purpose, seed="s"):
    return services.seal_and_activate(
        services.generate_list(trial, by=by, seed=f"{seed}-{purpose}", purpose=purpose), by=by)


def eligible(trial, coordinator):
    return factories.eligible_participant(trial, by=coordinator)


def test_a_loaded_trial_starts_in_test_mode_and_lists_default_to_it(rectal, statistician):
    from trials.services import store_protocol
    import copy
    definition = copy.deepcopy(rectal.definition)
    definition["trial"].update(slug="copy", short_title="Copy")
    for site in definition["sites"]:
        site["code"] = "C" + site["code"]
    store_protocol(definition, source_file="copy.yaml")
    assert Trial.objects.get(slug="copy").is_test_mode
    Trial.objects.filter(pk=rectal.pk).update(live_since=None)
    rectal.refresh_from_db()
    assert services.generate_list(rectal, by=statistician, seed="x").purpose == Purpose.TEST


def test_in_test_mode_participants_are_test_and_drawn_from_the_test_list(in_test_mode,
                                                                         statistician):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.LIVE)
    test_list = sealed(trial, statistician, Purpose.TEST)
    # Both stay active: the mode chooses between them.
    assert AllocationList.objects.filter(trial=trial, status=ListStatus.ACTIVE).count() == 2
    p = eligible(trial, coordinator)
    assert p.test
    allocation = services.randomise(p, by=coordinator)
    assert allocation.allocation_list == test_list
    assert allocation.slot.allocation_list.purpose == Purpose.TEST


def test_in_test_mode_a_live_list_is_never_used(in_test_mode, statistician):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.LIVE)
    p = eligible(trial, coordinator)
    with pytest.raises(services.RandomisationError) as refused:
        services.randomise(p, by=coordinator)
    assert refused.value.code == "no_active_list"
    assert not Allocation.objects.exists()


def test_a_list_serves_only_its_own_purpose(in_test_mode, statistician):
    trial, _coordinator = in_test_mode
    test_list = sealed(trial, statistician, Purpose.TEST)
    live_list = sealed(trial, statistician, Purpose.LIVE)
    with pytest.raises(services.RandomisationError) as refused:
        services.check_list_purpose(test_list, Purpose.LIVE)
    assert refused.value.code == "list_purpose"
    with pytest.raises(services.RandomisationError):
        services.check_list_purpose(live_list, Purpose.TEST)
    services.check_list_purpose(live_list, Purpose.LIVE)  # no refusal


def test_once_live_only_the_live_list_serves_and_test_participants_are_refused(
        in_test_mode, statistician):
    trial, coordinator = in_test_mode
    test_list = sealed(trial, statistician, Purpose.TEST)
    live_list = sealed(trial, statistician, Purpose.LIVE)
    test_participant = eligible(trial, coordinator)
    services.go_live(trial, by=statistician, password=PASSWORD)
    with pytest.raises(services.RandomisationError) as refused:
        services.randomise(test_participant, by=coordinator)
    assert refused.value.code == "test_participant_live"
    p = eligible(trial, coordinator)
    assert not p.test
    assert services.randomise(p, by=coordinator).allocation_list == live_list
    assert not Allocation.objects.filter(allocation_list=test_list).exists()


def test_a_live_trial_with_only_a_test_list_randomises_nobody(in_test_mode, statistician):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.TEST)
    Trial.objects.filter(pk=trial.pk).update(live_since="2026-01-01T00:00Z")
    trial.refresh_from_db()
    with pytest.raises(services.RandomisationError) as refused:
        services.randomise(eligible(trial, coordinator), by=coordinator)
    assert refused.value.code == "no_active_list"
    assert not Allocation.objects.exists()


def test_a_live_trial_makes_and_seals_no_test_list(in_test_mode, statistician):
    trial, _coordinator = in_test_mode
    draft = services.generate_list(trial, by=statistician, seed="t", purpose=Purpose.TEST)
    sealed(trial, statistician, Purpose.LIVE)
    services.go_live(trial, by=statistician, password=PASSWORD)
    trial.refresh_from_db()
    with pytest.raises(ValidationError) as refused:
        services.generate_list(trial, by=statistician, seed="u", purpose=Purpose.TEST)
    assert "purpose" in refused.value.message_dict
    with pytest.raises(ValidationError):
        services.seal_and_activate(draft, by=statistician)
    with pytest.raises(ValidationError) as unknown:
        services.generate_list(trial, by=statistician, seed="v", purpose="uat")
    assert "purpose" in unknown.value.message_dict


def test_a_test_lists_purpose_is_sealed_with_it(in_test_mode, statistician):
    trial, _coordinator = in_test_mode
    test_list = sealed(trial, statistician, Purpose.TEST)
    assert services.verify_list(test_list).ok
    AllocationList.objects.filter(pk=test_list.pk).update(purpose=Purpose.LIVE)
    test_list.refresh_from_db()
    assert not services.verify_list(test_list).ok


def test_going_live_is_refused_without_a_sealed_live_list(in_test_mode, statistician):
    trial, _coordinator = in_test_mode
    sealed(trial, statistician, Purpose.TEST)
    services.generate_list(trial, by=statistician, seed="draft", purpose=Purpose.LIVE)  # draft
    with pytest.raises(ValidationError) as refused:
        services.go_live(trial, by=statistician, password=PASSWORD)
    assert refused.value.code == "no_live_list"
    trial.refresh_from_db()
    assert trial.is_test_mode
    assert not AuditEvent.objects.filter(action="trial.went_live").exists()


def test_going_live_needs_the_password_and_the_permission(in_test_mode, statistician,
                                                          make_user):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.LIVE)
    with pytest.raises(ValidationError) as refused:
        services.go_live(trial, by=statistician, password="wrong")
    assert "password" in refused.value.message_dict
    with pytest.raises(PermissionDenied):
        services.go_live(trial, by=coordinator, password=PASSWORD)
    trial.refresh_from_db()
    assert trial.is_test_mode
    data_manager = make_user("data_manager", trial)
    services.go_live(trial, by=data_manager, password=PASSWORD)
    trial.refresh_from_db()
    assert not trial.is_test_mode and trial.live_by == data_manager


def test_going_live_is_audited_and_irreversible(in_test_mode, statistician):
    trial, coordinator = in_test_mode
    live_list = sealed(trial, statistician, Purpose.LIVE)
    eligible(trial, coordinator)
    services.go_live(trial, by=statistician, password=PASSWORD)
    event = AuditEvent.objects.get(action="trial.went_live")
    assert event.actor == statistician and event.trial_id == trial.pk
    assert event.detail == {"live_list": live_list.number, "test_participants": 1}
    with pytest.raises(ValidationError):
        services.go_live(trial, by=statistician, password=PASSWORD)
    assert AuditEvent.objects.filter(action="trial.went_live").count() == 1


def test_test_participants_are_left_out_of_the_enrolment_report_and_exports(
        in_test_mode, statistician):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.TEST)
    sealed(trial, statistician, Purpose.LIVE)
    tested = eligible(trial, coordinator)
    services.randomise(tested, by=coordinator)
    services.go_live(trial, by=statistician, password=PASSWORD)
    counted = eligible(trial, coordinator)
    services.randomise(counted, by=coordinator)

    figures = enrolment_figures(trial, viewer=statistician)
    assert figures.randomised == 1
    assert figures.totals.screened == 1
    assert sum(n for _month, n, _cumulative in figures.accrual) == 1

    csv_text = "".join(export_csv(statistician, trial, "eligibility", "long"))
    assert counted.study_id in csv_text
    assert tested.study_id not in csv_text


def test_test_participants_carry_a_visible_badge(in_test_mode, statistician, client_for):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.TEST)
    sealed(trial, statistician, Purpose.LIVE)
    tested = factories.participant(trial, by=coordinator)
    services.go_live(trial, by=statistician, password=PASSWORD)
    counted = factories.participant(trial, by=coordinator)
    client = client_for(coordinator)
    detail = client.get(reverse("participant_detail", args=[trial.slug, tested.study_id]))
    assert 'class="badge test"' in detail.content.decode()
    detail = client.get(reverse("participant_detail", args=[trial.slug, counted.study_id]))
    assert 'class="badge test"' not in detail.content.decode()
    listing = client.get(reverse("participant_list", args=[trial.slug])).content.decode()
    assert listing.count('class="badge test"') == 1


def test_the_go_live_page_takes_the_trial_live(in_test_mode, statistician, client_for):
    trial, _coordinator = in_test_mode
    client = client_for(statistician)
    url = reverse("trial_go_live", args=[trial.slug])
    assert "no sealed live allocation list" in client.get(url).content.decode()
    sealed(trial, statistician, Purpose.LIVE)
    assert client.post(url, {"password": "wrong"}).status_code == 400
    assert Trial.objects.get(pk=trial.pk).is_test_mode
    response = client.post(url, {"password": PASSWORD})
    assert response.status_code == 302
    assert not Trial.objects.get(pk=trial.pk).is_test_mode
    page = client.get(reverse("trial_detail", args=[trial.slug])).content.decode()
    assert "TEST MODE" not in page


def test_the_trial_page_shows_test_mode_and_the_go_live_button_to_those_who_may(
        in_test_mode, statistician, client_for):
    trial, coordinator = in_test_mode
    url = reverse("trial_go_live", args=[trial.slug])
    page = client_for(statistician).get(reverse("trial_detail", args=[trial.slug]))
    assert "TEST MODE" in page.content.decode() and url in page.content.decode()
    page = client_for(coordinator).get(reverse("trial_detail", args=[trial.slug]))
    assert "TEST MODE" in page.content.decode() and url not in page.content.decode()
    assert client_for(coordinator).get(url).status_code == 403


def test_registration_marks_by_the_trials_mode_in_the_database(in_test_mode, statistician):
    trial, coordinator = in_test_mode
    sealed(trial, statistician, Purpose.LIVE)
    stale = Trial.objects.get(pk=trial.pk)  # read while in test mode
    services.go_live(trial, by=statistician, password=PASSWORD)
    assert stale.is_test_mode
    assert not factories.participant(stale, by=coordinator).test
    assert Participant.objects.filter(test=True).count() == 0


def test_the_lists_page_generates_a_list_of_the_purpose_chosen(in_test_mode, statistician,
                                                               client_for):
    trial, _coordinator = in_test_mode
    client = client_for(statistician)
    url = reverse("allocation_lists", args=[trial.slug])
    client.post(url, {"action": "generate", "purpose": "live", "seed": "a",
                      "slots_per_stratum": 4})
    client.post(url, {"action": "generate", "purpose": "test", "seed": "b",
                      "slots_per_stratum": 4})
    assert list(AllocationList.objects.filter(trial=trial).order_by("number")
                .values_list("purpose", flat=True)) == ["live", "test"]
    response = client.post(url, {"action": "generate", "purpose": "uat", "seed": "c",
                                 "slots_per_stratum": 4})
    assert response.status_code == 200 and AllocationList.objects.count() == 2
