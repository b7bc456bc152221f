"""Dispensing on the pages: the kit to give at each dispensing visit of the timeline, "Assign
kit" for those who dispense, a replacement for a damaged or lost kit, the injection form checked
against the kit assigned (the refusal next to the field), the participant's kits; never an arm
for a blinded role, nothing of it in a trial without product supply, fixed query counts."""
from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from crfs.models import CRFRecord
from patients.models import Visit
from randomisation.models import Allocation
from scheduling.services import save_crf_and_replan as save_crf
from supply import selectors as supply
from supply.models import Kit, KitAssignment, KitStatus, ResupplyRequest
from tests import factories
from tests.randomisation.test_blinding import assert_no_arm

TODAY = timezone.localdate


def timeline_url(p) -> str:
    return reverse("visit_timeline", args=[p.trial.slug, p.study_id])


def detail_url(p) -> str:
    return reverse("participant_detail", args=[p.trial.slug, p.study_id])


def assign_url(visit) -> str:
    p = visit.participant
    return reverse("assign_kit", args=[p.trial.slug, p.study_id, visit.pk])


def replace_url(visit) -> str:
    p = visit.participant
    return reverse("replace_kit", args=[p.trial.slug, p.study_id, visit.pk])


def injection_url(visit) -> str:
    p = visit.participant
    return reverse("visit_crf_edit", args=[p.trial.slug, p.study_id, visit.pk, "injection"])


def injection(kit: str, on: dt.date | None = None) -> dict:
    return {"injection_date": (on or TODAY()).isoformat(), "dose_given": True, "kit_code": kit}


@pytest.fixture
def randomised(reminet_ready):
    """A REMINET participant randomised today at the first site (their first kit assigned),
    and the site's coordinator."""
    trial, coordinator = reminet_ready
    return factories.randomised(trial, by=coordinator), coordinator


@pytest.fixture
def injected(randomised):
    """… who had the first injection with the kit assigned: injection visits every 28 days."""
    p, coordinator = randomised
    first = Visit.objects.get(participant=p, code="first_injection")
    save_crf(p, "injection", injection(supply.visit_kit(first).kit.number), by=coordinator,
             complete=True, visit=first)
    return p, coordinator, Visit.objects.filter(participant=p, code="injection").order_by(
        "target_date").first()


def test_randomisation_shows_the_first_kit_on_the_timeline_and_the_confirmation(
        randomised, client, client_for):
    p, coordinator = randomised
    first = Visit.objects.get(participant=p, code="first_injection")
    kit = supply.visit_kit(first).kit.number
    assert Allocation.objects.get(participant=p).kit_code == kit
    client_for(coordinator)
    html = client.get(timeline_url(p)).content.decode()
    row = html[html.index(f'id="visit-{first.pk}"'):]
    row = row[:row.index("</tr>")]
    assert f'data-testid="kit-to-give">{kit}<' in row
    assert "Assign kit" not in html  # no other dispensing visit yet
    confirmation = client.get(reverse("allocation_detail", args=[p.trial.slug, p.study_id]))
    text = confirmation.content.decode()
    assert f"Kit {kit}" in text and "First kit" in text and 'data-testid="kit-note"' in text
    assert_no_arm(p.trial, text, "the randomisation confirmation")
    pdf = client.get(reverse("allocation_certificate", args=[p.trial.slug, p.study_id]))
    assert "First kit" in pdf.content.decode("latin-1") and kit in pdf.content.decode("latin-1")


