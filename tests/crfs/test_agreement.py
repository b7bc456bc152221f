"""One truth for each event (issue 16, item 2): the records that show progression or death agree,
or an automatic query asks the site to put them right, and closes itself when they do.

The rules, from the protocol files' ``events[].shown_by``: progression is stated by its form and
shown by a tumour assessment whose derived RECIST 1.1 response is PD (§4.3.1: progression is
dated by the assessment that first shows it); death is stated by its form and shown by an end of
study for the reason "death" (expected beside it) and by an adverse event of grade 5 (CTCAE:
death related to the event; not expected, since not every death is an adverse event).
"""
from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from crfs import services
from crfs.models import CRFRecord, CRFStatus, DataQuery, MessageKind, QueryStatus
from demo.data import crf_answers
from outcomes.endpoints import derive_endpoints
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.crfs.test_rederivation import assessment_visits, tumour
from trials.models import crf_of


@pytest.fixture
def p(rectal, coordinator):
    """Randomised 400 days ago: a baseline and four 3-monthly visits in the past."""
    return factories.randomised(rectal, by=coordinator, days_ago=400)


def day0(participant) -> dt.date:
    return timezone.localdate(participant.allocation.randomised_at)


def form(participant, crf_code, by, *, on: dt.date, record=None, why="", **answers):
    """Complete ``crf_code`` dated ``on`` (a correction of ``record`` for ``why``)."""
    crf = crf_of(participant.protocol_version_id, crf_code)
    return save_crf(participant, crf_code, crf_answers(crf, on=on, **answers), by=by,
                    complete=True, record=record, reason=why)


def agreement_queries(participant, status=None):
    found = DataQuery.objects.filter(record__participant=participant, raised_by=None,
                                     check_code__startswith="agree.").order_by("pk")
    return list(found if status is None else found.filter(status=status))


def scans_with_progression(participant, by):
    """Baseline 100 mm, 3 months 80 mm (SD), 6 months 80 mm and a new lesion (PD)."""
    base, month_3, month_6 = assessment_visits(participant)[:3]
    for visit, diameter, new in ((base, "100", False), (month_3, "80", False),
                                 (month_6, "80", True)):
        record = save_crf(participant, "tumour_assessment",
                          tumour(participant, visit.target_date, diameter, new=new), by=by,
                          complete=True, visit=visit)
    record.refresh_from_db()
    assert record.data["overall_response"] == "pd"
    return record


def test_pd_on_a_scan_is_progression_for_pfs_and_asks_for_the_form(rectal, p, investigator):
    scan = scans_with_progression(p, investigator)
    scan_date = dt.date.fromisoformat(scan.data["assessment_date"])

    pfs = next(v for v in derive_endpoints(rectal)["pfs"] if v.participant_id == p.pk)
    assert pfs.event and pfs.date == scan_date
    assert pfs.reason == "PD on a tumour assessment (RECIST 1.1)"

    [query] = agreement_queries(p)
    assert (query.record_id, query.field_path, query.status) == (
        scan.pk, "assessment_date", QueryStatus.OPEN)
    assert query.check_code == "agree.progression.tumour_assessment"
    assert query.messages.get().text == (
        f"Automatic query: PD on a tumour assessment (RECIST 1.1) on {scan_date}, but no "
        f"progression form is completed (Disease progression). Complete the progression form, "
        f"or correct this record.")

    # The progression form, dated as the scan: the records agree and the query closes itself.
    form(p, "progression", investigator, on=scan_date, type="radiological", site=["metastatic"])
    query.refresh_from_db()
    assert query.status == QueryStatus.CLOSED and query.closed_by is None
    assert query.messages.last().kind == MessageKind.CLOSED
    assert agreement_queries(p, QueryStatus.OPEN) == []


