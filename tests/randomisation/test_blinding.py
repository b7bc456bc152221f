"""No page, PDF, e-mail or error a blinded REMINET role can reach reveals the arm."""
from __future__ import annotations

import re

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from crfs import monitoring, verification
from crfs import services as outcomes
from randomisation import services
from scheduling.services import record_withdrawal_and_replan, save_crf_and_replan
from supply.resupply import raise_request
from tests import factories
from tests.api import world
from patients.screening import record_screening_log_entry
from tests.routes import url_patterns

BLINDED_ROLES = ["investigator", "coordinator", "data_manager", "sponsor", "monitor"]
# The data monitoring committee is blinded to individuals but reads the closed reports, which
# compare the arms by name: the outcomes page and PDF, and a report built with arms.
CLOSED_READERS = ["dmc"]
CLOSED_ROUTES = {"trial_outcomes", "trial_outcomes_pdf"}


def forbidden_patterns(trial) -> list[re.Pattern]:
    patterns = []
    for arm in trial.arms.all():
        patterns.append(re.compile(re.escape(arm.label)))
        patterns.append(re.compile(rf"\b{re.escape(arm.code)}\b"))
        if arm.description:
            patterns.append(re.compile(re.escape(arm.description[:40])))
    return patterns


def assert_no_arm(trial, text: str, where: str) -> None:
    for pattern in forbidden_patterns(trial):
        match = pattern.search(text)
        assert match is None, f"{where} reveals the arm: …{text[max(0, match.start() - 60):match.end() + 60]}…"


def every_route(kwargs: dict[str, str]):
    """Every URL of the app (admin aside), with the given values for its parameters."""
    for _route, pattern in url_patterns():
        names = pattern.pattern.regex.groupindex
        if pattern.name and set(names) <= set(kwargs):
            yield pattern.name, {n: kwargs[n] for n in names}


