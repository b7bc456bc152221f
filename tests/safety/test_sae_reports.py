"""SAE reports: opened by the record that shows the event, versions signed and kept, bad input
refused with what is wrong and nothing written."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.models import AuditEvent
from safety import services
from safety.models import SAEReport, SAEVersion, VersionStatus
from tests.safety.conftest import PASSWORD, ae_rows, complete_values, save_ae


def test_ticking_serious_opens_one_report_with_the_term_and_onset(world, sae):
    assert sae.term == "Febrile neutropenia"
    assert sae.source_path == "events[0]"
    initial = sae.versions.get()
    assert initial.number == 0 and initial.status == VersionStatus.DRAFT
    assert initial.onset_date == timezone.localdate() - dt.timedelta(days=2)
    assert sae.due_at == sae.aware_at + dt.timedelta(hours=24)
    # Saving the record again opens nothing more; a second serious row opens its own report.
    record = sae.source_record
    save_ae(world["participant"], world["investigator"],
            ae_rows() + ae_rows(term="Lung infection"), record=record)
    assert SAEReport.objects.filter(participant=world["participant"]).count() == 2
    assert AuditEvent.objects.filter(action="sae.opened").count() == 2


def test_a_non_serious_event_opens_nothing_and_a_death_opens_a_fatal_report(world):
    save_ae(world["participant"], world["investigator"], ae_rows(serious=False, grade=2,
                                                                  term="Nausea"))
    assert not SAEReport.objects.exists()
    from scheduling.services import save_crf_and_replan
    died = timezone.localdate() - dt.timedelta(days=1)
    save_crf_and_replan(world["participant"], "death",
                        {"death_date": died.isoformat(), "cause": "unknown"},
                        by=world["investigator"], complete=True)
    report = SAEReport.objects.get()
    assert report.term == "Death"
    version = report.versions.get()
    assert version.criteria == ["death"] and version.death_date == died


def test_the_initial_report_is_signed_with_the_password_and_then_kept(world, sae):
    investigator = world["investigator"]
    services.save_draft(sae, complete_values(sae), by=investigator)
    initial = sae.versions.get()
    with pytest.raises(ValidationError) as caught:
        services.sign_version(initial, by=investigator, password="wrong")
    assert caught.value.message_dict == {"password": ["The password is not correct."]}
    signed = services.sign_version(initial, by=investigator, password=PASSWORD)
    assert signed.status == VersionStatus.SIGNED and len(signed.digest) == 64
    assert signed.printed_name == "Ines Vestig"
    sae.refresh_from_db()
    assert sae.reported_at == signed.signed_at and sae.late_by() is None
    # Kept: no draft to change; the model refuses a change of a signed row too.
    with pytest.raises(ValidationError):
        services.save_draft(sae, complete_values(sae, narrative="changed"), by=investigator)
    signed.narrative = "changed"
    with pytest.raises(ValueError):
        signed.save()
    follow_up = services.begin_follow_up(sae, by=investigator)
    assert follow_up.number == 1 and follow_up.narrative == initial.narrative
    services.save_draft(sae, complete_values(sae, outcome="recovered"), by=investigator)
    services.sign_version(follow_up, by=investigator, password=PASSWORD)
    assert [v.number for v in sae.versions.all()] == [0, 1]
    assert SAEVersion.objects.get(number=0).outcome == "recovering"
    assert SAEVersion.history.filter(number=0).count() >= 3  # draft, saved, signed


def test_only_an_investigator_signs(world, sae):
    services.save_draft(sae, complete_values(sae), by=world["coordinator"])
    with pytest.raises(PermissionDenied):
        services.sign_version(sae.versions.get(), by=world["coordinator"], password=PASSWORD)


@pytest.mark.parametrize("change, field, message", [
    ({"aware_at": "future"}, "aware_at", "The site cannot have become aware in the future."),
    ({"aware_at": "before_onset"}, "aware_at",
     ("The site cannot have become aware of the event before its onset")),
    ({"criteria": ["death"], "outcome": "fatal", "death_date": None}, "death_date",
     "A death needs its date."),
])
def test_bad_dates_are_refused_and_nothing_is_written(world, sae, change, field, message):
    before = list(SAEVersion.history.values_list("history_id", flat=True))
    if change.get("aware_at") == "future":
        change["aware_at"] = timezone.now() + dt.timedelta(hours=2)
    elif change.get("aware_at") == "before_onset":
        onset = sae.versions.get().onset_date
        change["aware_at"] = timezone.make_aware(dt.datetime.combine(
            onset - dt.timedelta(days=3), dt.time(10)))
    with pytest.raises(ValidationError) as caught:
        services.save_draft(sae, complete_values(sae, **change), by=world["investigator"])
    assert caught.value.message_dict[field][0].startswith(message)
    assert list(SAEVersion.history.values_list("history_id", flat=True)) == before
    assert SAEReport.objects.get().aware_at == sae.aware_at


def test_a_follow_up_without_a_signed_initial_report_is_refused(world, sae):
    with pytest.raises(ValidationError) as caught:
        services.begin_follow_up(sae, by=world["investigator"])
    assert caught.value.messages == ["A follow-up needs a signed initial report first."]
    assert sae.versions.count() == 1
    services.save_draft(sae, complete_values(sae), by=world["investigator"])
    services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    services.begin_follow_up(sae, by=world["investigator"])
    with pytest.raises(ValidationError) as caught:  # one draft at a time
        services.begin_follow_up(sae, by=world["investigator"])
    assert caught.value.messages == [("A version of this report is still a draft: complete "
                                      "and sign it first.")]
    assert sae.versions.count() == 2


def test_causality_missing_on_signature_is_refused(world, sae):
    services.save_draft(sae, complete_values(sae, causality={}), by=world["investigator"])
    with pytest.raises(ValidationError) as caught:
        services.sign_version(sae.versions.get(), by=world["investigator"], password=PASSWORD)
    assert caught.value.message_dict == {"causality": [
        "Give the causality for every study product before signing (missing: study_product)."]}
    assert sae.versions.get().status == VersionStatus.DRAFT
    assert not AuditEvent.objects.filter(action="sae.signed").exists()


def test_an_earlier_awareness_moves_the_clock(world, sae):
    earlier = sae.aware_at - dt.timedelta(hours=5)
    services.save_draft(sae, complete_values(sae, aware_at=earlier), by=world["investigator"])
    sae.refresh_from_db()
    assert sae.aware_at == earlier and sae.due_at == earlier + dt.timedelta(hours=24)


def test_a_death_from_disease_progression_opens_no_report(world):
    """The protocol's ``unless``: such a death is the efficacy endpoint, not an SAE."""
    from scheduling.services import save_crf_and_replan
    save_crf_and_replan(world["participant"], "death", {
        "death_date": timezone.localdate().isoformat(), "cause": "disease_progression"},
        by=world["investigator"], complete=True)
    assert not SAEReport.objects.exists()


def test_a_hospitalisation_opens_a_report_with_its_criterion(world):
    rows = ae_rows(serious=False, grade=2, term="Nausea")
    rows[0]["hospitalisation"] = True
    save_ae(world["participant"], world["investigator"], rows)
    report = SAEReport.objects.get()
    assert report.versions.get().criteria == ["hospitalisation"]
    # Serious and hospitalised and grade 5: one report, every criterion the row meets.
    rows = ae_rows(grade=5, term="Sepsis")
    rows[0]["hospitalisation"] = True
    save_ae(world["participant"], world["investigator"], rows, record=report.source_record,
            reason="Worsened")
    assert SAEReport.objects.count() == 1  # the same row: its report stays the one
    save_ae(world["participant"], world["investigator"], rows + rows,
            record=report.source_record, reason="A second event")
    second = SAEReport.objects.get(source_path="events[1]")
    assert second.versions.get().criteria == ["hospitalisation", "death"]
    assert second.versions.get().outcome == "fatal"
