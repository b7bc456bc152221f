"""An allocation made from the sealed envelopes while the system was down, recorded afterwards.

The envelopes are the active list printed one slot per envelope: the site opens the next one
of the participant's stratum. Afterwards the unblinded statistician records it with the
password typed again: the slot is consumed (refused if used or not the next one), the
allocation is dated when the envelope was opened (not in the future, not before consent),
audited, and shown as "emergency allocation (recorded afterwards)".
"""
from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from randomisation import services
from randomisation.models import Allocation, EmergencyAllocation, Stratum
from tests import factories
from tests.conftest import PASSWORD

KEY = "grade=G2;l1_response=stable_disease"


@pytest.fixture(autouse=True)
def midday():
    """At midday in the trial's time zone: the tests date the envelope a few hours before now,
    which must fall on the day of the participant's consent (today), whatever the hour CI runs."""
    noon = dt.datetime.combine(timezone.localdate() - dt.timedelta(days=1), dt.time(12),
                               tzinfo=timezone.get_current_timezone())
    with time_machine.travel(noon, tick=True):
        yield


@pytest.fixture
def ready(reminet_ready, statistician):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                       l1_response="stable_disease")
    return trial, coordinator, statistician, p


def _record(p, by, **overrides):
    values = {"slot_number": 1, "made_at": timezone.now() - dt.timedelta(hours=3),
              "made_by": "Dr Night, on-call investigator", "reason": "network down at site",
              "password": PASSWORD}
    values.update(overrides)
    return services.record_emergency_allocation(p, by=by, **values)


def test_recording_consumes_the_envelopes_slot_dated_when_it_was_opened(ready):
    trial, _coordinator, statistician, p = ready
    opened = timezone.now() - dt.timedelta(hours=3)
    allocation = _record(p, statistician, made_at=opened)
    slot = allocation.slot
    assert (slot.stratum.key, slot.sequence) == (KEY, 1)
    assert allocation.arm == slot.arm and allocation.randomised_at == opened
    assert Stratum.objects.get(key=KEY).next_sequence == 2
    record = EmergencyAllocation.objects.get()
    assert record.allocation == allocation and record.made_by.startswith("Dr Night")
    assert record.recorded_by == statistician
    p.refresh_from_db()
    assert p.is_randomised and p.visits.exists()
    entry = AuditEvent.objects.get(action="participant.randomised_emergency")
    assert "slot #1" in entry.message and "network down" in entry.message
    assert services.verify_list(services.active_list(trial)).ok


@pytest.mark.parametrize("slot, message", [
    (2, "not the next one"), (1, "already used")])
def test_a_slot_used_or_not_the_next_is_refused(ready, coordinator_factory, slot, message):
    trial, coordinator, statistician, p = ready
    if message == "already used":
        other = factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                               l1_response="stable_disease")
        services.randomise(other, by=coordinator)
    with pytest.raises(ValidationError) as info:
        _record(p, statistician, slot_number=slot)
    assert message in info.value.message_dict["slot_number"][0]
    assert not Allocation.objects.filter(participant=p).exists()


@pytest.mark.parametrize("field, overrides, message", [
    ("made_at", {"made_at": timezone.now() + dt.timedelta(hours=1)}, "future"),
    ("made_at", {"made_at": timezone.now() - dt.timedelta(days=400)}, "before the participant"),
    ("made_at", {"made_at": None}, "date and time"),
    ("reason", {"reason": "  "}, "reason"),
    ("made_by", {"made_by": ""}, "who opened"),
    ("slot_number", {"slot_number": "x"}, "whole number"),
    ("password", {"password": "wrong"}, "password"),
])
def test_bad_input_is_refused_by_field_with_nothing_written(ready, field, overrides, message):
    _trial, _coordinator, statistician, p = ready
    with pytest.raises(ValidationError) as info:
        _record(p, statistician, **overrides)
    assert message in info.value.message_dict[field][0]
    assert not Allocation.objects.exists() and not EmergencyAllocation.objects.exists()