def test_a_progression_form_dated_after_the_scan_is_queried_as_late(rectal, p, investigator):
    scan = scans_with_progression(p, investigator)
    scan_date = dt.date.fromisoformat(scan.data["assessment_date"])
    late = scan_date + dt.timedelta(days=20)
    progression = form(p, "progression", investigator, on=late, type="radiological",
                       site=["metastatic"])
    [query] = agreement_queries(p, QueryStatus.OPEN)
    assert (query.record_id, query.field_path) == (progression.pk, "progression_date")
    assert f"dated {late} here, but PD on a tumour assessment (RECIST 1.1) gives {scan_date}" \
        in query.messages.get().text
    # The endpoint takes the earliest of the two.
    pfs = next(v for v in derive_endpoints(rectal)["pfs"] if v.participant_id == p.pk)
    assert pfs.date == scan_date

    # Corrected to the scan's date: closed by itself; the scan's own query closed before.
    form(p, "progression", investigator, on=scan_date, record=progression,
         why="Dated by the scan", type="radiological", site=["metastatic"])
    assert agreement_queries(p, QueryStatus.OPEN) == []


def test_a_radiological_progression_without_a_pd_scan_is_queried_a_clinical_one_is_not(
        p, investigator):
    on = day0(p) + dt.timedelta(days=100)
    progression = form(p, "progression", investigator, on=on, type="radiological",
                       site=["metastatic"])
    [query] = agreement_queries(p, QueryStatus.OPEN)
    assert (query.record_id, query.field_path) == (progression.pk, "progression_date")
    assert "no record shows it as the protocol expects: PD on a tumour assessment" \
        in query.messages.get().text

    form(p, "progression", investigator, on=on, record=progression, why="Clinical",
         type="clinical", site=["metastatic"])
    assert agreement_queries(p, QueryStatus.OPEN) == []
    assert agreement_queries(p)[0].messages.last().text == \
        "Closed automatically: the records agree now."


def test_a_death_asks_for_its_end_of_study_form_and_their_dates_must_agree(
        rectal, p, investigator):
    died = day0(p) + dt.timedelta(days=200)
    death = form(p, "death", investigator, on=died)
    [query] = agreement_queries(p, QueryStatus.OPEN)
    assert (query.record_id, query.field_path, query.check_code) == (
        death.pk, "death_date", "agree.death.end_of_study")

    end = form(p, "end_of_study", investigator, on=died + dt.timedelta(days=3), reason="death")
    [query] = agreement_queries(p, QueryStatus.OPEN)
    assert (query.record_id, query.field_path) == (end.pk, "end_date")
    assert f"dated {died + dt.timedelta(days=3)} here, but the death form gives {died}" \
        in query.messages.get().text

    form(p, "end_of_study", investigator, on=died, record=end, why="Dated the day of death",
         reason="death")
    assert agreement_queries(p, QueryStatus.OPEN) == []
    os_ = next(v for v in derive_endpoints(rectal)["os"] if v.participant_id == p.pk)
    assert os_.event and os_.date == died


def test_an_adverse_event_of_grade_5_is_a_death_for_os_and_asks_for_the_death_form(
        rectal, p, investigator):
    died = day0(p) + dt.timedelta(days=150)
    rows = [{"term": "Nausea", "grade": 2, "serious": False, "attribution": "unrelated",
             "start_date": (died - dt.timedelta(days=30)).isoformat(),
             "end_date": (died - dt.timedelta(days=20)).isoformat(), "ongoing": False},
            {"term": "Sepsis", "grade": 5, "serious": True, "attribution": "unrelated",
             "start_date": (died - dt.timedelta(days=5)).isoformat(),
             "end_date": died.isoformat(), "ongoing": False}]
    crf = crf_of(p.protocol_version_id, "adverse_events")
    attribution = crf["fields"][1]["fields"]
    rows = [{**r, "attribution": next(f for f in attribution if f["code"] == "attribution")
             ["choices"][0]["code"]} for r in rows]
    aes = save_crf(p, "adverse_events", crf_answers(crf, on=died, any_event=True, events=rows),
                   by=investigator, complete=True)

    os_ = next(v for v in derive_endpoints(rectal)["os"] if v.participant_id == p.pk)
    assert os_.event and os_.date == died
    assert os_.reason == "Adverse event of grade 5 (death related to the event)"
    [query] = agreement_queries(p, QueryStatus.OPEN)
    assert (query.record_id, query.field_path, query.check_code) == (
        aes.pk, "events[1].end_date", "agree.death.adverse_events")

    form(p, "death", investigator, on=died)
    # The death form agrees with the adverse event; it now waits for its end of study.
    assert [q.check_code for q in agreement_queries(p, QueryStatus.OPEN)] == [
        "agree.death.end_of_study"]
    form(p, "end_of_study", investigator, on=died, reason="death")
    assert agreement_queries(p, QueryStatus.OPEN) == []


