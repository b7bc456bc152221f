"""Re-baselining declared in the protocol (issue 16, item 4): in arm A of the rectal trial the
primary tumour is resected after the pre-operative CT, so the post-operative CT is the baseline
of metastatic response (protocol file, ``crfs.tumour_assessment.rebaseline``).

The worked case, RECIST 1.1 (Eisenhauer 2009) §4.3.1 (PR: -30 % from the baseline sum; PD: +20 %
and +5 mm from the nadir) and §4.4 (time point response): pre-operative CT, primary 40 mm + liver
30 mm (sum 70); surgery removes the primary; post-operative CT, liver 30 mm with the primary's
row marked surgically removed: sum 30, the new baseline, so no response of its own; at 3 months
liver 20 mm is PR (-33 % from 30), 25 mm SD (-17 %; against 70 it would be a PR for the wrong
reason), 36 mm PD (+20 % and +6 mm from the nadir 30).
"""
from __future__ import annotations

import datetime as dt

import pytest

from api.crf_input import to_post
from crfs import services
from crfs.forms import build_crf_form, form_to_data
from crfs.models import CRFRecord
from demo.data import crf_answers
from patients.models import Visit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from trials.models import crf_of

from .test_rederivation import derived


def ct(p, day: dt.date, *, primary: str | None, liver: str) -> dict:
    """Lesion 1 the primary rectal tumour (None: surgically removed), lesion 2 the liver."""
    crf = crf_of(p.protocol_version_id, "tumour_assessment")
    first = ({"lesion_number": 1, "organ": "Rectum", "diameter_mm": primary, "lymph_node": False}
             if primary is not None else
             {"lesion_number": 1, "organ": "Rectum", "diameter_mm": "0", "lymph_node": False,
              "surgically_removed": True})
    lesions = [first, {"lesion_number": 2, "organ": "Liver", "diameter_mm": liver,
                       "lymph_node": False}]
    return crf_answers(crf, on=day, target_lesions=lesions, new_lesions=False,
                       non_target_status="present")


def visit(p, code: str, n: int = 0) -> Visit:
    return list(Visit.objects.filter(participant=p, code=code).order_by("target_date"))[n]


def operate(p, day: dt.date, by, **kwargs):
    crf = crf_of(p.protocol_version_id, "surgery")
    at = Visit.objects.filter(participant=p, code="surgery").first()
    return save_crf(p, "surgery", crf_answers(crf, on=day), by=by, complete=True, visit=at,
                    **kwargs)


def followed(rectal, statistician, coordinator, investigator, arm: str):
    """A participant of ``arm`` randomised 200 days ago (day R): pre-operative CT on R, surgery on
    R+10 (recorded in arm B too, as an emergency might be), post-operative CT on R+20."""
    factories.scripted_list(rectal, by=statistician, arms=[arm])
    p = factories.randomised(rectal, by=coordinator, days_ago=200)
    assert p.allocation.arm.code == arm
    r = visit(p, "baseline").target_date
    pre = save_crf(p, "tumour_assessment", ct(p, r, primary="40", liver="30"), by=investigator,
                   complete=True, visit=visit(p, "baseline"))
    operate(p, r + dt.timedelta(days=10), investigator)
    post_visit = (visit(p, "postop_imaging") if arm == "A" else visit(p, "follow_up", 0))
    post = save_crf(p, "tumour_assessment", ct(p, r + dt.timedelta(days=20), primary=None,
                                               liver="30"),
                    by=investigator, complete=True, visit=post_visit)
    return p, r, pre, post


@pytest.mark.parametrize("liver, arm_a", [
    ("20", "pr"),   # 20 vs 30: -33 % (against 70 it would be -71 %)
    ("25", "sd"),   # -17 % from 30, not above the nadir 30 (against 70: -64 %, a PR)
    ("36", "pd"),   # nadir 30: +20 % and +6 mm
])
def test_arm_a_measures_metastatic_response_from_the_post_operative_ct(
        rectal, statistician, coordinator, investigator, liver, arm_a):
    p, r, pre, post = followed(rectal, statistician, coordinator, investigator, "A")
    assert derived(pre)[:2] == ("70.0", None)
    # The post-operative CT is the new baseline: sum 30 (the removed primary is not missing and
    # adds nothing), and no response of its own.
    assert derived(post) == ("30.0", None, {
        "overall_response": "baseline assessment: the reference of later responses"})
    month_3 = save_crf(p, "tumour_assessment",
                       ct(p, r + dt.timedelta(days=91), primary=None, liver=liver),
                       by=investigator, complete=True, visit=visit(p, "follow_up", 1))
    assert derived(month_3)[:2] == (f"{liver}.0", arm_a)


