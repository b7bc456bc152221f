"""Source data verification: the monitor marks forms or answers as verified against the
source, as the protocol's monitoring plan asks; a change to verified data removes the mark and
says so (docs/monitoring.md)."""
from __future__ import annotations

import copy

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from core.models import AuditEvent
from crfs import verification
from crfs.models import SourceVerification
from scheduling.services import save_crf_and_replan as save_crf
from tests.crf_world import demographics
from trials.protocol import validate_definition


@pytest.fixture
def pdf_text():
    from tests.outcomes.test_outcomes_pages import pdf_text

    return pdf_text


@pytest.fixture
def monitor(rectal, site, make_user):
    return make_user("monitor", rectal, site, first_name="Monique", last_name="Itor")


def test_the_plan_asks_for_key_data_only(complete, rectal):
    assert rectal.definition["monitoring"]["sdv"] == "key_data"
    assert verification.required(complete) == []  # demographics are not key data
    assert verification.status(complete) == "not_required"
    rules = {"sdv": "key_data", "key_data": [{"crf": "demographics",
                                             "fields": ["weight_kg", "ecog"]}]}
    assert verification.required(complete, rules) == ["weight_kg", "ecog"]
    assert verification.required(complete, {"sdv": "all"}) == [""]


def test_a_sample_plan_takes_the_first_of_each_site_and_a_reproducible_draw(complete):
    first = {"sdv": "sample", "sample": {"first_per_site": 5, "fraction": 0.0}}
    none = {"sdv": "sample", "sample": {"first_per_site": 0, "fraction": 0.0}}
    every = {"sdv": "sample", "sample": {"first_per_site": 0, "fraction": 1.0}}
    assert verification.required(complete, first) == [""]
    assert verification.required(complete, none) == []
    assert verification.required(complete, every) == [""]


def test_the_monitor_verifies_a_form_and_a_change_removes_the_mark(
        complete, monitor, investigator, participant, baseline):
    marks = verification.verify(complete, by=monitor)
    assert [m.field_path for m in marks] == [""]
    assert verification.verify(complete, by=monitor) == []  # already verified: kept
    assert AuditEvent.objects.filter(action="crf.source_verified").count() == 1
    # Saved again with the same answers: the mark stays.
    record = save_crf(participant, "demographics", demographics(participant), by=investigator,
                      complete=True, record=complete, reason="checked")
    assert record.sdv_voided == []
    # A value changed: the mark goes, and the save says so.
    record = save_crf(participant, "demographics", demographics(participant, weight_kg="69.0"),
                      by=investigator, complete=True, record=complete, reason="scale error")
    assert [v.label for v in record.sdv_voided] == ["the whole form"]
    mark = SourceVerification.objects.get()
    assert mark.voided_at is not None and "scale error" in mark.void_reason
    assert AuditEvent.objects.filter(action="crf.source_verification_voided").count() == 1
    assert verification.status(record, ) in ("not_required",)  # key data plan: not required
    assert verification.status(record) == "not_required"


def test_a_field_mark_goes_only_when_that_field_changes(complete, monitor, investigator,
                                                       participant):
    verification.verify(complete, by=monitor, paths=["weight_kg", "height_cm"])
    record = save_crf(participant, "demographics", demographics(participant, weight_kg="69.0"),
                      by=investigator, complete=True, record=complete, reason="scale error")
    assert [v.path for v in record.sdv_voided] == ["weight_kg"]
    standing = SourceVerification.objects.filter(voided_at__isnull=True)
    assert list(standing.values_list("field_path", flat=True)) == ["height_cm"]
    # Verified again at the next visit: a new mark beside the voided one.
    verification.verify(record, by=monitor, paths=["weight_kg"])
    assert SourceVerification.objects.filter(field_path="weight_kg").count() == 2


def test_bad_verifications_are_refused_and_nothing_written(
        complete, monitor, investigator, participant, baseline, rectal, sites, make_user):
    with pytest.raises(ValidationError, match="no field"):
        verification.verify(complete, by=monitor, paths=["weight_kg", "nonsense"])
    with pytest.raises(PermissionDenied):
        verification.verify(complete, by=investigator)
    with pytest.raises(PermissionDenied):  # a monitor of another site
        verification.verify(complete, by=make_user("monitor", rectal, sites[1]))
    draft = save_crf(participant, "qlq_c30", {}, by=investigator, complete=False,
                     visit=baseline)
    with pytest.raises(ValidationError, match="draft"):
        verification.verify(draft, by=monitor)
    assert not SourceVerification.objects.exists()


def test_a_monitoring_plan_naming_unknown_forms_or_fields_is_refused(rectal):
    definition = copy.deepcopy(rectal.definition)
    definition["monitoring"]["key_data"] = [{"crf": "nothing"},
                                            {"crf": "surgery", "fields": ["nope"]}]
    paths = {p.path for p in validate_definition(definition)}
    assert {"monitoring.key_data[0].crf", "monitoring.key_data[1].fields[0]"} <= paths
    definition["monitoring"] = {"sdv": "sample"}
    assert any(p.path == "monitoring" for p in validate_definition(definition))


def test_the_monitoring_visit_report_lists_findings_verifications_and_queries(
        complete, monitor, investigator, participant, data_manager, site, pdf_text):
    import datetime as dt

    from django.utils import timezone

    from crfs import monitoring
    from crfs.services import raise_query

    today = timezone.localdate()
    monitoring.record_visit(site, by=monitor, visited_on=today,
                            findings="Consent forms filed; one ECOG to check.")
    verification.verify(complete, by=monitor, paths=["weight_kg", "height_cm"])
    save_crf(participant, "demographics", demographics(participant, weight_kg="69.0"),
             by=investigator, complete=True, record=complete, reason="scale error")
    raise_query(complete, by=monitor, field_path="ecog", text="ECOG 1 in the notes?")
    data = monitoring.report(site, today - dt.timedelta(days=7), today)
    assert len(data.visits) == 1 and len(data.verified) == 2 and len(data.removed) == 1
    assert [q.field_path for q in data.queries] == ["ecog"]
    text = pdf_text(monitoring.pdf(data))
    for expected in ("Monitoring visit report", site.code, "one ECOG to check",
                     participant.study_id, "ECOG 1 in the notes?", "scale error"):
        assert expected in text, expected


def test_bad_monitoring_visits_and_periods_are_refused(site, monitor, investigator):
    import datetime as dt

    from django.utils import timezone

    from crfs import monitoring
    from crfs.models import MonitoringVisit

    today = timezone.localdate()
    with pytest.raises(ValidationError) as info:
        monitoring.record_visit(site, by=monitor, visited_on=today + dt.timedelta(days=1),
                                findings=" ")
    assert set(info.value.message_dict) == {"visited_on", "findings"}
    with pytest.raises(ValidationError, match="at most 10,000 are allowed"):
        monitoring.record_visit(site, by=monitor, visited_on=today, findings="x" * 10_001)
    with pytest.raises(PermissionDenied):
        monitoring.record_visit(site, by=investigator, visited_on=today, findings="x")
    with pytest.raises(ValidationError, match="before its start"):
        monitoring.report(site, today, today - dt.timedelta(days=1))
    assert not MonitoringVisit.objects.exists()