def test_a_query_the_data_manager_closed_is_not_raised_again_but_one_closed_by_itself_reopens(
        p, investigator, data_manager):
    on = day0(p) + dt.timedelta(days=100)
    progression = form(p, "progression", investigator, on=on, type="radiological",
                       site=["metastatic"])
    [query] = agreement_queries(p)
    # The investigator answers that the progression was seen on a scan read elsewhere; the data
    # manager accepts it.
    services.answer_query(query, by=investigator, text="Seen on an outside PET scan.")
    services.close_query(query, by=data_manager, text="Accepted.")
    form(p, "progression", investigator, on=on, record=progression, why="Both sites",
         type="radiological", site=["metastatic", "primary_tumour"])
    assert agreement_queries(p, QueryStatus.OPEN) == [] and len(agreement_queries(p)) == 1

    # Death without its end of study: raised; the end of study agrees: closed by itself; the
    # end of study corrected to another reason: the same query re-opens.
    died = on + dt.timedelta(days=60)
    form(p, "death", investigator, on=died)
    end = form(p, "end_of_study", investigator, on=died, reason="death")
    [death_query] = [q for q in agreement_queries(p) if q.check_code == "agree.death.end_of_study"]
    assert death_query.status == QueryStatus.CLOSED
    form(p, "end_of_study", investigator, on=died, record=end, why="Wrong reason ticked",
         reason="other", other_reason="Moved abroad")
    death_query.refresh_from_db()
    assert death_query.status == QueryStatus.OPEN
    assert death_query.messages.last().kind == MessageKind.REOPENED


def test_drafts_are_not_data_yet(p, investigator):
    crf = crf_of(p.protocol_version_id, "death")
    save_crf(p, "death", crf_answers(crf, on=day0(p) + dt.timedelta(days=50)),
             by=investigator, complete=False)
    assert agreement_queries(p) == []


def test_the_command_checks_data_entered_before_the_protocol_named_the_records(
        p, investigator, coordinator):
    # A death form stored as it was before ``shown_by`` existed: no query was raised then.
    crf = crf_of(p.protocol_version_id, "death")
    CRFRecord.objects.create(participant=p, crf_code="death",
                             protocol_version_id=p.protocol_version_id,
                             data=crf_answers(crf, on=day0(p) + dt.timedelta(days=90)),
                             status=CRFStatus.COMPLETE, ever_completed=True,
                             created_by=investigator, updated_by=investigator)
    assert agreement_queries(p) == []
    out = io.StringIO()
    call_command("reconcile_events", "--trial", p.trial.slug, stdout=out)
    assert "1 queries raised, 0 closed, 0 re-opened" in out.getvalue()
    assert [q.check_code for q in agreement_queries(p, QueryStatus.OPEN)] == [
        "agree.death.end_of_study"]
    out = io.StringIO()
    call_command("reconcile_events", stdout=out)
    assert "0 queries raised, 0 closed, 0 re-opened" in out.getvalue()
    with pytest.raises(CommandError, match="No trial 'nope'"):
        call_command("reconcile_events", "--trial", "nope")


def test_records_are_checked_against_the_trials_current_protocol_as_the_endpoints_are(
        rectal, p, investigator, tmp_path):
    # An amendment (1.1) that no longer expects an end of study beside a death: the participant,
    # still on 1.0, is checked as the endpoints read the trial, by 1.1.
    import yaml

    from trials.protocol import read_protocol_file
    from trials.services import load_protocol, shipped_protocol_files

    data = read_protocol_file(next(f for f in shipped_protocol_files()
                                   if f.name == "rectal-resection.yaml"))
    death = next(e for e in data["events"] if e["code"] == "death")
    death["shown_by"] = [s for s in death["shown_by"] if s["crf"] != "end_of_study"]
    data["version"] = "1.1"
    amended = tmp_path / "rectal-resection.yaml"
    amended.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    assert load_protocol(amended).created
    p.refresh_from_db()
    p.trial.refresh_from_db()
    assert p.protocol_version_id != p.trial.current_version_id

    form(p, "death", investigator, on=day0(p) + dt.timedelta(days=80))
    assert agreement_queries(p) == []
