"""Edit checks in the protocol's expression language: hard ones block saving with the message on
the field and nothing written, soft ones warn and record a deviation; rows of groups are
checked one by one; a value not known yet makes a check pass (three-valued logic); another
form's answer is read from the participant's records."""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from crfs import selectors, services
from crfs.checks import page_rules, run_checks
from crfs.models import CRFRecord, DataQuery
from demo.data import crf_answers
from patients.models import Deviation, DeviationRule, Visit
from tests import factories
from trials.models import crf_of, definition_of

SURGERY = {"code": "surgery", "fields": [
    {"code": "surgery_date", "type": "date"},
    {"code": "immunonutrition_given", "type": "yesno"},
    {"code": "immunonutrition_start", "type": "date"},
    {"code": "immunonutrition_days", "type": "integer"},
], "checks": [
    {"code": "after_randomisation", "expect": "surgery_date >= anchor.randomisation",
     "severity": "hard", "message": "Surgery cannot be before randomisation."},
    {"code": "within_21_days", "expect": "surgery_date <= anchor.randomisation + 21",
     "severity": "soft", "message": "Surgery later than 21 days after randomisation."},
    {"code": "seven_days", "when": "immunonutrition_given = yes",
     "expect": "surgery_date - immunonutrition_start >= 7", "field": "immunonutrition_start",
     "severity": "soft", "message": "Immunonutrition for less than 7 days."},
]}
REFS = {"anchor.randomisation": dt.date(2026, 3, 1)}


def test_surgery_before_randomisation_is_blocked():
    [result] = run_checks(SURGERY, {"surgery_date": "2026-02-27"}, REFS)
    assert (result.code, result.blocks, result.path, result.days) == (
        "after_randomisation", True, "surgery_date", 2)


def test_surgery_on_day_21_passes_and_day_25_warns_without_blocking():
    assert run_checks(SURGERY, {"surgery_date": "2026-03-22"}, REFS) == []
    [result] = run_checks(SURGERY, {"surgery_date": "2026-03-26"}, REFS)
    assert result.code == "within_21_days" and not result.blocks and result.days == 4


def test_unknown_values_do_not_fail():
    assert run_checks(SURGERY, {"surgery_date": None}, REFS) == []
    assert run_checks(SURGERY, {"surgery_date": "2026-01-01"}, {}) == []
    assert run_checks(SURGERY, {"surgery_date": "2026-03"}, REFS) == []  # a partial date


def test_a_check_applies_only_when_its_condition_holds():
    data = {"surgery_date": "2026-03-10", "immunonutrition_start": "2026-03-05"}
    assert run_checks(SURGERY, dict(data, immunonutrition_given=False), REFS) == []
    assert run_checks(SURGERY, dict(data, immunonutrition_given=None), REFS) == []  # unknown
    [result] = run_checks(SURGERY, dict(data, immunonutrition_given=True), REFS)
    assert (result.code, result.path, result.days) == ("seven_days", "immunonutrition_start", 2)


def test_death_not_before_last_visit():
    death = {"code": "death", "fields": [{"code": "death_date", "type": "date"}],
             "checks": [{"code": "after_last_visit", "expect": "death_date >= last_visit",
                         "message": "Death cannot be before the last visit."}]}
    refs = {"last_visit": dt.date(2026, 6, 10)}
    assert run_checks(death, {"death_date": "2026-06-10"}, refs) == []
    [result] = run_checks(death, {"death_date": "2026-06-01"}, refs)
    assert result.days == 9 and result.blocks  # hard unless said otherwise


def test_group_rows_are_checked_one_by_one():
    events = {"code": "ae", "fields": [{"code": "events", "type": "group", "fields": [
        {"code": "start_date", "type": "date"}, {"code": "end_date", "type": "date"}]}],
        "checks": [{"code": "end_after_start", "expect": "events.end_date >= events.start_date",
                    "message": "Ends before it starts."}]}
    data = {"events": [{"start_date": "2026-04-01", "end_date": "2026-04-03"},
                       {"start_date": "2026-04-05", "end_date": "2026-04-02"},
                       {"start_date": "2026-04-05", "end_date": None}]}
    [result] = run_checks(events, data, {})
    assert result.path == "events[1].end_date" and result.days == 3


def test_a_range_check_on_numbers_has_no_days():
    form = {"code": "x", "fields": [{"code": "lesions", "type": "group", "fields": [
        {"code": "d", "type": "decimal"}]}],
        "checks": [{"code": "plausible", "expect": "lesions.d = 0 or lesions.d >= 5 and "
                    "lesions.d <= 300", "severity": "soft", "message": "Implausible."}]}
    data = {"lesions": [{"d": "0"}, {"d": "3.5"}, {"d": "12"}, {"d": "301"}, {"d": None}]}
    results = run_checks(form, data, {})
    assert [(r.path, r.days, r.blocks) for r in results] == [
        ("lesions[1].d", None, False), ("lesions[3].d", None, False)]


