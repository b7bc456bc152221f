"""The CRF page and the participant's forms, as each role meets them: what they show, which
buttons each permission brings, what the pages refuse, how many queries they cost, and that a
blinded trial's arm shows nowhere."""
from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from crfs import services
from crfs.models import CRFRecord
from demo.data import crf_answers
from patients.models import Visit
from randomisation.services import assign_kit, replace_kit
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD
from tests.crf_world import crf_url, demographics, record_url
from tests.randomisation.test_blinding import assert_no_arm
from trials.models import crf_of

# Accounts and security, on every request of a two-factor user: their OTP device. (The
# session's expiry is pushed back by the first request of each minute, warmed up below.)
SECURITY_QUERIES = 1
# Session, the user with their profile (one query), trial, the user's memberships in it,
# participant (with its site), visit, then the selector's five: the record (with its newest
# version), its signatures, its source verification marks (SDV), its queries, their messages
# (this last one only when there is a query to read messages of).
CRF_PAGE_QUERIES = 11 + SECURITY_QUERIES
# Session, the user with their profile (one query), trial, the user's memberships in it,
# participant (with its site), allocation, timeline (visits, deviations, allocation,
# withdrawals), eligibility and its signatures (the investigator's confirmation), anchors, forms
# (records, open queries), unblinding, consent history (records, withdrawals, protocol version
# labels), closed screening episodes.
PARTICIPANT_PAGE_QUERIES = 20 + SECURITY_QUERIES
# In a trial that dispenses kits (issue 19): the participant's kits on their page, the visit's
# kit on the dispensing form of a dispensing visit; nothing in a trial without product supply.
KIT_QUERIES = 1
# A form whose edit checks read the randomisation date (``anchor.randomisation``): the
# allocation, for the page's evaluator (crfs.selectors.check_references).
CHECK_QUERIES = 1
# In a blinded trial, whether this user may see this arm: the emergency and the safety
# unblindings by them (``policy.can_see_arm``).
BLINDED_ARM_QUERIES = 2


def buttons(html: str) -> set[str]:
    found = set()
    for label in ("Sign…", ">Lock<", "Unlock…", "Raise a query…", "History", "PDF",
                  "Save as complete", "Send the answer", "Close the query"):
        if label in html:
            found.add(label.strip("><"))
    return found


def test_each_role_gets_the_buttons_its_permissions_allow(complete, investigator, coordinator,
                                                          data_manager, rectal, make_user,
                                                          client, client_for):
    services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    sponsor = make_user("sponsor", rectal)
    seen = {}
    for name, user in [("investigator", investigator), ("coordinator", coordinator),
                       ("data_manager", data_manager), ("sponsor", sponsor)]:
        client_for(user)
        response = client.get(crf_url(complete))
        assert response.status_code == 200, name
        seen[name] = buttons(response.content.decode())
    always = {"History", "PDF"}
    assert seen["investigator"] == always | {"Sign…", "Save as complete", "Send the answer"}
    assert seen["coordinator"] == always | {"Save as complete", "Send the answer"}
    assert seen["data_manager"] == always | {"Lock", "Raise a query…", "Close the query"}
    assert seen["sponsor"] == always


def test_the_page_shows_the_status_and_is_read_only_for_those_who_do_not_enter_data(
        complete, data_manager, client, client_for):
    client_for(data_manager)
    response = client.get(crf_url(complete))
    html = response.content.decode()
    assert 'data-testid="crf-status">Complete<' in html
    assert 'crf-readonly' in html and "Read-only" in html
    assert all(field.disabled for field in response.context["form"].fields.values())
    post = client.post(crf_url(complete), {"action": "complete", "sex": "female"})
    assert post.status_code == 403
    assert CRFRecord.objects.get(pk=complete.pk).data["sex"] == "male"


def test_a_form_not_entered_yet_can_be_read_by_everyone_and_entered_by_the_site(
        participant, baseline, data_manager, investigator, client, client_for):
    url = reverse("visit_crf_edit", args=[participant.trial.slug, participant.study_id,
                                          baseline.pk, "qlq_c30"])
    client_for(data_manager)
    html = client.get(url).content.decode()
    assert "Not entered yet" in html and "History" not in buttons(html)
    client_for(investigator)
    assert "Save as complete" in client.get(url).content.decode()


