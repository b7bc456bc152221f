"""Edit checks: hard ones block, soft ones warn; rows of groups are checked one by one."""
import datetime as dt

from crfs.checks import run_checks

SURGERY = {"checks": [
    {"code": "after_randomisation", "field": "surgery_date", "rule": "not_before",
     "reference": {"anchor": "randomisation"}, "severity": "hard",
     "message": "Surgery cannot be before randomisation."},
    {"code": "within_21_days", "field": "surgery_date", "rule": "at_most_days_after", "days": 21,
     "reference": {"anchor": "randomisation"}, "severity": "soft",
     "message": "Surgery later than 21 days after randomisation."},
]}
REFS = {"anchor:randomisation": dt.date(2026, 3, 1)}


def test_surgery_before_randomisation_is_blocked():
    [result] = run_checks(SURGERY, {"surgery_date": "2026-02-27"}, REFS)
    assert (result.code, result.blocks, result.path, result.days) == (
        "after_randomisation", True, "surgery_date", 2)


def test_surgery_on_day_21_passes_and_day_25_warns_without_blocking():
    assert run_checks(SURGERY, {"surgery_date": "2026-03-22"}, REFS) == []
    [result] = run_checks(SURGERY, {"surgery_date": "2026-03-26"}, REFS)
    assert result.code == "within_21_days" and not result.blocks and result.days == 4


def test_unknown_dates_do_not_fail():
    assert run_checks(SURGERY, {"surgery_date": None}, REFS) == []
    assert run_checks(SURGERY, {"surgery_date": "2026-01-01"}, {}) == []


def test_death_not_before_last_visit():
    death = {"checks": [{"code": "after_last_visit", "field": "death_date", "rule": "not_before",
                         "reference": {"last_visit": True}, "severity": "hard",
                         "message": "Death cannot be before the last visit."}]}
    refs = {"last_visit": dt.date(2026, 6, 10)}
    assert run_checks(death, {"death_date": "2026-06-10"}, refs) == []
    [result] = run_checks(death, {"death_date": "2026-06-01"}, refs)
    assert result.days == 9


def test_group_rows_are_checked_one_by_one():
    events = {"checks": [{"code": "end_after_start", "field": "events.end_date",
                          "rule": "not_before", "reference": {"field": "events.start_date"},
                          "severity": "hard", "message": "Ends before it starts."}]}
    data = {"events": [{"start_date": "2026-04-01", "end_date": "2026-04-03"},
                       {"start_date": "2026-04-05", "end_date": "2026-04-02"}]}
    [result] = run_checks(events, data, {})
    assert result.path == "events[1].end_date"


def test_reference_to_another_field_of_the_form():
    form = {"checks": [{"code": "c", "field": "end", "rule": "not_before",
                        "reference": {"field": "start"}, "message": "m"}]}
    assert run_checks(form, {"start": "2026-01-02", "end": "2026-01-01"}, {})[0].blocks
