"""Derived values are a function of the data, always: saving, correcting or unlocking one record
re-derives every derived value that depends on it, for that participant (issue 16).

RECIST 1.1 (Eisenhauer 2009) §4.3.1: PR is a decrease of at least 30 % from the baseline sum; PD
an increase of at least 20 % and 5 mm from the nadir (the smallest sum on study, baseline
included). The earliest assessment by date is the baseline.
"""
from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.crf_input import to_post
from core.models import AuditEvent
from crfs import services, trail
from crfs.derivations import NOTES_KEY
from crfs.forms import build_crf_form
from crfs.models import CRFRecord, CRFSignature, CRFStatus, SignatureMeaning
from demo.data import crf_answers
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from trials.models import crf_of


def tumour(participant, day: dt.date, *diameters: str | None, new: bool = False,
           non_target: str = "present") -> dict:
    """A tumour assessment of ``day`` with one target lesion per diameter (lesion 1, 2…)."""
    crf = crf_of(participant.protocol_version_id, "tumour_assessment")
    lesions = [{"lesion_number": i, "organ": "Liver", "diameter_mm": d, "lymph_node": False}
               for i, d in enumerate(diameters, start=1)]
    return crf_answers(crf, on=day, target_lesions=lesions, new_lesions=new,
                       non_target_status=non_target)


def assessment_visits(participant) -> list[Visit]:
    """The baseline visit, then the follow-up visits, each expecting a tumour assessment."""
    return [v for v in Visit.objects.filter(participant=participant).order_by("target_date", "pk")
            if "tumour_assessment" in (v.crfs or [])]


def stored_data(record: CRFRecord) -> dict:
    return CRFRecord.objects.get(pk=record.pk).data


def derived(record: CRFRecord) -> tuple:
    data = stored_data(record)
    return data["sum_of_diameters"], data["overall_response"], data.get(NOTES_KEY)


@pytest.fixture
def long_followed(rectal, coordinator):
    """Randomised 400 days ago: a baseline visit and four follow-up visits in the past."""
    return factories.randomised(rectal, by=coordinator, days_ago=400)


def test_a_scan_entered_before_its_baseline_gets_its_response_when_the_baseline_comes(
        long_followed, investigator, data_manager):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    # The 3-month scan first: 60 mm. Alone, it is the earliest assessment, so the reference.
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    assert derived(scan)[:2] == ("60.0", None)

    # The baseline (earlier): 100 mm. 60 <= 100 x 0.7 = 70 -> PR.
    base = save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
                    by=investigator, complete=True, visit=base_visit)
    assert derived(scan)[:2] == ("60.0", "pr")
    # The history shows what changed, the reason that went away included.
    assert {(d.path, d.old, d.new) for d in trail.differences(
        scan.history.order_by("history_id")[0].data, stored_data(scan))} == {
        ("overall_response", None, "pr"),
        ("derivation_notes.overall_response",
         "baseline assessment: the reference of later responses", None)}
    row = CRFRecord.objects.get(pk=scan.pk).history.order_by("-history_id").first()
    assert row.history_change_reason == (f"re-derived after tumour_assessment of "
                                         f"{base_visit.target_date.isoformat()} changed")
    assert row.history_user == investigator

    # The baseline corrected to 50 mm: nadir 50, 60 >= 50 x 1.2 = 60 and 60 - 50 = 10 >= 5 -> PD.
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "50"),
             by=data_manager, complete=True, record=base, visit=base_visit,
             reason="Read again: 50 mm")
    assert derived(scan)[:2] == ("60.0", "pd")
    rows = CRFRecord.objects.get(pk=scan.pk).history.order_by("history_id")
    assert [r.history_change_reason for r in rows][-1].startswith("re-derived after")
    assert rows.last().history_user == data_manager


def test_a_query_answered_by_correcting_the_baseline_re_derives_the_later_response(
        long_followed, investigator, data_manager):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    base = save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
                    by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    query = services.raise_query(base, by=data_manager, field_path="target_lesions[0].diameter_mm",
                                 text="The report says 50 mm.")
    services.answer_query(query, by=investigator, text="Corrected from the report",
                          correction=tumour(p, base_visit.target_date, "50"))
    assert derived(scan)[1] == "pd"  # 60 vs nadir 50: +20 %, +10 mm
    last = scan.history.order_by("-history_id").first()
    assert (last.history_change_reason, last.history_user) == (
        f"re-derived after tumour_assessment of {base_visit.target_date.isoformat()} changed",
        investigator)