def test_the_page_warns_that_saving_a_signed_crf_voids_its_signature(complete, investigator,
                                                                    client, client_for):
    services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
    client_for(investigator)
    html = client.get(crf_url(complete)).content.decode()
    assert "saving a change voids the signature" in html
    assert 'data-testid="signature-valid"' in html and "Sign…" not in html


def test_the_participant_page_lists_forms_with_visit_status_and_open_queries(
        complete, investigator, data_manager, client, client_for):
    services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    p = complete.participant
    client_for(investigator)
    html = client.get(reverse("participant_detail", args=[p.trial.slug, p.study_id])) \
        .content.decode()
    table = html[html.index('data-testid="forms"'):]
    table = table[:table.index("</table>")]
    assert "Baseline (randomisation)" in table and "Demographics and baseline disease" in table
    assert "Screening and eligibility" in table and "outside visits" in table
    assert '<span class="badge err">1</span>' in table
    events = html[html.index('data-testid="event-forms"'):]
    events = events[:events.index("</p>")]
    for code in ("emergency_surgery", "progression", "death", "end_of_study"):
        assert reverse("crf_edit", args=[p.trial.slug, p.study_id, code]) in events, code
    assert "eligibility" not in events and "demographics" not in events


def test_reminet_lists_end_of_treatment_among_its_event_forms(reminet, statistician, make_user,
                                                              client, client_for):
    factories.sealed_list(reminet, by=statistician)
    coordinator = make_user("coordinator", reminet, reminet.sites.order_by("code").first())
    p = factories.randomised(reminet, by=coordinator)
    client_for(coordinator)
    html = client.get(reverse("participant_detail", args=[reminet.slug, p.study_id])) \
        .content.decode()
    assert reverse("crf_edit", args=[reminet.slug, p.study_id, "end_of_treatment"]) in html


def test_the_timeline_counts_open_queries_per_form_and_links_every_role(
        complete, data_manager, client, client_for):
    services.raise_query(complete, by=data_manager, field_path="sex", text="Sure?")
    p = complete.participant
    client_for(data_manager)
    html = client.get(reverse("visit_timeline", args=[p.trial.slug, p.study_id])).content.decode()
    assert crf_url(complete) in html and "1 open query" in html


def test_the_crf_page_runs_a_fixed_number_of_queries(complete, investigator, data_manager,
                                                     client, django_assert_num_queries, client_for):
    client_for(investigator)
    url = crf_url(complete)
    client.get(reverse("home"))  # the session's first request of the minute saves it
    with django_assert_num_queries(CRF_PAGE_QUERIES - 1):
        client.get(url)
    p = complete.participant
    for n in range(4):
        query = services.raise_query(complete, by=data_manager, field_path="weight_kg",
                                     text=f"question {n}")
        services.answer_query(query, by=investigator, text=f"answer {n}")
        services.sign_crf(complete, by=investigator, password=PASSWORD, meaning="accurate")
        save_crf(p, "demographics", demographics(p, weight_kg=f"7{n}.0"), by=investigator,
                 complete=True, record=complete, reason=f"change {n}")
        if n == 0:
            with django_assert_num_queries(CRF_PAGE_QUERIES):
                client.get(url)
    with django_assert_num_queries(CRF_PAGE_QUERIES):
        html = client.get(url).content.decode()
    assert html.count('data-testid="signature-voided"') == 4
    assert html.count('data-testid="query"') == 4