@pytest.fixture
def randomised(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    participant = factories.eligible_participant(trial, by=coordinator)
    services.randomise(participant, by=coordinator)
    return trial, participant


def susar_unblinded(trial, participant, make_user):
    """``participant``'s SAE signed by an investigator, assessed a SUSAR and unblinded by the
    safety officer, who then sees the arm on its page."""
    from safety import services as safety
    from tests.conftest import PASSWORD

    place = world.Place(trial, participant.site, participant, participant, None, None, None)
    investigator = make_user("investigator", trial, participant.site)
    sae = world.signed_sae(place, investigator=investigator, password=PASSWORD)
    officer = make_user("safety_officer", trial)
    safety.assess(sae, by=officer, causality={"study_product": "related"},
                  expectedness={"study_product": "unexpected"})
    sae.refresh_from_db()
    services.safety_unblind(sae, by=officer, reason="SUSAR expedited report", password=PASSWORD)
    from django.test import Client
    officer_client = Client()
    officer_client.force_login(officer)
    factories.verify_session(officer_client, factories.totp_device(officer))
    page = officer_client.get(reverse("sae_detail", args=[trial.slug, sae.pk])).content.decode()
    assert participant.allocation.arm.label in page  # the officer sees it: the walk is real
    return sae


@pytest.mark.parametrize("role", BLINDED_ROLES + CLOSED_READERS)
def test_no_route_reveals_the_arm_to_a_blinded_role(randomised, make_user, client, role, client_for):
    trial, participant = randomised
    user = make_user(role, trial, participant.site if role in ("investigator", "coordinator",
                                                               "monitor") else None)
    client_for(user)
    # Issue 19: the site's supply (the shipment that stocked it, one on its way, an excursion
    # reported there), the kit list, the participant's first kit, and a resupply request
    # (unblinded quantities).
    supply_place = world.with_supply(world.Place(trial, participant.site, participant,
                                                 participant, None, None, None))
    stock = supply_place.supply
    raise_request(participant.site, stock_out=True)
    record = participant.crf_records.get(crf_code="eligibility")
    query = outcomes.raise_query(record, by=make_user("data_manager", trial),
                                 field_path="screening_date", text="Check it")
    # Issue 19: the first kit given, the next injection's kit assigned then replaced (damaged):
    # the participant page lists them, the timeline and the injection form show kit numbers.
    site_coordinator = make_user("coordinator", trial, participant.site)
    first = participant.visits.get(code="first_injection")
    save_crf_and_replan(participant, "injection", {
        "injection_date": timezone.localdate().isoformat(), "dose_given": True,
        "kit_code": participant.allocation.kit_code}, by=site_coordinator, complete=True,
        visit=first)
    next_injection = participant.visits.filter(code="injection").order_by("target_date").first()
    services.replace_kit(services.assign_kit(next_injection, by=site_coordinator),
                         kind="damaged", reason="Cracked vial", by=site_coordinator)
    # A withdrawal (issue 17): the participant page, its consent history and the API show it.
    record_withdrawal_and_replan(participant, by=make_user("coordinator", trial, participant.site),
                                 level="treatment", withdrawn_on=timezone.localdate(),
                                 reason="toxicity")
    # Issue 17: the participant flagged as randomised in error, a screening log entry.
    services.record_randomised_in_error(participant.allocation, reason="Registered twice",
                                        by=make_user("data_manager", trial))
    record_screening_log_entry(trial, site=participant.site, screened_on=participant.screened_on,
                               reason="declined", by=make_user("coordinator", trial))
    # Issue 20: the eligibility form verified against the source, a monitoring visit recorded.
    site_monitor = make_user("monitor", trial, participant.site)
    verification.verify(record, by=site_monitor)
    monitoring.record_visit(participant.site, by=site_monitor, visited_on=timezone.localdate(),
                            findings="Source documents complete.")
    # A report built with arms (the statistician's): listed, polled, its download refused.
    report = world.built_report(trial, by=make_user("statistician", trial))
    # The safety officer's pages as a leak source: this participant's SUSAR, unblinded for
    # pharmacovigilance (the officer now sees the arm), must show the study team nothing.
    sae = susar_unblinded(trial, participant, make_user)
    # Issue 20: the statistician's casebook of this participant shows the arm: listed, polled,
    # its download refused; the blank CRFs.
    casebook = world.built_report(trial, by=make_user("statistician", trial), kind="casebook",
                                  participant=participant)
    assert casebook.with_arms
    kwargs = {"slug": trial.slug, "study_id": participant.study_id, "crf_code": "eligibility",
              "visit_id": participant.visits.first().pk, "record_id": record.pk,
              "query_id": query.pk, "form": "long", "report_id": report.pk,
              "sae_id": sae.pk, "number": 0, "site_code": participant.site.code,
              "shipment_number": supply_place.shipment.number,
              "excursion_id": supply_place.excursion.pk,
              "list_number": stock.kit_list.number, "assignment_id": stock.assignment.pk,
              "version": 1, "variant": "annotated"}
    seen, api_seen, walked, statuses, closed_seen = 0, 0, set(), {}, set()
    casebook_routes = [(name, {**values, "report_id": casebook.pk}) for name, values
                       in every_route(kwargs) if "report_id" in values]
    for name, values in list(every_route(kwargs)) + casebook_routes:
        walked.add(name)
        response = client.get(reverse(name, kwargs=values), follow=True)
        statuses[name] = response.status_code
        assert response.status_code < 500, name
        body = (b"".join(response.streaming_content) if response.streaming  # exports stream
                else response.content)
        if role in CLOSED_READERS and (name in CLOSED_ROUTES or (
                values.get("report_id") == report.pk and "download" in name)):
            assert response.status_code == 200, f"{name} for {role}"
            closed_seen.add(name)   # a closed report: compares the arms by name
            continue
        assert_no_arm(trial, body.decode("latin-1"), f"{name} for {role}")
        if values.get("report_id") == casebook.pk and "download" in name:
            assert response.status_code in (403, 404), f"{name} for {role}"
        seen += 1
        api_seen += name.startswith("api_") and response.status_code == 200
    # The monitoring visit report of the participant's site, as each role meets it.
    today = timezone.localdate().isoformat()
    for name in ("monitoring_report_pdf", "api_monitoring_report"):
        response = client.get(reverse(name, args=[trial.slug]), {
            "site": participant.site.pk if name == "monitoring_report_pdf"
            else participant.site.code, "start": today, "end": today})
        assert response.status_code in (200, 403), (name, response.status_code)
        assert_no_arm(trial, response.content.decode("latin-1"), f"{name} for {role}")
    # The dispensing actions' answers (a refusal or a kit assigned), as each role meets them.
    for name in ("assign_kit", "replace_kit"):
        response = client.post(reverse(name, args=[trial.slug, participant.study_id,
                                                    next_injection.pk]),
                               {"kind": "lost", "reason": "Dropped"}, follow=True)
        assert response.status_code < 500, name
        assert_no_arm(trial, response.content.decode(), f"{name} (POST) for {role}")
    for message in mail.outbox:  # nor any e-mail sent on the way (clock reminders included)
        assert_no_arm(trial, message.subject + message.body, f"e-mail to {message.to}")
    if role in CLOSED_READERS:  # no participant, no supply: the closed reports were read
        assert CLOSED_ROUTES | {"report_download", "api_report_download"} <= closed_seen
        assert statuses["participant_detail"] == 404 and statuses["kit_lists"] in (403, 404)
        return
    # The walk is real: the participant page it read lists the kits and the replacement.
    page = client.get(reverse("participant_detail", args=[trial.slug, participant.study_id]))
    assert "Cracked vial" in page.content.decode()
    assert seen >= 10
    assert api_seen >= 22  # the REST API's answers too (api/urls.py), supply included
    assert {"api_reports", "api_report", "api_report_download", "api_export_csv",
            "api_export_zip", "api_export_odm", "export_crf_csv", "report_download",
            "confirm_eligibility", "visit_worklist",
            "record_consent", "record_withdrawal", "reconsent_worklist", "api_consent",
            "api_withdrawals", "api_reconsent",
            "screening_log", "api_screening_log",
            "sae_list", "sae_detail", "sae_pdf", "sae_listing", "api_sae_reports",
            "api_sae_report", "audit_log", "audit_log_csv", "api_audit_log",
            "query_metrics", "kit_lists", "assign_kit", "replace_kit", "subject_matrix",
            "api_subject_matrix", "supply_overview", "supply_site", "supply_shipment",
            "supply_accountability_csv", "supply_accountability_pdf",
            "api_supply_stock", "api_site_kits", "api_site_accountability", "api_shipments",
            "api_shipment", "api_excursions", "api_resupply_requests", "api_participant_kits",
            "api_kit_lists", "api_kit_list_verify", "blank_crf_list", "blank_crf_pdf",
            "crf_verify", "monitoring_visits", "monitoring_report_pdf",
            "api_record_verifications", "api_monitoring_visits", "api_monitoring_report"
            } <= walked
    # Every blinded role reads the supply of its site: the walk read real pages.
    assert {name: statuses[name] for name in walked if name.startswith("supply_")
            and statuses[name] not in (403, 405)} == dict.fromkeys(
        ["supply_overview", "supply_site", "supply_shipment", "supply_accountability_csv",
         "supply_accountability_pdf"], 200)
    # And the kit code is what they see instead.
    page = client.get(reverse("allocation_detail", args=[trial.slug, participant.study_id]))
    assert participant.allocation.kit_code in page.content.decode()


def test_the_certificate_shows_the_kit_not_the_arm(randomised, make_user, client, client_for):
    trial, participant = randomised
    client_for(make_user("investigator", trial, participant.site))
    response = client.get(reverse("allocation_certificate", args=[trial.slug, participant.study_id]))
    assert response["Content-Type"] == "application/pdf"
    text = response.content.decode("latin-1")
    assert participant.allocation.kit_code in text
    assert_no_arm(trial, text, "certificate")


def test_the_statistician_sees_the_arm(randomised, make_user, client, client_for):
    trial, participant = randomised
    client_for(make_user("statistician", trial))
    page = client.get(reverse("allocation_detail", args=[trial.slug, participant.study_id]))
    assert participant.allocation.arm.label in page.content.decode()
    pdf = client.get(reverse("allocation_certificate", args=[trial.slug, participant.study_id]))
    assert participant.allocation.arm.label in pdf.content.decode("latin-1")


def test_after_emergency_unblinding_only_that_investigator_sees_the_arm(randomised, make_user,
                                                                        client,
                                                                        django_capture_on_commit_callbacks, client_for):
    from tests.conftest import PASSWORD

    trial, participant = randomised
    investigator = make_user("investigator", trial, participant.site)
    colleague = make_user("investigator", trial, participant.site)
    make_user("sponsor", trial)
    client_for(investigator)
    url = reverse("emergency_unblind", args=[trial.slug, participant.study_id])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"reason": "Suspected severe adverse reaction",
                                     "password": PASSWORD})
    assert response.status_code == 302
    page = client.get(reverse("allocation_detail", args=[trial.slug, participant.study_id]))
    assert participant.allocation.arm.label in page.content.decode()
    assert "unblinded in an emergency" in page.content.decode()
    for message in mail.outbox:
        assert_no_arm(trial, message.subject + message.body, "unblinding e-mail")
    client_for(colleague)
    page = client.get(reverse("allocation_detail", args=[trial.slug, participant.study_id]))
    assert_no_arm(trial, page.content.decode(), "a colleague's page")
    assert "unblinded in an emergency" in page.content.decode()