# Against the baseline 70: 20 and 25 are PRs; 36 is PD, the nadir being the 30 mm scan.
@pytest.mark.parametrize("liver, arm_b", [("20", "pr"), ("25", "pr"), ("36", "pd")])
def test_arm_b_keeps_the_first_baseline_with_the_same_numbers(
        rectal, statistician, coordinator, investigator, liver, arm_b):
    p, r, _, post = followed(rectal, statistician, coordinator, investigator, "B")
    # Against 70: 30 is a PR; the removed primary is accounted for, not missing (not NE).
    assert derived(post)[:2] == ("30.0", "pr")
    later = save_crf(p, "tumour_assessment",
                     ct(p, r + dt.timedelta(days=182), primary=None, liver=liver),
                     by=investigator, complete=True, visit=visit(p, "follow_up", 1))
    assert derived(later)[:2] == (f"{liver}.0", arm_b)


def test_a_participant_not_randomised_has_no_new_baseline(rectal, coordinator):
    p = factories.participant(rectal, by=coordinator)
    definition = crf_of(p.protocol_version_id, "tumour_assessment")
    assert definition["rebaseline"] == {"arms": ["A"], "after_anchor": "surgery",
                                        "source": definition["rebaseline"]["source"]}
    assert services.rebaseline_date(definition, p) is None


def test_arm_a_before_surgery_is_dated_has_no_new_baseline(
        rectal, statistician, coordinator):
    factories.scripted_list(rectal, by=statistician, arms=["A"])
    p = factories.randomised(rectal, by=coordinator, days_ago=30)
    definition = crf_of(p.protocol_version_id, "tumour_assessment")
    assert services.rebaseline_date(definition, p) is None


def test_a_corrected_surgery_date_moves_the_baseline_and_says_why(
        rectal, statistician, coordinator, investigator, data_manager):
    p, r, _, post = followed(rectal, statistician, coordinator, investigator, "A")
    month_3 = save_crf(p, "tumour_assessment",
                       ct(p, r + dt.timedelta(days=91), primary=None, liver="20"),
                       by=investigator, complete=True, visit=visit(p, "follow_up", 1))
    assert derived(month_3)[1] == "pr"
    surgery = CRFRecord.objects.get(participant=p, crf_code="surgery")
    # The surgery was on R+25, after the CT of R+20: that CT is pre-operative after all (30 vs 70:
    # PR), and the 3-month CT, the first after surgery, is the new baseline.
    crf = crf_of(p.protocol_version_id, "surgery")
    save_crf(p, "surgery", crf_answers(crf, on=r + dt.timedelta(days=25)), by=data_manager,
             complete=True, record=surgery, visit=surgery.visit, reason="Date from the op note")
    assert derived(post)[:2] == ("30.0", "pr")
    assert derived(month_3)[:2] == ("20.0", None)
    last = CRFRecord.objects.get(pk=month_3.pk).history.order_by("-history_id").first()
    assert last.history_change_reason.startswith("re-derived after surgery of ")
    assert "new baseline" in last.history_change_reason
    assert last.history_user == data_manager


def test_the_crf_form_takes_surgically_removed_and_leaves_it_optional(
        rectal, statistician, coordinator):
    factories.scripted_list(rectal, by=statistician, arms=["A"])
    p = factories.randomised(rectal, by=coordinator, days_ago=60)
    definition = crf_of(p.protocol_version_id, "tumour_assessment")
    data = ct(p, dt.date(2026, 1, 5), primary=None, liver="30")
    post, errors = to_post(definition, data)
    assert errors == {}
    form = build_crf_form(definition, mode="complete", data=post, today=dt.date(2026, 2, 1))
    assert form.is_valid(), form.errors
    rows = form_to_data(form)["target_lesions"]
    assert [r.get("surgically_removed") for r in rows] == [True, None]