def test_the_participant_page_runs_a_fixed_number_of_queries(complete, investigator,
                                                             data_manager, client,
                                                             django_assert_num_queries, client_for):
    p = complete.participant
    client_for(investigator)
    url = reverse("participant_detail", args=[p.trial.slug, p.study_id])
    client.get(reverse("home"))  # the session's first request of the minute saves it
    with django_assert_num_queries(PARTICIPANT_PAGE_QUERIES):
        client.get(url)
    day = timezone.localdate()
    for visit in Visit.objects.filter(participant=p).order_by("target_date")[:6]:
        for code in visit.crfs:
            if CRFRecord.objects.filter(participant=p, crf_code=code, visit=visit).exists():
                continue
            crf = crf_of(p.protocol_version_id, code)
            record = save_crf(p, code, crf_answers(crf, on=day), by=investigator,
                              complete=False, visit=visit)
            services.raise_query(record, by=data_manager, field_path=crf["fields"][0]["code"],
                                 text="Please check")
    assert CRFRecord.objects.filter(participant=p).count() >= 6
    with django_assert_num_queries(PARTICIPANT_PAGE_QUERIES):
        html = client.get(url).content.decode()
    assert html.count("Please check") >= 5


@pytest.mark.parametrize("role", ["investigator", "coordinator", "data_manager", "sponsor"])
def test_no_crf_page_reveals_the_arm_in_a_blinded_trial(reminet, statistician, make_user,
                                                        client, role, client_for):
    factories.sealed_list(reminet, by=statistician)
    site = reminet.sites.order_by("code").first()
    coordinator = make_user("coordinator", reminet, site)
    investigator = make_user("investigator", reminet, site)
    data_manager = make_user("data_manager", reminet)
    p = factories.randomised(reminet, by=coordinator, days_ago=40)
    baseline = Visit.objects.get(participant=p, code="baseline")
    record = save_crf(p, "demographics", crf_answers(crf_of(p.protocol_version_id,
                                                            "demographics"),
                                                     on=timezone.localdate()),
                      by=investigator, complete=True, visit=baseline)
    services.sign_crf(record, by=investigator, password=PASSWORD, meaning="accurate")
    services.raise_query(record, by=data_manager, field_path="sex", text="Sure?")
    user = {"investigator": investigator, "coordinator": coordinator,
            "data_manager": data_manager}.get(role) or make_user(role, reminet)
    client_for(user)
    urls = [crf_url(record), record_url("crf_history", record), record_url("crf_pdf", record),
            reverse("participant_detail", args=[reminet.slug, p.study_id]),
            reverse("visit_worklist", args=[reminet.slug])]
    if role == "investigator":
        urls += [record_url("crf_sign", record),
                 reverse("confirm_eligibility", args=[reminet.slug, p.study_id])]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert_no_arm(reminet, response.content.decode("latin-1"), f"{url} for {role}")


def test_bad_requests_get_an_answer_not_a_server_error(complete, investigator, data_manager,
                                                       client, client_for):
    client_for(data_manager)
    p = complete.participant
    answers = {"field_path": ["a", "b"], "text": "x" * 20000}
    assert client.post(record_url("query_raise", complete), answers).status_code == 400
    assert client.post(record_url("crf_unlock", complete), {}).status_code == 400
    client_for(investigator)
    for bad in ({"meaning": "accurate", "password": PASSWORD, "version": "abc"},
                {"meaning": "accurate", "password": PASSWORD, "version": "99999999"},
                {}):
        assert client.post(record_url("crf_sign", complete), bad).status_code == 400, bad
    response = client.post(crf_url(complete), {"action": "complete", "answers_query": "42",
                                               "reason": "x"})
    assert response.status_code == 400 and "That query is not open" in response.content.decode()
    assert client.get(reverse("crf_edit", args=[p.trial.slug, p.study_id, "no_such_crf"])) \
        .status_code == 404
    assert client.get(reverse("visit_crf_edit", args=[p.trial.slug, p.study_id,
                                                      complete.visit_id, "surgery"])) \
        .status_code == 404
    assert client.get(record_url("crf_lock", complete)).status_code == 405