def test_wrong_password_on_unblinding_reveals_nothing(randomised, make_user, client, client_for):
    trial, participant = randomised
    client_for(make_user("investigator", trial, participant.site))
    response = client.post(reverse("emergency_unblind", args=[trial.slug, participant.study_id]),
                           {"reason": "x", "password": "wrong"})
    assert response.status_code == 400
    assert "The password is not correct." in response.content.decode()
    assert_no_arm(trial, response.content.decode(), "unblinding error")


@pytest.mark.parametrize("role", BLINDED_ROLES)
def test_an_emergency_allocation_shows_no_arm_to_a_blinded_role(reminet_ready, statistician,
                                                               make_user, client, client_for,
                                                               role):
    """An allocation from the sealed envelopes, recorded afterwards by the statistician: its
    participant's pages, certificate, API answer and audit entry name no arm, and the
    recording page is 404 to every blinded role."""
    import datetime as dt

    from django.utils import timezone

    from tests.conftest import PASSWORD

    trial, coordinator = reminet_ready
    participant = factories.eligible_participant(trial, by=coordinator)
    services.record_emergency_allocation(
        participant, by=statistician, slot_number=1, made_by="Dr Night",
        # A minute ago: on the day of consent (today) at any hour the suite runs.
        made_at=timezone.now() - dt.timedelta(minutes=1), reason="network down",
        password=PASSWORD)
    site = participant.site if role in ("investigator", "coordinator") else None
    client_for(make_user(role, trial, site))
    args = [trial.slug, participant.study_id]
    for name in ("participant_detail", "allocation_detail", "allocation_certificate",
                 "api_allocation"):
        response = client.get(reverse(name, args=args))
        assert response.status_code == 200, (name, response.status_code)
        assert_no_arm(trial, response.content.decode("latin-1"), f"{name} for {role}")
    page = client.get(reverse("allocation_detail", args=args)).content.decode()
    assert "emergency allocation (recorded afterwards)" in page
    assert client.get(reverse("emergency_allocations", args=[trial.slug])).status_code == 404
    for name in ("audit_log", "api_audit_log"):
        response = client.get(reverse(name, args=[trial.slug]))
        if response.status_code == 200:
            assert_no_arm(trial, response.content.decode(), f"{name} for {role}")