def test_a_save_that_changes_no_derived_value_writes_no_history_row_elsewhere(
        long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    base = save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
                    by=investigator, complete=False, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    before = scan.history.count()
    # The baseline's method changes, not its lesions: the scan's response stays PR.
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100") | {"method": "mri"},
             by=investigator, complete=False, record=base, visit=base_visit)
    assert scan.history.count() == before
    assert derived(scan)[1] == "pr"


def test_a_re_derivation_voids_the_signature_of_a_signed_record(long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    base = save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
                    by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    services.sign_crf(scan, by=investigator, password=PASSWORD,
                      meaning=SignatureMeaning.ACCURATE)
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "50"), by=investigator,
             complete=True, record=base, visit=base_visit, reason="Read again")
    scan.refresh_from_db()
    assert (scan.status, scan.data["overall_response"]) == (CRFStatus.COMPLETE, "pd")
    (signature,) = CRFSignature.objects.filter(record=scan)
    assert signature.voided_at is not None
    assert signature.void_reason.startswith("re-derived after tumour_assessment of")
    assert AuditEvent.objects.filter(action="crf.signature_voided").exists()


def test_a_change_that_would_re_derive_a_locked_record_is_refused_naming_it(
        long_followed, investigator, data_manager):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    base = save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
                    by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    services.lock_crf(scan, by=data_manager)
    with pytest.raises(ValidationError) as caught:
        save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "50"),
                 by=investigator, complete=True, record=base, visit=base_visit,
                 reason="Read again")
    assert f"tumour_assessment of {month_3.target_date.isoformat()}" in caught.value.messages[0]
    assert "locked" in caught.value.messages[0]
    with translation.override("fr"), pytest.raises(ValidationError) as in_french:
        save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "50"),
                 by=investigator, complete=True, record=base, visit=base_visit,
                 reason="Read again")
    assert "verrouillé" in in_french.value.messages[0]
    base.refresh_from_db()
    assert base.data["target_lesions"][0]["diameter_mm"] == "100"  # nothing written
    assert derived(scan)[1] == "pr"
    # A change that leaves the locked record's values as they are goes through.
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100") | {"method": "mri"},
             by=investigator, complete=True, record=base, visit=base_visit, reason="MRI")


def test_unlocking_brings_a_stale_derived_value_up_to_date(long_followed, investigator,
                                                          data_manager):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
             by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60"),
                    by=investigator, complete=True, visit=month_3)
    services.lock_crf(scan, by=data_manager)
    # A value left stale by older code, under the lock.
    CRFRecord.objects.filter(pk=scan.pk).update(data=scan.data | {"overall_response": None})
    services.unlock_crf(scan, by=data_manager, reason="Re-read")
    assert derived(scan)[1] == "pr"
    last = scan.history.order_by("-history_id").first()
    assert last.history_change_reason == (f"re-derived after tumour_assessment of "
                                          f"{month_3.target_date.isoformat()} was unlocked")


# --------------------------------------------------------------------------- not evaluable


def test_a_baseline_lesion_not_measured_stores_not_evaluable_with_its_reason(
        long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "60", "40"),
             by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "30"),
                    by=investigator, complete=True, visit=month_3)
    total, response, notes = derived(scan)
    assert (total, response) == (None, "ne")
    reason = "a baseline target lesion is not measured at this assessment (RECIST 1.1 4.4.2)"
    assert notes == {"sum_of_diameters": reason, "overall_response": reason}