def test_the_time_cannot_come_before_the_strata_last_allocation(ready):
    trial, coordinator, statistician, p = ready
    other = factories.eligible_participant(trial, by=coordinator, tumour_grade="G2",
                                           l1_response="stable_disease")
    services.randomise(other, by=coordinator)
    with pytest.raises(ValidationError) as info:
        _record(p, statistician, slot_number=2)
    assert "last allocation" in info.value.message_dict["made_at"][0]


def test_only_the_statistician_records_it(ready, make_user):
    trial, coordinator, _statistician, p = ready
    for user in (coordinator, make_user("investigator", trial), make_user("sponsor", trial)):
        with pytest.raises(PermissionDenied):
            _record(p, user)


def test_a_participant_not_randomisable_is_refused(ready):
    trial, coordinator, statistician, _p = ready
    unconsented = factories.participant(trial, by=coordinator)
    with pytest.raises(ValidationError):
        _record(unconsented, statistician)
    assert not Allocation.objects.exists()


def test_the_page_records_it_and_the_participant_pages_show_it(ready, client, client_for):
    trial, coordinator, statistician, p = ready
    client_for(statistician)
    url = reverse("emergency_allocations", args=[trial.slug])
    assert client.get(url).status_code == 200
    opened = timezone.localtime() - dt.timedelta(hours=2)
    response = client.post(url, {
        "participant": p.study_id, "slot_number": 1,
        "made_at": opened.strftime("%Y-%m-%dT%H:%M"), "made_by": "Dr Night",
        "reason": "power cut", "password": PASSWORD})
    assert response.status_code == 302, response.content.decode()[:3000]
    listing = client.get(url).content.decode()
    assert p.study_id in listing and "power cut" in listing
    client.logout()
    client_for(coordinator)
    for page in (reverse("participant_detail", args=[trial.slug, p.study_id]),
                 reverse("allocation_detail", args=[trial.slug, p.study_id])):
        assert "emergency allocation (recorded afterwards)" in client.get(page).content.decode()


def test_the_page_refuses_bad_input_with_400_naming_the_field(ready, client, client_for):
    trial, _coordinator, statistician, p = ready
    client_for(statistician)
    url = reverse("emergency_allocations", args=[trial.slug])
    response = client.post(url, {"participant": "NOBODY", "slot_number": 1,
                                 "made_at": "2026-01-01T10:00", "made_by": "x", "reason": "y",
                                 "password": PASSWORD})
    assert response.status_code == 400 and "No participant NOBODY" in response.content.decode()
    response = client.post(url, {"participant": p.study_id, "slot_number": 3,
                                 "made_at": timezone.localtime().strftime("%Y-%m-%dT%H:%M"),
                                 "made_by": "x", "reason": "y", "password": PASSWORD})
    assert response.status_code == 400
    body = response.content.decode()
    assert "not the next one" in body and 'data-testid="next-envelope"' in body
    assert not Allocation.objects.exists()


def test_every_other_role_gets_404(ready, client, client_for, make_user):
    trial, coordinator, _statistician, _p = ready
    for user in (coordinator, make_user("sponsor", trial), make_user("data_manager", trial)):
        client.logout()
        client_for(user)
        assert client.get(reverse("emergency_allocations", args=[trial.slug])).status_code == 404


def test_exports_flag_the_emergency_allocation(ready, make_user):
    from reports.exports import export_csv

    trial, coordinator, statistician, p = ready
    _record(p, statistician)
    other = factories.randomised(trial, by=coordinator)
    lines = "".join(export_csv(make_user("sponsor", trial), trial, "eligibility",
                               "wide")).splitlines()
    column = lines[0].split(",").index("emergency_allocation")
    rows = {line.split(",")[0]: line.split(",")[column] for line in lines[1:]}
    assert rows == {p.study_id: "yes", other.study_id: ""}