def test_the_coordinator_assigns_the_next_kit_at_the_next_injection_visit(injected, client,
                                                                          client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    html = client.get(timeline_url(p)).content.decode()
    assert html.count(">Assign kit<") == 1 and assign_url(visit) in html
    response = client.post(assign_url(visit), follow=True)
    assignment = supply.visit_kit(visit)
    assert assignment is not None and assignment.kit.site_id == p.site_id
    assert assignment.kit.arm_id == Allocation.objects.get(participant=p).arm_id
    html = response.content.decode()
    assert f"Kit to give at {visit.title}: {assignment.kit.number}." in html
    assert f'data-testid="kit-to-give">{assignment.kit.number}<' in html
    # A second click keeps the kit assigned (one kit per visit).
    client.post(assign_url(visit))
    assert KitAssignment.objects.filter(visit=visit).count() == 1
    assert_no_arm(p.trial, html, "the visit timeline")


def test_those_who_do_not_dispense_read_the_kit_and_cannot_assign(injected, make_user, client,
                                                                  client_for):
    p, _coordinator, visit = injected
    data_manager = make_user("data_manager", p.trial)
    client_for(data_manager)
    html = client.get(timeline_url(p)).content.decode()
    assert "no kit assigned yet" in html and ">Assign kit<" not in html
    assert client.post(assign_url(visit)).status_code == 403
    assert client.post(replace_url(visit), {"kind": "lost", "reason": "x"}).status_code == 403
    assert supply.visit_kit(visit) is None


def test_another_sites_coordinator_gets_404(injected, make_user, client, client_for):
    p, _coordinator, visit = injected
    other = p.trial.sites.exclude(pk=p.site_id).order_by("code").first()
    client_for(make_user("coordinator", p.trial, other))
    assert client.post(assign_url(visit)).status_code == 404
    assert client.post(replace_url(visit), {"kind": "lost", "reason": "x"}).status_code == 404
    assert supply.visit_kit(visit) is None


def test_a_visit_of_another_participant_is_404(injected, reminet_ready, client, client_for):
    p, coordinator, visit = injected
    someone = factories.randomised(p.trial, by=coordinator)
    client_for(coordinator)
    url = reverse("assign_kit", args=[p.trial.slug, someone.study_id, visit.pk])
    assert client.post(url).status_code == 404


def test_no_kit_at_a_visit_that_dispenses_none(injected, client, client_for):
    p, coordinator, _visit = injected
    baseline = Visit.objects.get(participant=p, code="baseline")
    client_for(coordinator)
    response = client.post(assign_url(baseline))
    assert response.status_code == 400
    assert "No kit is dispensed at Baseline" in response.content.decode()
    assert not KitAssignment.objects.filter(visit=baseline).exists()


def test_a_stock_out_says_to_contact_the_supply_manager_and_writes_nothing(injected, client,
                                                                           client_for):
    p, coordinator, visit = injected
    Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE).update(
        status=KitStatus.QUARANTINED)  # the whole shelf quarantined
    client_for(coordinator)
    response = client.post(assign_url(visit))
    assert response.status_code == 400
    html = response.content.decode()
    errors = html[html.index('data-testid="kit-errors"'):]
    assert "Contact the trial&#x27;s supply manager" in errors[:800]
    assert supply.visit_kit(visit) is None
    assert ResupplyRequest.objects.filter(site=p.site, stock_out=True).exists()
    assert_no_arm(p.trial, html, "the stock-out message")