def test_participant_page_shows_values_derived_from_the_forms(rectal, make_user, client_for):
    """Worst CTCAE grade across every adverse-event form and the last QLQ-C30 scale scores,
    computed from the answers (an all-"1" questionnaire: physical functioning 100, fatigue 0)."""
    from crfs.selectors import endpoints_of
    from crfs.models import CRFRecord

    qlq = {f"q{i}": 1 for i in range(1, 31)}
    records = [
        CRFRecord(crf_code="adverse_events", data={"events": [{"term": "Nausea", "grade": 2}]}),
        CRFRecord(crf_code="adverse_events", data={"events": [{"term": "Neutropenia", "grade": 3},
                                                               {"term": "Fatigue", "grade": 1}]}),
        CRFRecord(crf_code="qlq_c30", data=qlq),
        CRFRecord(crf_code="tumour_assessment", data={"overall_response": "sd"}),
        CRFRecord(crf_code="tumour_assessment", data={"overall_response": "pr"}),
    ]
    endpoints = endpoints_of(records, rectal.definition)
    assert endpoints.worst_ctcae_grade == 3
    assert endpoints.last_response == "PR"
    assert endpoints.qlq_c30["PF2"] == 100.0 and endpoints.qlq_c30["FA"] == 0.0


def test_the_forms_behind_the_derived_values_are_read_from_the_protocol(rectal):
    """Which form holds adverse events, the RECIST response and the QLQ-C30 is what the
    protocol says (its safety section, its derived field, its scoring), not a code name."""
    import copy

    from crfs.models import CRFRecord
    from crfs.selectors import endpoints_of

    definition = copy.deepcopy(rectal.definition)
    definition["safety"]["adverse_events"]["crf"] = "toxicity"
    for crf in definition["crfs"]:
        if crf["code"] == "tumour_assessment":
            crf["code"] = "ct_scan"
        crf.pop("scoring", None)
    records = [CRFRecord(crf_code="toxicity", data={"events": [{"term": "Rash", "grade": 4}]}),
               CRFRecord(crf_code="adverse_events", data={"events": [{"term": "x", "grade": 5}]}),
               CRFRecord(crf_code="ct_scan", data={"overall_response": "cr"}),
               CRFRecord(crf_code="qlq_c30", data={f"q{i}": 1 for i in range(1, 31)})]
    endpoints = endpoints_of(records, definition)
    assert endpoints.worst_ctcae_grade == 4
    assert endpoints.last_response == "CR"
    assert endpoints.qlq_c30 == {}  # no form of this protocol is scored as the QLQ-C30


def test_a_bad_stored_grade_does_not_break_the_page(rectal):
    from crfs.models import CRFRecord
    from crfs.selectors import endpoints_of

    endpoints = endpoints_of([CRFRecord(crf_code="adverse_events",
                                        data={"events": [{"term": "x", "grade": 9}]})],
                             rectal.definition)
    assert endpoints.worst_ctcae_grade is None


def test_a_dispensing_visit_costs_one_query_more_whatever_the_number_of_kits(
        reminet, statistician, make_user, client, django_assert_num_queries, client_for):
    factories.sealed_list(reminet, by=statistician)
    site = reminet.sites.order_by("code").first()
    coordinator = make_user("coordinator", reminet, site)
    investigator = make_user("investigator", reminet, site)
    p = factories.randomised(reminet, by=coordinator)
    first = Visit.objects.get(participant=p, code="first_injection")
    save_crf(p, "injection", {"injection_date": timezone.localdate().isoformat(),
                              "dose_given": True, "kit_code": p.allocation.kit_code},
             by=coordinator, complete=True, visit=first)
    client_for(investigator)
    client.get(reverse("home"))  # the session's first request of the minute saves it
    crf = reverse("visit_crf_edit", args=[reminet.slug, p.study_id, first.pk, "injection"])
    detail = reverse("participant_detail", args=[reminet.slug, p.study_id])
    for _ in range(2):
        # No data query on the form: no messages to read (CRF_PAGE_QUERIES - 1).
        with django_assert_num_queries(CRF_PAGE_QUERIES - 1 + KIT_QUERIES + CHECK_QUERIES):
            client.get(crf)
        with django_assert_num_queries(PARTICIPANT_PAGE_QUERIES + BLINDED_ARM_QUERIES
                                       + KIT_QUERIES):
            html = client.get(detail).content.decode()
        assert p.allocation.kit_code in html
        # More kits: the next injection's, assigned then replaced twice.
        visit = Visit.objects.filter(participant=p, code="injection").order_by(
            "target_date").first()
        assignment = assign_kit(visit, by=coordinator)
        for n in range(2):
            assignment = replace_kit(assignment, kind="damaged", reason=f"broken {n}",
                                     by=coordinator)
