"""Consent history (issue 17, item 4): first consent, re-consent to an amendment's form,
corrections, the re-consent worklist and the move to the new protocol version."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone

from crfs.models import CRFRecord
from demo.data import demo_amendment
from patients import selectors
from patients.models import ConsentKind, ConsentRecord, Participant, Visit, VisitStatus
from patients.services import record_consent
from scheduling.services import record_consent_and_replan, save_crf_and_replan
from tests import factories
from trials.protocol import validate_definition
from trials.services import store_protocol

pytestmark = pytest.mark.django_db


def amend(trial):
    """Load the demo amendment: consent form 2.0, re-consent of 1.0, QLQ-C30 scheduled."""
    amended = demo_amendment(copy.deepcopy(trial.current_version.definition))
    assert validate_definition(amended) == []
    store_protocol(amended, source_file="test amendment")
    trial.refresh_from_db()
    return trial


def nothing_written(participant, before: int) -> None:
    assert ConsentRecord.objects.filter(participant=participant).count() == before


def test_a_first_consent_dated_before_screening_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=p.screened_on - dt.timedelta(days=1), version="1.0",
                       by=coordinator)
    assert "before screening" in exc.value.message_dict["consent_date"][0]
    nothing_written(p, 0)
    assert Participant.objects.get(pk=p.pk).consent_date is None


def test_a_first_consent_dated_after_randomisation_is_refused(reminet_ready):
    """A correction of the only consent is judged as a first consent."""
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    first = p.consents.get()
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=timezone.localdate() - dt.timedelta(days=2),
                       version="1.0", by=coordinator, corrects=first, reason="typo")
    assert "after randomisation" in exc.value.message_dict["consent_date"][0]
    nothing_written(p, 1)


def test_a_version_the_protocol_does_not_declare_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=p.screened_on, version="7.3", by=coordinator)
    assert "7.3" in exc.value.message_dict["consent_version"][0]
    assert "1.0" in exc.value.message_dict["consent_version"][0]
    nothing_written(p, 0)


def test_an_optional_item_not_in_the_version_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator,
                       answers={"biological_samples": True, "qol_contact": True})
    message = exc.value.message_dict["answers"][0]
    assert "qol_contact" in message and "1.0" in message
    nothing_written(p, 0)


def test_the_first_consent_keeps_each_optional_answer_and_who_took_it(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    p = record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator,
                       taken_by="Dr Martin", answers={"biological_samples": True,
                                                      "data_reuse": False})
    record = p.consents.get()
    assert (record.kind, record.version, record.taken_by, record.answers,
            record.protocol_version_id) == (
        ConsentKind.FIRST, "1.0", "Dr Martin", {"biological_samples": True, "data_reuse": False},
        trial.current_version_id)
    assert (p.consent_date, p.consent_version) == (p.screened_on, "1.0")
    with pytest.raises(ProtectedError):
        record.save()  # never edited in place


def test_a_reconsent_to_a_version_that_is_not_newer_is_refused(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=timezone.localdate(), version="1.0", by=coordinator)
    assert "not newer" in exc.value.message_dict["consent_version"][0]
    nothing_written(p, 1)


def test_a_correction_is_a_new_record_and_the_old_one_is_kept(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator, screened_on=timezone.localdate()
                              - dt.timedelta(days=5))
    p = record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator)
    wrong = p.consents.get()
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=p.screened_on, version="1.0", by=coordinator,
                       corrects=wrong)
    assert "reason" in exc.value.message_dict
    p = record_consent(p, consent_date=p.screened_on + dt.timedelta(days=1), version="1.0",
                       by=coordinator, corrects=wrong, reason="date misread on the form")
    overview = selectors.consent_overview(p)
    assert [(r.kind, r.corrected) for r in overview.records] == [
        (ConsentKind.FIRST, True), (ConsentKind.CORRECTION, False)]
    assert p.consent_date == p.screened_on + dt.timedelta(days=1)


def test_an_amendment_puts_earlier_consents_on_the_worklist_until_they_reconsent(
        reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=40)
    old_version = p.protocol_version_id
    eligibility = CRFRecord.objects.get(participant=p, crf_code="eligibility")
    assert not Visit.objects.filter(participant=p, code="quality_of_life").exists()
    amend(trial)
    assert trial.current_version_id != old_version

    # Pending: on the worklist, still on the old version, and the page says so.
    assert list(selectors.reconsent_worklist(coordinator, trial)) == [p]
    client_for(coordinator)
    page = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content.decode()
    assert 'data-testid="reconsent-pending"' in page and "2.0" in page
    listed = client.get(reverse("reconsent_worklist", args=[trial.slug])).content.decode()
    assert p.study_id in listed
    save_crf_and_replan(p, "adverse_events", {"any_event": False}, by=coordinator,
                        complete=False)
    assert CRFRecord.objects.get(participant=p, crf_code="adverse_events"
                                 ).protocol_version_id == old_version

    # Not newer, and dated before the consent in effect: refused.
    with pytest.raises(ValidationError):
        record_consent_and_replan(p, by=coordinator, consent_date=p.screened_on
                                  - dt.timedelta(days=1), version="2.0")
    assert Participant.objects.get(pk=p.pk).protocol_version_id == old_version

    record_consent_and_replan(p, by=coordinator, consent_date=timezone.localdate(),
                              version="2.0", answers={"qol_contact": True})
    p = Participant.objects.get(pk=p.pk)
    assert p.protocol_version_id == trial.current_version_id
    assert p.consent_version == "2.0"
    assert list(selectors.reconsent_worklist(coordinator, trial)) == []
    # Future visits follow the new version; data captured under the old one keeps it.
    assert Visit.objects.filter(participant=p, code="quality_of_life",
                                status=VisitStatus.PLANNED).exists()
    assert CRFRecord.objects.get(pk=eligibility.pk).protocol_version_id == old_version
    record = p.consents.order_by("pk").last()
    assert (record.kind, record.protocol_version_id) == (ConsentKind.RECONSENT,
                                                         trial.current_version_id)
    page = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content.decode()
    assert 'data-testid="reconsent-pending"' not in page
    assert 'data-testid="earlier-version"' in page  # the forms captured under 1.0


def test_the_consent_page_records_a_reconsent_with_its_optional_items(reminet_ready, client,
                                                                      client_for):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    amend(trial)
    client_for(coordinator)
    url = reverse("record_consent", args=[trial.slug, p.study_id])
    response = client.post(url, {"consent_date": timezone.localdate().isoformat(),
                                 "consent_version": "1.0"})
    assert response.status_code == 400 and "not newer" in response.content.decode()
    response = client.post(url, {"consent_date": timezone.localdate().isoformat(),
                                 "consent_version": "2.0", "item_biological_samples": "no",
                                 "item_qol_contact": "yes", "taken_by": "Dr Martin"})
    assert response.status_code == 302
    record = p.consents.order_by("pk").last()
    assert record.answers == {"biological_samples": False, "qol_contact": True}


def test_only_the_latest_consent_record_can_be_corrected(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator, days_ago=10)
    first = p.consents.get()
    amend(trial)
    p = record_consent(p, consent_date=timezone.localdate(), version="2.0", by=coordinator)
    with pytest.raises(ValidationError) as exc:
        record_consent(p, consent_date=first.consent_date, version="1.0", by=coordinator,
                       corrects=first, reason="typo")
    assert "latest" in exc.value.message_dict["corrects"][0]
    nothing_written(p, 2)


def test_a_participant_awaiting_reconsent_is_not_randomised_until_they_reconsent(reminet_ready):
    from randomisation.services import RandomisationError, randomise

    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator)
    amend(trial)
    with pytest.raises(RandomisationError, match="signed consent form 1.0, which the current "
                                                 "amendment asks to re-consent") as info:
        randomise(Participant.objects.get(pk=p.pk), by=coordinator)
    assert info.value.code == "reconsent_pending"
    assert Participant.objects.get(pk=p.pk).status == "screened"  # nothing written
    record_consent_and_replan(p, by=coordinator, consent_date=timezone.localdate(),
                              version="2.0", answers={"qol_contact": True})
    assert randomise(Participant.objects.get(pk=p.pk), by=coordinator).pk