def test_a_damaged_kit_is_replaced_with_its_reason(injected, client, client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    client.post(assign_url(visit))
    old = supply.visit_kit(visit).kit
    html = client.get(timeline_url(p)).content.decode()
    assert replace_url(visit) in html and "Replace kit…" in html
    response = client.post(replace_url(visit), {"kind": "damaged",
                                                "reason": "Vial cracked"}, follow=True)
    new = supply.visit_kit(visit).kit
    assert new.pk != old.pk and new.arm_id == old.arm_id
    assert Kit.objects.get(pk=old.pk).status == KitStatus.DAMAGED
    html = response.content.decode()
    assert f"Kit {old.number} replaced: give kit {new.number}" in html
    page = client.get(detail_url(p)).content.decode()
    kits = page[page.index('data-testid="participant-kits"'):]
    kits = kits[:kits.index("</section>")]
    assert old.number in kits and new.number in kits
    assert "Kit damaged: replaced: Vial cracked" in kits
    assert f"replaces kit {old.number}: Vial cracked" in kits


def test_a_replacement_needs_what_happened_and_why(injected, client, client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    client.post(assign_url(visit))
    kit = supply.visit_kit(visit).kit
    response = client.post(replace_url(visit), {"kind": "", "reason": ""})
    assert response.status_code == 400
    html = response.content.decode()
    assert "Say whether the kit is damaged or lost." in html and "Give the reason." in html
    response = client.post(replace_url(visit), {"kind": "stolen", "reason": "gone"})
    assert response.status_code == 400
    assert supply.visit_kit(visit).kit == kit


def test_a_kit_already_given_is_not_replaced(injected, client, client_for):
    p, coordinator, _visit = injected
    first = Visit.objects.get(participant=p, code="first_injection")
    client_for(coordinator)
    html = client.get(timeline_url(p)).content.decode()
    row = html[html.index(f'id="visit-{first.pk}"'):]
    row = row[:row.index("</tr>")]
    assert ">given<" in row and replace_url(first) not in row
    response = client.post(replace_url(first), {"kind": "lost", "reason": "lost"})
    assert response.status_code == 400
    assert "was recorded as given" in response.content.decode()


def test_nothing_to_replace_where_no_kit_is_assigned(injected, client, client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    response = client.post(replace_url(visit), {"kind": "lost", "reason": "lost"})
    assert response.status_code == 400
    assert "there is nothing to replace" in response.content.decode()


def test_the_injection_form_shows_the_kit_and_refuses_another_next_to_the_field(
        injected, client, client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    html = client.get(injection_url(visit)).content.decode()
    assert "No kit is assigned at this visit yet" in html
    client.post(assign_url(visit))
    kit = supply.visit_kit(visit).kit
    html = client.get(injection_url(visit)).content.decode()
    hint = html[html.index('data-testid="assigned-kit"'):]
    assert f"<strong>{kit.number}</strong>" in hint[:300]
    other = Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE).exclude(
        pk=kit.pk).first()
    day = visit.target_date.isoformat() if visit.target_date <= TODAY() else TODAY().isoformat()
    data = {"action": "complete", "injection_date": day, "dose_given": "true"}
    response = client.post(injection_url(visit), {**data, "kit_code": other.number})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "kit_code" in errors
    assert f"Kit {other.number} is not the kit assigned" in " ".join(errors["kit_code"])
    field = response.content.decode()
    field = field[field.index('id="kit_code-field"'):]
    assert "is not the kit assigned" in field[:1500]
    assert not CRFRecord.objects.filter(participant=p, visit=visit).exists()
    response = client.post(injection_url(visit), {**data, "kit_code": kit.number.lower()})
    assert response.status_code == 302
    assert Kit.objects.get(pk=kit.pk).status == KitStatus.DISPENSED


def test_the_participant_page_lists_the_kits_without_an_arm_for_blinded_roles(
        injected, make_user, client, client_for):
    p, coordinator, visit = injected
    client_for(coordinator)
    client.post(assign_url(visit))
    first = Visit.objects.get(participant=p, code="first_injection")
    for role in ("investigator", "coordinator", "data_manager", "sponsor"):
        client_for(make_user(role, p.trial, p.site if role in ("investigator", "coordinator")
                             else None))
        html = client.get(detail_url(p)).content.decode()
        kits = html[html.index('data-testid="participant-kits"'):]
        kits = kits[:kits.index("</section>")]
        assert supply.visit_kit(first).kit.number in kits and "Dispensed" in kits, role
        assert supply.visit_kit(visit).kit.number in kits, role
        assert_no_arm(p.trial, html, f"the participant page ({role})")
        assert_no_arm(p.trial, client.get(timeline_url(p)).content.decode(),
                      f"the timeline ({role})")
        assert_no_arm(p.trial, client.get(injection_url(visit)).content.decode(),
                      f"the injection form ({role})")


def test_a_trial_without_product_supply_shows_no_kit(rectal_ready, client, client_for):
    trial, coordinator = rectal_ready
    p = factories.randomised(trial, by=coordinator)
    client_for(coordinator)
    assert 'data-testid="visit-kit"' not in client.get(timeline_url(p)).content.decode()
    assert "participant-kits" not in client.get(detail_url(p)).content.decode()
    visit = Visit.objects.filter(participant=p).order_by("target_date").first()
    assert client.post(assign_url(visit)).status_code == 404
    assert client.post(replace_url(visit), {"kind": "lost", "reason": "x"}).status_code == 404


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_the_pages_run_as_many_queries_with_many_kits_as_with_one(injected, client,
                                                                  client_for):
    """The participant's kits are one query on the participant page and the timeline, the
    visit's kit one on the injection form, whatever the number of kits."""
    p, coordinator, visit = injected
    client_for(coordinator)
    client.get(reverse("home"))  # the session's first request of the minute saves it
    before = {url: _queries(client, url) for url in (detail_url(p), timeline_url(p),
                                                      injection_url(visit))}
    client.post(assign_url(visit))
    for n in range(3):
        client.post(replace_url(visit), {"kind": "damaged", "reason": f"broken {n}"})
    assert KitAssignment.objects.filter(participant=p).count() == 5
    client.get(reverse("home"))
    after = {url: _queries(client, url) for url in before}
    assert after == before


def test_a_french_coordinator_reads_dispensing_in_french(injected, client, client_for):
    from accounts.models import Profile

    p, coordinator, visit = injected
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})
    client_for(coordinator)
    html = client.post(assign_url(visit), follow=True).content.decode()
    kit = supply.visit_kit(visit).kit.number
    assert "Kit à donner :" in html and f'data-testid="kit-to-give">{kit}<' in html
    assert "Remplacer le kit…" in html
    Kit.objects.filter(site=p.site, status=KitStatus.AVAILABLE).update(
        status=KitStatus.QUARANTINED)
    response = client.post(replace_url(visit), {"kind": "damaged", "reason": "Flacon fêlé"})
    assert response.status_code == 400
    assert "Contactez le gestionnaire des approvisionnements" in response.content.decode()
    form = client.get(injection_url(visit)).content.decode()
    assert f"Kit attribué à cette visite : <strong>{kit}</strong>" in form


def test_the_dispensing_pages_keep_the_csrf_and_content_security_rules(injected, statistician,
                                                                       client, client_for):
    """Walked from the participant's page (timeline, forms, allocation) as the coordinator with
    a kit to replace, and from the kit lists as the statistician: every POST form carries its
    token, no page has inline code, none answers 500."""
    from tests.crawl import crawl

    p, coordinator, visit = injected
    client_for(coordinator)
    client.post(assign_url(visit))
    for start, user in ((detail_url(p), coordinator),
                        (reverse("kit_lists", args=[p.trial.slug]), statistician)):
        client_for(user)
        statuses = {}
        pages = crawl(client, start, limit=25, statuses=statuses)
        assert start in pages
        assert not {url: code for url, code in statuses.items() if code >= 500}
        for url, (_response, page) in pages.items():
            assert not page.inline, f"{url}: {page.inline}"
            for form in page.forms:
                assert form["method"] != "post" or form["csrf"], f"{url}: {form['action']}"
    assert replace_url(visit) in client_for(coordinator).get(timeline_url(p)).content.decode()