def test_another_forms_answer_is_compared():
    protocol = {"crfs": [
        {"code": "eligibility", "fields": [{"code": "months", "type": "decimal"}]},
        {"code": "demographics", "fields": [{"code": "months", "type": "decimal"}],
         "checks": [{"code": "agree", "expect": "months = eligibility.months",
                     "message": "Differs from the eligibility form."}]}]}
    demographics = protocol["crfs"][1]
    refs = {"eligibility.months": "4.6"}
    assert run_checks(demographics, {"months": "4.6"}, refs, protocol=protocol) == []
    [result] = run_checks(demographics, {"months": "4.7"}, refs, protocol=protocol)
    assert result.path == "months" and result.message == "Differs from the eligibility form."
    assert run_checks(demographics, {"months": "4.7"}, {}, protocol=protocol) == []
    rules = page_rules(demographics, protocol, refs, dt.date(2026, 1, 2))
    assert rules["refs"] == refs and rules["today"] == "2026-01-02"
    assert rules["checks"][0]["expect"] == [
        "cmp", "=", ["field", "months", "number"], ["ref", "eligibility.months", "number"],
        "number"]


# --- the save path -----------------------------------------------------------------------------

@pytest.fixture
def reminet_participant(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    participant = factories.randomised(trial, by=coordinator, l1_duration_months="4.6")
    investigator = make_user("investigator", trial, participant.site)
    return trial, participant, investigator


def demographics(trial, **overrides):
    crf = crf_of(trial.current_version_id, "demographics")
    return crf_answers(crf, on=timezone.localdate(), **{
        "year_of_birth": 1960, "height_cm": "165", "weight_kg": "61.5", **overrides})


@pytest.mark.django_db
def test_a_hard_cross_form_check_blocks_the_save_and_writes_nothing(reminet_participant):
    trial, participant, investigator = reminet_participant
    baseline = Visit.objects.get(participant=participant, code="baseline")
    refs = selectors.check_references(participant, ["eligibility.l1_duration_months"],
                                      visit=baseline)
    assert refs == {"eligibility.l1_duration_months": "4.6"}
    with pytest.raises(ValidationError) as caught:
        services.save_crf(participant, "demographics",
                          demographics(trial, l1_duration_months="5.0"),
                          by=investigator, complete=True, visit=baseline)
    assert caught.value.message_dict == {"l1_duration_months": [
        "The duration of first-line treatment differs from the one on the eligibility form: "
        "correct the wrong one."]}
    assert not CRFRecord.objects.filter(participant=participant,
                                        crf_code="demographics").exists()
    record = services.save_crf(participant, "demographics",
                               demographics(trial, l1_duration_months="4.6"),
                               by=investigator, complete=True, visit=baseline)
    assert record.status == "complete" and record.warnings == []


@pytest.mark.django_db
def test_inc5_yes_needs_two_months_on_the_eligibility_form(reminet):
    protocol = definition_of(reminet.current_version_id)
    eligibility = crf_of(reminet.current_version_id, "eligibility")
    [result] = run_checks(eligibility, {"INC5": True, "l1_duration_months": "1.5"}, {},
                          protocol=protocol)
    assert (result.code, result.path, result.blocks) == (
        "inc5_needs_two_months_of_first_line", "l1_duration_months", True)
    assert run_checks(eligibility, {"INC5": False, "l1_duration_months": "1.5"}, {},
                      protocol=protocol) == []
    assert run_checks(eligibility, {"INC5": True, "l1_duration_months": "2.0"}, {},
                      protocol=protocol) == []


@pytest.mark.django_db
def test_a_soft_check_saves_warns_records_a_deviation_and_a_query(rectal_ready, make_user):
    trial, coordinator = rectal_ready
    participant = factories.randomised(trial, by=coordinator, days_ago=10)
    investigator = make_user("investigator", trial, participant.site)
    surgery_on = timezone.localdate() - dt.timedelta(days=2)
    crf = crf_of(participant.protocol_version_id, "surgery")
    data = crf_answers(crf, on=surgery_on, immunonutrition_given=True, immunonutrition_days=7,
                       immunonutrition_start=(surgery_on - dt.timedelta(days=5)).isoformat())
    record = services.save_crf(participant, "surgery", data, by=investigator, complete=True)
    assert [(w.code, w.path, w.days) for w in record.warnings] == [
        ("immunonutrition_started_7_days_before_surgery", "immunonutrition_start", 2)]
    deviation = Deviation.objects.get(participant=participant, rule=DeviationRule.EDIT_CHECK)
    assert deviation.days_outside == 2
    assert "check immunonutrition_started_7_days_before_surgery" in deviation.description
    assert DataQuery.objects.filter(record=record, raised_by=None,
                                    field_path="immunonutrition_start").exists()


@pytest.mark.django_db
def test_the_conditional_other_site_is_required_only_when_other_is_ticked(rectal_ready,
                                                                           make_user):
    trial, coordinator = rectal_ready
    participant = factories.randomised(trial, by=coordinator)
    investigator = make_user("investigator", trial, participant.site)
    crf = crf_of(participant.protocol_version_id, "demographics")
    baseline = Visit.objects.get(participant=participant, code="baseline")
    data = crf_answers(crf, on=timezone.localdate(), metastatic_sites=["liver", "other"],
                       metastatic_sites_other=None)
    with pytest.raises(ValidationError, match="metastatic_sites_other"):
        services.save_crf(participant, "demographics", data, by=investigator, complete=True,
                          visit=baseline)
    data = crf_answers(crf, on=timezone.localdate(), metastatic_sites=["liver"],
                       metastatic_sites_other="Brain")
    record = services.save_crf(participant, "demographics", data, by=investigator,
                               complete=True, visit=baseline)
    assert record.data["metastatic_sites_other"] is None  # hidden: a stale answer is dropped


def test_rules_of_a_crf_without_checks_are_none():
    assert page_rules({"code": "x", "fields": []}, None, {}, dt.date(2026, 1, 1)) is None
