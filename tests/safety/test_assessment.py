"""The sponsor's assessment (SUSAR and its deadline) and the safety officer's unblinding."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.models import AuditEvent
from randomisation.models import EmergencyUnblinding, SafetyUnblinding
from randomisation.selectors import allocation_of, allocation_view
from randomisation.services import safety_unblind
from safety import services
from tests.safety.conftest import PASSWORD, complete_values
from trials import policy


@pytest.fixture
def signed(world, sae):
    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    sae.refresh_from_db()
    return sae


def test_related_and_unexpected_is_a_susar_due_in_15_days(world, signed):
    assessment = services.assess(signed, by=world["officer"],
                                 causality={"study_product": "related"},
                                 expectedness={"study_product": "unexpected"})
    assert assessment.susar
    day0 = timezone.localtime(signed.reported_at).date()
    assert assessment.susar_due == day0 + dt.timedelta(days=15)
    assert assessment.reference["study_product"].startswith("Somatuline Autogel 120 mg SmPC")


def test_a_fatal_susar_is_due_in_7_days(world, sae):
    died = sae.versions.get().onset_date
    services.save_draft(sae, complete_values(sae, criteria=["death"], outcome="fatal",
                                             death_date=died), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    sae.refresh_from_db()
    assessment = services.assess(sae, by=world["officer"], causality={"study_product": "related"},
                                 expectedness={"study_product": "unexpected"})
    assert assessment.susar_due == timezone.localtime(sae.reported_at).date() + dt.timedelta(7)


def test_expected_is_no_susar_and_the_sponsor_cannot_downgrade_causality(world, signed):
    with pytest.raises(ValidationError) as caught:
        services.assess(signed, by=world["officer"], causality={"study_product": "not_related"},
                        expectedness={"study_product": "unexpected"})
    assert "may not downgrade" in caught.value.message_dict["causality_study_product"][0]
    assessment = services.assess(signed, by=world["officer"],
                                 causality={"study_product": "related"},
                                 expectedness={"study_product": "expected"})
    assert not assessment.susar and assessment.susar_due is None


def test_only_the_safety_officer_assesses_and_only_a_signed_report(world, sae):
    with pytest.raises(ValidationError):
        services.assess(sae, by=world["officer"], causality={"study_product": "related"},
                        expectedness={"study_product": "unexpected"})
    with pytest.raises(PermissionDenied):
        services.assess(sae, by=world["sponsor"], causality={"study_product": "related"},
                        expectedness={"study_product": "unexpected"})


def test_the_safety_officer_unblinds_a_susar_alone_and_the_study_team_is_not_told(world, signed):
    officer = world["officer"]
    allocation = allocation_of(world["participant"])
    with pytest.raises(ValidationError):  # not assessed yet: not a SUSAR
        safety_unblind(signed, by=officer, reason="Expedited report", password=PASSWORD)
    services.assess(signed, by=officer, causality={"study_product": "related"},
                    expectedness={"study_product": "unexpected"})
    signed.refresh_from_db()
    with pytest.raises(ValidationError) as caught:
        safety_unblind(signed, by=officer, reason="", password=PASSWORD)
    assert caught.value.message_dict == {"reason": ["Give the reason for unblinding."]}
    with pytest.raises(ValidationError) as caught:
        safety_unblind(signed, by=officer, reason="Expedited report", password="nope")
    assert caught.value.message_dict == {"password": ["The password is not correct."]}
    assert not SafetyUnblinding.objects.exists()
    assert not policy.can_see_arm(officer, allocation)
    mail.outbox.clear()
    safety_unblind(signed, by=officer, reason="SUSAR expedited report", password=PASSWORD)
    assert policy.can_see_arm(officer, allocation)
    for member in ("investigator", "coordinator", "sponsor"):
        assert not policy.can_see_arm(world[member], allocation)
    # Its own audit action; no emergency unblinding; nobody mailed; not "marked unblinded".
    event = AuditEvent.objects.get(action="participant.safety_unblinded")
    assert allocation.arm.label not in event.message and allocation.arm.code not in event.message
    assert not EmergencyUnblinding.objects.exists()
    assert mail.outbox == []
    assert not allocation_view(world["coordinator"], allocation).unblinded
    with pytest.raises(PermissionDenied):
        safety_unblind(signed, by=world["investigator"], reason="x", password=PASSWORD)
