"""Protocol files: the shipped ones load and round-trip; every kind of bad file is refused with
its file, path and reason, and loads nothing; loading is idempotent; amendments keep history."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from core.models import AuditEvent
from tests import factories
from trials.models import ProtocolVersion, Trial
from trials.protocol import ProtocolError, definition_digest, parse_protocol, read_protocol_file
from trials.services import load_protocol, shipped_protocol_files

MINIMAL = {
    "format": 1,
    "version": "1.0",
    "trial": {"slug": "mini", "title": "A minimal trial", "short_title": "MINI", "phase": "II",
              "design": "randomised", "masking": "open", "target_enrolment": 10},
    "sites": [{"code": "S1", "name": "Site one"}, {"code": "S2", "name": "Site two"}],
    "arms": [{"code": "A", "label": "Arm A", "ratio": 1}, {"code": "B", "label": "Arm B", "ratio": 1}],
    "allocation_ratio": "1:1",
    "randomisation": {"method": "permuted_blocks", "block_sizes": [2, 4]},
    "eligibility": [{"code": "INC1", "kind": "inclusion", "text": "Adult"}],
    "visits": [{"code": "v1", "label": "Visit 1", "anchor": "randomisation",
                "offset": {"days": 0}, "window": {"start": 0, "end": 7}, "crfs": ["form"]}],
    "crfs": [{"code": "form", "label": "Form", "fields": [
        {"code": "weight", "label": "Weight", "type": "decimal", "unit": "kg", "min": 20, "max": 300},
    ]}, {"code": "eligibility", "label": "Eligibility", "fields": [
        {"code": "INC1", "label": "Adult", "type": "yesno", "required": True},
    ]}],
}


def write(tmp_path: Path, data: dict, name: str = "mini.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def refused(tmp_path: Path, data: dict) -> ProtocolError:
    path = write(tmp_path, data)
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert str(path) in str(info.value), "the message must name the file"
    assert not Trial.objects.filter(slug="mini").exists(), "a refused file must load nothing"
    return info.value


def problems(error: ProtocolError) -> dict[str, str]:
    return {p.path: p.message for p in error.problems}


def test_both_trials_are_shipped():
    slugs = {read_protocol_file(p)["trial"]["slug"] for p in shipped_protocol_files()}
    assert slugs == {"rectal-resection", "reminet"}


@pytest.mark.parametrize("path", shipped_protocol_files(), ids=lambda p: p.name)
def test_shipped_protocol_round_trips(db, path):
    parsed = read_protocol_file(path)
    result = load_protocol(path)
    stored = ProtocolVersion.objects.get(pk=result.version.pk)
    assert stored.definition == parsed
    assert definition_digest(stored.definition) == stored.digest
    # Written back out and read again, the definition is unchanged.
    again = parse_protocol(yaml.safe_dump(stored.definition, allow_unicode=True))
    assert again == parsed


def test_reminet_facts_from_the_abstract(reminet):
    d = reminet.definition
    assert reminet.masking == "double-blind" and reminet.is_blinded
    assert reminet.target_enrolment == 118
    assert reminet.registry_id == "NCT02288377"
    assert d["allocation_ratio"] == "1:1"
    injection = next(v for v in d["visits"] if v.get("repeat", {}).get("every") == {"days": 28})
    assert "progression" in injection["repeat"]["until_event"]
    # choice: 60 months, past the placebo arm's median OS of 41.9 months (l.7).
    assert d["trial"]["follow_up_months"] == 60
    survival = next(v for v in d["visits"] if v["code"] == "survival_follow_up")
    assert survival["anchor"] == ["progression", "end_of_treatment"]
    assert survival["repeat"] == {"every": {"months": 3}, "until_event": ["death", "withdrawal"]}
    assert survival["crfs"] == ["last_news"]


def test_rectal_facts_from_the_registry(rectal):
    assert rectal.masking == "open" and not rectal.is_blinded
    assert rectal.phase == "III"
    assert rectal.sites.count() == 3
    assert {a.code for a in rectal.arms.all()} == {"A", "B"}
    assert rectal.definition["trial"]["follow_up_months"] == 24
    survival = next(v for v in rectal.definition["visits"] if v["code"] == "survival_follow_up")
    assert (survival["offset"], survival["repeat"]["until_event"]) == (
        {"months": 27}, ["death", "withdrawal"])
    os_ = next(e for e in rectal.definition["endpoints"] if e["code"] == "os")
    assert {"crf": "last_news", "field": "contact_date",
            "when": {"field": "vital_status", "equals": "alive"}} in os_["censoring"]["last_evidence"]


def test_the_rectal_target_is_not_stated_in_the_registry_record(rectal):
    # l.10-11 "Enrollment" / "5" is the actual enrolment of a closed record, not a plan.
    assert rectal.target_enrolment is None
    assert rectal.definition["trial"]["target_enrolment"] is None
    assert '"Enrollment" / "5" (l.10-11)' in rectal.definition["trial"]["target_enrolment_note"]


@pytest.mark.parametrize("form", ["null", "absent"])
def test_a_target_enrolment_not_stated_loads_as_none(db, tmp_path, form):
    data = copy.deepcopy(MINIMAL)
    if form == "null":
        data["trial"]["target_enrolment"] = None
    else:
        del data["trial"]["target_enrolment"]
    data["trial"]["target_enrolment_note"] = "Not stated in the source."
    assert load_protocol(write(tmp_path, data)).trial.target_enrolment is None


@pytest.mark.parametrize("value", [0, -5, "many", 2.5])
def test_a_target_enrolment_that_is_not_a_number_of_participants_is_refused(db, tmp_path, value):
    data = copy.deepcopy(MINIMAL)
    data["trial"]["target_enrolment"] = value
    assert problems(refused(tmp_path, data)) == {
        "trial.target_enrolment": f"{value!r}: must be the planned number of participants, a "
                                  "whole number of at least 1, or null when the protocol does "
                                  "not state it"}


def test_an_amendment_that_drops_the_target_clears_it(db, tmp_path):
    assert load_protocol(write(tmp_path, MINIMAL)).trial.target_enrolment == 10
    amended = copy.deepcopy(MINIMAL)
    amended["trial"]["target_enrolment"] = None
    result = load_protocol(write(tmp_path, amended))
    assert result.created and result.version.number == 2
    assert Trial.objects.get(slug="mini").target_enrolment is None


def test_valid_minimal_protocol_loads(db, tmp_path):
    result = load_protocol(write(tmp_path, MINIMAL))
    assert result.created and result.trial.sites.count() == 2


def test_missing_field_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    del data["arms"]
    assert problems(refused(tmp_path, data)) == {"": "'arms' is required"}


def test_unknown_field_type_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["crfs"][0]["fields"][0]["type"] = "float"
    found = problems(refused(tmp_path, data))
    assert "crfs[0].fields[0].type" in found
    assert "'float' is not one of" in found["crfs[0].fields[0].type"]


def test_unknown_key_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["crfs"][0]["fields"][0]["colour"] = "red"
    assert problems(refused(tmp_path, data)) == {"crfs[0].fields[0]": "unknown key(s): colour"}


def test_window_ending_before_it_starts_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["visits"][0]["window"] = {"start": 5, "end": -3}
    assert problems(refused(tmp_path, data)) == {
        "visits[0].window": "window ends (day -3) before it starts (day 5)"}


def test_a_criterion_without_its_question_on_the_eligibility_crf_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["eligibility"].append({"code": "EXC1", "kind": "exclusion", "text": "Pregnant"})
    assert problems(refused(tmp_path, data)) == {
        "eligibility[1].code": "the 'eligibility' CRF has no yes/no question 'EXC1'"}
    data["crfs"].pop()
    assert problems(refused(tmp_path, data)) == {
        "crfs": "no CRF coded 'eligibility': the criteria are answered on it"}


def test_ratio_disagreeing_with_arms_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["allocation_ratio"] = "2:1"
    assert "allocation_ratio" in problems(refused(tmp_path, data))


def test_block_size_not_a_multiple_of_the_ratio_sum_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["arms"][0]["ratio"] = 2
    data["allocation_ratio"] = "2:1"
    data["randomisation"]["block_sizes"] = [3, 4]
    assert problems(refused(tmp_path, data)) == {
        "randomisation.block_sizes[1]": "block size 4 is not a multiple of the ratio's sum 3"}


@pytest.mark.parametrize("where", ["sites", "arms", "visits", "crfs"])
def test_duplicate_codes_are_refused(db, tmp_path, where):
    data = copy.deepcopy(MINIMAL)
    data[where].append(copy.deepcopy(data[where][0]))
    if where == "arms":
        data["allocation_ratio"] = "1:1:1"
    found = problems(refused(tmp_path, data))
    path = f"{where}[{len(data[where]) - 1}].code"
    assert found[path].startswith("duplicate code")


def test_duplicate_field_codes_are_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["crfs"][0]["fields"].append(dict(data["crfs"][0]["fields"][0]))
    assert problems(refused(tmp_path, data)) == {"crfs[0].fields[1].code": "duplicate code 'weight'"}


def test_reference_to_unknown_crf_or_arm_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["visits"][0]["crfs"] = ["nope"]
    data["visits"][0]["arms"] = ["C"]
    assert problems(refused(tmp_path, data)) == {
        "visits[0].crfs[0]": "unknown CRF 'nope'", "visits[0].arms[0]": "unknown arm 'C'"}


def test_choice_field_without_choices_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["crfs"][0]["fields"].append({"code": "sex", "label": "Sex", "type": "choice"})
    assert "crfs[0].fields[1]" in problems(refused(tmp_path, data))


def test_invalid_yaml_is_refused_with_its_line(db, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("format: 1\ntrial: [unclosed\n", encoding="utf-8")
    with pytest.raises(ProtocolError) as info:
        load_protocol(path)
    assert "line" in info.value.problems[0].path and "broken.yaml" in str(info.value)


def test_command_reports_a_refused_file_and_loads_nothing(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["visits"][0]["window"] = {"start": 1, "end": 0}
    path = write(tmp_path, data)
    with pytest.raises(CommandError, match=r"mini\.yaml.*\n.*visits\[0\]\.window"):
        call_command("load_protocol", str(path))
    assert Trial.objects.count() == 0


def test_loading_twice_changes_nothing(db, tmp_path):
    path = write(tmp_path, MINIMAL)
    first = load_protocol(path)
    events = AuditEvent.objects.count()
    second = load_protocol(path)
    assert not second.created
    assert second.version.pk == first.version.pk
    assert ProtocolVersion.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_amendment_keeps_the_old_version_and_its_data(db, tmp_path, make_user):
    first = load_protocol(write(tmp_path, MINIMAL))
    user = make_user()
    participant = factories.participant(first.trial, by=user)

    amended = copy.deepcopy(MINIMAL)
    amended["version"] = "2.0"
    amended["amendment_note"] = "Third site opened; weight range widened."
    amended["sites"].append({"code": "S3", "name": "Site three"})
    amended["crfs"][0]["fields"][0]["max"] = 350
    second = load_protocol(write(tmp_path, amended))

    assert second.created and second.version.number == 2
    trial = Trial.objects.get(slug="mini")
    assert trial.current_version == second.version
    old = ProtocolVersion.objects.get(pk=first.version.pk)
    assert old.definition == MINIMAL  # unchanged, verbatim
    assert old.definition["crfs"][0]["fields"][0]["max"] == 300
    participant.refresh_from_db()
    assert participant.protocol_version_id == first.version.pk
    assert trial.sites.count() == 3

    # Loading the first file again does not roll the trial back.
    again = load_protocol(write(tmp_path, MINIMAL, name="old.yaml"))
    assert not again.created
    assert Trial.objects.get(slug="mini").current_version == second.version


def test_a_site_dropped_by_an_amendment_is_kept_inactive(db, tmp_path):
    load_protocol(write(tmp_path, MINIMAL))
    amended = copy.deepcopy(MINIMAL)
    amended["version"] = "1.1"
    amended["sites"] = amended["sites"][:1]
    load_protocol(write(tmp_path, amended))
    trial = Trial.objects.get(slug="mini")
    assert list(trial.sites.values_list("code", "active")) == [("S1", True), ("S2", False)]


def test_protocol_versions_cannot_be_changed(db, tmp_path):
    from django.core.exceptions import ValidationError

    version = load_protocol(write(tmp_path, MINIMAL)).version
    version.label = "hacked"
    with pytest.raises(ValidationError):
        version.save()


def _with_repeat(repeat: dict) -> dict:
    data = copy.deepcopy(MINIMAL)
    data["crfs"].append({"code": "stop", "label": "Stop", "fields": [
        {"code": "stop_date", "label": "Date", "type": "date"},
        {"code": "note", "label": "Note", "type": "text"}]})
    data["events"] = [{"code": "stopped", "label": "Stopped",
                       "source": {"crf": "stop", "field": "stop_date"}}]
    data["visits"][0]["repeat"] = repeat
    return data


def test_events_end_repeating_visits_and_must_be_declared(db, tmp_path):
    data = _with_repeat({"every": {"days": 28}, "until": {"months": 6},
                         "until_event": ["relapse"]})
    assert problems(refused(tmp_path, data)) == {
        "visits[0].repeat.until_event[0]": "unknown event 'relapse' (declare it under 'events')"}


def test_an_event_or_anchor_must_be_read_from_a_date_field(db, tmp_path):
    data = _with_repeat({"every": {"days": 28}, "until": {"months": 6}})
    data["events"][0]["source"]["field"] = "note"
    assert problems(refused(tmp_path, data)) == {
        "events[0].source.field": "an event is dated: its source must be a date field"}


def test_a_visit_may_hang_on_events_which_must_be_declared(db, tmp_path):
    data = _with_repeat({"every": {"months": 3}, "until": {"months": 12}})
    data["visits"].append({**data["visits"][0], "code": "v2", "anchor": ["stopped", "relapse"]})
    data["visits"].append({**data["visits"][0], "code": "v3", "anchor": "relapse"})
    assert problems(refused(tmp_path, data)) == {
        "visits[1].anchor[1]": "unknown anchor or event 'relapse'",
        "visits[2].anchor": "unknown anchor 'relapse'"}
    data["visits"][1]["anchor"] = ["stopped"]
    data["visits"][2]["anchor"] = "stopped"
    assert load_protocol(write(tmp_path, data)).created


def test_a_repetition_without_an_end_needs_the_follow_up_duration(db, tmp_path):
    data = _with_repeat({"every": {"days": 28}, "until_event": ["stopped"]})
    assert "visits[0].repeat" in problems(refused(tmp_path, data))
    data["trial"]["follow_up_months"] = 12
    assert load_protocol(write(tmp_path, data)).created  # and a declared event is accepted


def test_a_blinded_trial_cannot_have_arm_specific_visits(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["trial"]["masking"] = "double-blind"
    data["randomisation"]["kit_code_length"] = 6
    data["visits"][0]["arms"] = ["A"]
    assert problems(refused(tmp_path, data)) == {"visits[0].arms": (
        "in a blinded trial a visit cannot depend on the arm: the schedule would reveal it")}


def _with_endpoint(**changes) -> dict:
    data = copy.deepcopy(MINIMAL)
    data["trial"]["follow_up_months"] = 24
    data["crfs"].append({"code": "death", "label": "Death", "fields": [
        {"code": "death_date", "label": "Date", "type": "date"},
        {"code": "cause", "label": "Cause", "type": "choice",
         "choices": [{"code": "disease", "label": "Disease"}, {"code": "other", "label": "Other"}]}]})
    endpoint = {"code": "os", "label": "Overall survival", "origin": "randomisation",
                "events": [{"crf": "death", "field": "death_date"}],
                "censoring": {"last_evidence": ["visits_done"]},
                "landmarks": [{"months": 24, "level": 0.95}]}
    endpoint.update(changes)
    data["endpoints"] = [endpoint]
    return data


def test_shipped_endpoints_trace_to_the_sources(rectal, reminet):
    rectal_endpoints = {e["code"]: e for e in rectal.definition["endpoints"]}
    assert set(rectal_endpoints) == {"os", "pfs", "ttp"}
    landmark = rectal_endpoints["os"]["landmarks"][0]
    assert (landmark["months"], landmark["level"]) == (24, 0.95)
    ttp = rectal_endpoints["ttp"]["events"]
    assert [(e.get("when", {}).get("in"), e.get("arms")) for e in ttp] == [
        (["metastatic"], None), (["primary_tumour"], ["B"])]
    pfs = next(e for e in reminet.definition["endpoints"] if e["code"] == "pfs")
    assert pfs["primary"] and pfs["landmarks"][0]["months"] == 6
    assert pfs["landmarks"][0]["level"] == 0.90
    assert "73.1%" in pfs["landmarks"][0]["source"]


def test_an_endpoint_with_a_valid_definition_loads(db, tmp_path):
    assert load_protocol(write(tmp_path, _with_endpoint())).created


def test_endpoint_references_to_unknown_crfs_fields_and_arms_are_refused(db, tmp_path):
    data = _with_endpoint(events=[
        {"crf": "autopsy", "field": "death_date"},
        {"crf": "death", "field": "cause"},
        {"crf": "death", "field": "death_date", "arms": ["C"],
         "when": {"field": "cause", "in": ["suicide"]}},
        {"crf": "death", "field": "death_date", "when": {"field": "place", "equals": "home"}},
    ], censoring={"last_evidence": ["visits_done", {"crf": "form", "field": "weight"}]})
    error = refused(tmp_path, data)
    assert problems(error) == {
        "endpoints[0].events[0].crf": "unknown CRF 'autopsy'",
        "endpoints[0].events[1].field": "'cause' is not a date field of CRF 'death'",
        "endpoints[0].events[2].arms[0]": "unknown arm 'C'",
        "endpoints[0].events[2].when": "'suicide' is not a choice of field 'cause' in CRF 'death'",
        "endpoints[0].events[3].when.field": "unknown field 'place' in CRF 'death'",
        "endpoints[0].censoring.last_evidence[1].field":
            "'weight' is not a date field of CRF 'form'",
    }
    assert "mini.yaml" in str(error)


def test_censoring_evidence_may_count_only_when_a_choice_holds(db, tmp_path):
    data = _with_endpoint(censoring={"last_evidence": [
        {"crf": "death", "field": "death_date", "when": {"field": "cause", "equals": "alive"}},
        {"crf": "death", "field": "death_date", "when": {"field": "status", "equals": "x"}},
        {"crf": "death", "field": "death_date", "if": {"field": "cause", "equals": "other"}},
    ]})
    found = problems(refused(tmp_path, data))
    assert found == {"endpoints[0].censoring.last_evidence[2]": found[
        "endpoints[0].censoring.last_evidence[2]"]}, "the schema is checked first"
    del data["endpoints"][0]["censoring"]["last_evidence"][2]
    assert problems(refused(tmp_path, data)) == {
        "endpoints[0].censoring.last_evidence[0].when":
            "'alive' is not a choice of field 'cause' in CRF 'death'",
        "endpoints[0].censoring.last_evidence[1].when.field":
            "unknown field 'status' in CRF 'death'"}
    data["endpoints"][0]["censoring"]["last_evidence"] = [
        {"crf": "death", "field": "death_date", "when": {"field": "cause", "in": ["other"]}}]
    assert load_protocol(write(tmp_path, data)).created


def test_a_horizon_shorter_than_a_published_figure_loads_with_a_warning(db, tmp_path, capsys):
    # Issue 16: REMINET's median OS of 41.9 months (seed l.7) with a 36-month horizon.
    data = _with_endpoint(published=[
        {"months": 41.9, "what": "median OS, PBO", "source": "l.7"},
        {"months": 12.5, "what": "median PFS", "source": "l.7"}])
    data["trial"]["follow_up_months"] = 36
    result = load_protocol(write(tmp_path, data))
    assert result.created, "a warning does not refuse the file"
    assert [(w.path, w.message) for w in result.warnings] == [(
        "endpoints[0].published[0].months",
        "os: the follow-up horizon (36 months) is shorter than the published median OS, PBO "
        "(41.9 months, l.7)")]
    call_command("load_protocol", str(write(tmp_path, data)))
    out = capsys.readouterr().out
    assert "unchanged" in out and "warning:" in out and "endpoints[0].published[0].months" in out
    data["endpoints"][0]["horizon_months"] = 48
    assert not load_protocol(write(tmp_path, data)).warnings


def test_a_published_figure_needs_its_months_and_source(db, tmp_path):
    data = _with_endpoint(published=[{"months": 0, "what": "median OS", "source": "l.7"},
                                     {"months": 12, "what": "median OS"}])
    found = problems(refused(tmp_path, data))
    assert set(found) == {"endpoints[0].published[0].months", "endpoints[0].published[1]"}


def test_the_shipped_protocols_load_without_warnings(db):
    for path in shipped_protocol_files():
        assert load_protocol(path).warnings == ()


def test_a_landmark_past_the_horizon_and_an_unknown_origin_are_refused(db, tmp_path):
    data = _with_endpoint(landmarks=[{"months": 30, "level": 0.9}])
    assert problems(refused(tmp_path, data)) == {
        "endpoints[0].landmarks[0].months":
            "landmark at 30 months is past the follow-up horizon (24 months)"}
    data = _with_endpoint(origin="surgery")
    assert "endpoints[0].origin" in problems(refused(tmp_path, data))
    data = _with_endpoint()
    del data["trial"]["follow_up_months"]
    assert "endpoints[0].horizon_months" in problems(refused(tmp_path, data))


def test_an_endpoint_may_choose_its_interval_and_its_strata(db, tmp_path):
    assert load_protocol(write(tmp_path, _with_endpoint(ci_transform="log-log", strata=[]))).created


def test_an_endpoints_analysis_options_are_checked(db, tmp_path):
    assert "endpoints[0].ci_transform" in problems(
        refused(tmp_path, _with_endpoint(ci_transform="plain")))
    found = problems(refused(tmp_path, _with_endpoint(strata=["stage"])))
    assert found["endpoints[0].strata[0]"].startswith("'stage' is not a stratum of the randomisation")


def test_the_rectal_primary_analysis_is_stratified_by_the_randomisation_strata(rectal, reminet):
    os_ = next(e for e in rectal.definition["endpoints"] if e["code"] == "os")
    assert os_["primary"] and os_["strata"] == ["site", "metastatic_extent"]
    assert os_.get("ci_transform", "log") == "log"
    assert os_["landmarks"][0].get("primary") is not True, "the 24-month rate is secondary"
    for endpoint in reminet.definition["endpoints"]:
        assert endpoint["ci_transform"] == "log-log", "REMINET's figures stay as they were"


def test_safety_tables_must_name_known_crfs_and_fields(db, tmp_path):
    data = _with_endpoint()
    data["safety"] = {"adverse_events": {"crf": "death", "group": "cause", "grade": "grade"},
                      "surgical_morbidity": {"crf": "clavien", "field": "worst"}}
    assert problems(refused(tmp_path, data)) == {
        "safety.adverse_events.group": "'cause' is not a group of CRF 'death'",
        "safety.surgical_morbidity.crf": "unknown CRF 'clavien'"}


def test_a_changed_endpoint_is_an_amendment(db, tmp_path):
    first = load_protocol(write(tmp_path, _with_endpoint()))
    second = load_protocol(write(tmp_path, _with_endpoint(landmarks=[{"months": 12,
                                                                      "level": 0.9}])))
    assert second.created and second.version.number == 2
    assert first.version.definition["endpoints"][0]["landmarks"][0]["months"] == 24


def test_a_rebaseline_rule_with_an_unknown_arm_or_anchor_is_refused(db, tmp_path):
    data = copy.deepcopy(MINIMAL)
    data["crfs"][0]["rebaseline"] = {"arms": ["A", "C"], "after_anchor": "surgery"}
    assert problems(refused(tmp_path, data)) == {
        "crfs[0].rebaseline.arms[1]": "unknown arm 'C'",
        "crfs[0].rebaseline.after_anchor": "unknown anchor 'surgery'",
        "crfs[0].rebaseline": "only a CRF with RECIST derivations re-baselines"}


def _with_death_event(shown_by: list[dict], **endpoint) -> dict:
    """``_with_endpoint`` with a death event shown also by ``shown_by`` (issue 16, one truth
    for each event) and an adverse-event CRF whose rows may show it."""
    data = _with_endpoint(**endpoint)
    data["crfs"].append({"code": "adverse_events", "label": "AEs", "fields": [
        {"code": "events", "label": "Events", "type": "group", "fields": [
            {"code": "grade", "label": "Grade", "type": "choice",
             "choices": [{"code": g, "label": str(g)} for g in range(1, 6)]},
            {"code": "end_date", "label": "End", "type": "date"}]},
        {"code": "report_date", "label": "Reported", "type": "date"},
        {"code": "status", "label": "Status", "type": "choice",
         "choices": [{"code": "final", "label": "Final"}]}]})
    data["events"] = [{"code": "death", "label": "Death",
                       "source": {"crf": "death", "field": "death_date"}, "shown_by": shown_by}]
    return data


def test_an_event_shown_by_other_records_loads_and_endpoints_name_it(db, tmp_path):
    data = _with_death_event([
        {"crf": "adverse_events", "field": "events.end_date", "label": "AE of grade 5",
         "when": {"field": "events.grade", "equals": 5}},
        {"crf": "adverse_events", "field": "report_date", "label": "Final AE report",
         "when": {"field": "status", "equals": "final"}, "expected": True}],
        events=[{"event": "death"}])
    assert load_protocol(write(tmp_path, data)).created


def test_records_said_to_show_an_event_are_checked_with_their_path(db, tmp_path):
    data = _with_death_event([
        {"crf": "autopsy", "field": "date", "label": "Autopsy"},
        {"crf": "adverse_events", "field": "events.grade", "label": "Not a date",
         "when": {"field": "events.grade", "equals": 6}},
        {"crf": "adverse_events", "field": "report_date", "label": "Row condition on a record",
         "when": {"field": "events.grade", "equals": 5}},
        {"crf": "death", "field": "death_date", "label": "Itself, unconditionally"},
        {"crf": "adverse_events", "field": "report_date", "label": "Expected on what?",
         "expected_when": {"field": "place", "equals": "home"}},
    ], events=[{"event": "death"}, {"event": "progression", "arms": ["C"]}])
    assert problems(refused(tmp_path, data)) == {
        "events[0].shown_by[0].crf": "unknown CRF 'autopsy'",
        "events[0].shown_by[1].field": "'events.grade' is not a date field of CRF 'adverse_events'",
        "events[0].shown_by[1].when": "6 is not a choice of field 'events.grade' in CRF "
                                      "'adverse_events'",
        "events[0].shown_by[2].when.field": "'events.grade' is in a group: the date must be a "
                                            "field of the same group, read row by row",
        "events[0].shown_by[3]": "the event's own CRF shows it again only under a condition "
                                 "('when')",
        "events[0].shown_by[4].expected_when.field": "unknown field 'place' in CRF 'death'",
        "endpoints[0].events[1].arms[0]": "unknown arm 'C'",
        "endpoints[0].events[1].event": "unknown event 'progression' (declare it under 'events')",
    }


def test_an_event_shown_by_another_record_needs_a_label_and_one_kind_of_expectation(
        db, tmp_path):
    data = _with_death_event([{"crf": "adverse_events", "field": "report_date"}])
    assert "events[0].shown_by[0]" in problems(refused(tmp_path, data))
    data = _with_death_event([{"crf": "adverse_events", "field": "report_date", "label": "x",
                               "expected": True,
                               "expected_when": {"field": "cause", "equals": "other"}}])
    assert "events[0].shown_by[0]" in problems(refused(tmp_path, data))


def test_sae_triggers_name_known_crfs_and_fields_and_need_products(db, tmp_path):
    data = _with_endpoint()
    data["safety"] = {"sae_triggers": [
        {"crf": "death", "field": "death_date", "criterion": "death", "onset_field": "when"},
        {"crf": "hospital", "field": "admitted"}]}
    assert problems(refused(tmp_path, data)) == {
        "safety.products": "SAE triggers need the study products to assess",
        "safety.sae_triggers[0].onset_field": "unknown field 'when' in CRF 'death'",
        "safety.sae_triggers[1].crf": "unknown CRF 'hospital'"}
    rsi = {"document": "SmPC", "version": "1"}
    data["safety"]["products"] = [{"code": "x", "label": "X", "reference_safety_information": rsi},
                                  {"code": "x", "label": "Y", "reference_safety_information": rsi}]
    assert problems(refused(tmp_path, data))["safety.products"] == "product codes must be unique"


def test_both_trials_name_their_study_products_and_what_opens_an_sae(rectal, reminet):
    for trial in (rectal, reminet):
        safety = trial.definition["safety"]
        assert safety["products"] and all(
            p["reference_safety_information"]["version"] for p in safety["products"])
        assert {t["crf"] for t in safety["sae_triggers"]} == {"adverse_events", "death"}
    [product] = reminet.definition["safety"]["products"]
    assert product["blinded"], "lanreotide and placebo are one blinded study product"