def test_an_undated_draft_is_not_evaluable_and_says_why(long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
             by=investigator, complete=True, visit=base_visit)
    draft = save_crf(p, "tumour_assessment",
                     tumour(p, month_3.target_date, "60") | {"assessment_date": None},
                     by=investigator, complete=False, visit=month_3)
    assert derived(draft) == ("60.0", "ne", {
        "overall_response": "no assessment date: it cannot be placed after the baseline"})
    # The form shows the reason beside the value.
    form = build_crf_form(draft.definition, initial=CRFRecord.objects.get(pk=draft.pk).data)
    (cell,) = [c for c in form.layout if c.definition["code"] == "overall_response"]
    assert cell.display == ("Not evaluable (no assessment date: it cannot be placed after the "
                            "baseline)")


def test_the_api_accepts_a_record_sent_back_with_its_reasons(long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    draft = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "60", "40")
                     | {"assessment_date": None}, by=investigator, complete=False, visit=month_3)
    stored = CRFRecord.objects.get(pk=draft.pk).data
    assert NOTES_KEY in stored
    assert to_post(draft.definition, stored)[1] == {}


def test_an_unreadable_diameter_is_not_evaluable_instead_of_failing_the_save(
        long_followed, investigator):
    p = long_followed
    base_visit, month_3 = assessment_visits(p)[:2]
    save_crf(p, "tumour_assessment", tumour(p, base_visit.target_date, "100"),
             by=investigator, complete=True, visit=base_visit)
    scan = save_crf(p, "tumour_assessment", tumour(p, month_3.target_date, "sixty"),
                    by=investigator, complete=False, visit=month_3)
    total, response, notes = derived(scan)
    assert (total, response) == (None, "ne")
    assert notes["overall_response"] == "unreadable data: target lesion 1: 'sixty' is not a number"


# --------------------------------------------------------------------------- any order


@st.composite
def histories(draw):
    """Final diameters of a baseline and 1-3 follow-ups (two target lesions each), the order in
    which the records are first entered, and for some records an intermediate version (other
    diameters, or another date) corrected later."""
    n = draw(st.integers(min_value=2, max_value=4))
    diameter = st.integers(min_value=0, max_value=120).map(str)
    final = [(draw(diameter), draw(diameter), draw(st.booleans()) if i else False)
             for i in range(n)]
    ops = [i for i in range(n)] + [i for i in range(n) if draw(st.booleans())]
    ops = draw(st.permutations(ops))
    drafts = {i: (draw(diameter), draw(diameter), draw(st.integers(min_value=-200, max_value=0)))
              for i in set(ops) if ops.count(i) == 2}
    return final, ops, drafts


def registered_with_assessment_visits(trial, *, by, count: int):
    """A participant registered (not randomised, so the allocation list is not used up) with
    ``count`` visits expecting a tumour assessment, three months apart, the first 400 days ago."""
    participant = factories.participant(trial, by=by)
    start = timezone.localdate() - dt.timedelta(days=400)
    for i in range(count):
        day = start + dt.timedelta(days=91 * i)
        Visit.objects.create(participant=participant, code="follow_up" if i else "baseline",
                             label="Tumour assessment", occurrence=max(i, 1),
                             anchor_code="randomisation", anchor_date=start, target_date=day,
                             window_opens=day, window_closes=day, crfs=["tumour_assessment"])
    return participant


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(history=histories())
def test_derived_values_do_not_depend_on_the_order_of_entry_nor_on_corrections(
        rectal, investigator, history):
    final, ops, drafts = history

    def enter(participant, order, *, drafts_first=None):
        visits = assessment_visits(participant)
        records: dict[int, CRFRecord] = {}
        for i in order:
            visit = visits[i]
            first_time = i not in records
            a, b, new = final[i]
            day = visit.target_date
            if first_time and drafts_first and i in drafts:
                a, b, shift = drafts_first[i]
                day = day + dt.timedelta(days=shift)
            # No schedule effect to follow: the CRF service itself, not the page's save.
            records[i] = services.save_crf(
                participant, "tumour_assessment", tumour(participant, day, a, b, new=new),
                by=investigator, complete=True, visit=visit, record=records.get(i),
                reason="" if first_time else "Corrected")
        return [derived(records[i]) for i in range(len(final))]

    shuffled = registered_with_assessment_visits(rectal, by=investigator, count=len(final))
    in_order = registered_with_assessment_visits(rectal, by=investigator, count=len(final))
    assert enter(shuffled, ops, drafts_first=drafts) == enter(in_order, range(len(final)))
