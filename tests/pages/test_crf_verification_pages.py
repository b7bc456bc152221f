"""The CRF page's data entry flow and the monitor's work on it (issue 20, items 2-3): verify a
form or some answers against the source, every reader sees the marks, a change to a verified
answer says which mark it removed; the error summary at the top of a failed form; "save and go
to the next form of this visit"."""
from __future__ import annotations

import pytest
from django.urls import reverse

from crfs import verification
from crfs.models import SourceVerification
from tests.crf_world import crf_url, demographics, record_url
from tests.pages.test_crf_pages import CRF_PAGE_QUERIES, SECURITY_QUERIES


@pytest.fixture
def monitor(rectal, site, make_user):
    return make_user("monitor", rectal, site, first_name="Monique", last_name="Itor")


def posted(participant, **overrides) -> dict:
    data = {k: "" if v is None else [str(x) for x in v] if isinstance(v, list) else str(v)
            for k, v in demographics(participant, **overrides).items()}
    return {**data, "action": "complete", "reason": "Source document re-read"}


def test_the_monitor_verifies_the_whole_form_and_everyone_sees_the_mark(
        complete, monitor, investigator, client, client_for):
    client_for(monitor)
    html = client.get(crf_url(complete)).content.decode()
    assert 'data-testid="verify-form"' in html and 'data-testid="sdv-none"' in html
    response = client.post(record_url("crf_verify", complete), {"scope": "form"})
    assert response.status_code == 302 and response.url.endswith("#verification")
    assert verification.status(complete) == "not_required"  # plan: key data only
    mark = SourceVerification.objects.get(record=complete)
    assert mark.field_path == "" and mark.verified_by == monitor
    client_for(investigator)
    html = client.get(crf_url(complete)).content.decode()
    assert "Verified against the source by Monique Itor" in html
    assert 'data-testid="verify-form"' not in html  # the investigator does not verify


def test_the_monitor_verifies_some_answers_shown_next_to_them(complete, monitor, client,
                                                              client_for):
    client_for(monitor)
    response = client.post(record_url("crf_verify", complete),
                           {"scope": "fields", "paths": ["weight_kg", "height_cm"]})
    assert response.status_code == 302
    assert set(SourceVerification.objects.values_list("field_path", flat=True)) == {
        "weight_kg", "height_cm"}
    html = client.get(crf_url(complete)).content.decode()
    assert html.count('data-testid="sdv-mark"') == 2


@pytest.mark.parametrize("post, error", [
    ({}, "Choose the whole form or the answers verified."),
    ({"scope": "fields"}, "Tick the answers you verified against the source."),
    ({"scope": "fields", "paths": ["nope"]}, "This CRF has no field"),
    ({"scope": "everything"}, "Select a valid choice"),
])
def test_a_bad_verification_is_refused_next_to_its_field(complete, monitor, client,
                                                         client_for, post, error):
    client_for(monitor)
    response = client.post(record_url("crf_verify", complete), post)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not SourceVerification.objects.exists()


def test_a_draft_is_not_verified(participant, baseline, investigator, monitor, client,
                                 client_for):
    from scheduling.services import save_crf_and_replan
    draft = save_crf_and_replan(participant, "demographics", demographics(participant),
                                by=investigator, complete=False, visit=baseline)
    client_for(monitor)
    assert 'data-testid="verify-form"' not in client.get(crf_url(draft)).content.decode()
    response = client.post(record_url("crf_verify", draft), {"scope": "form"})
    assert response.status_code == 400
    assert "only a completed form is verified" in response.content.decode()


def test_only_the_monitor_of_the_site_verifies(complete, investigator, rectal, make_user,
                                               client, client_for):
    client_for(investigator)
    assert client.post(record_url("crf_verify", complete), {"scope": "form"}
                       ).status_code == 403
    other_site = rectal.sites.exclude(pk=complete.participant.site_id).first()
    client_for(make_user("monitor", rectal, other_site))
    assert client.post(record_url("crf_verify", complete), {"scope": "form"}
                       ).status_code == 404
    assert not SourceVerification.objects.exists()


def test_a_change_to_a_verified_answer_removes_its_mark_and_says_so(
        complete, monitor, investigator, participant, client, client_for):
    client_for(investigator)
    # Saved once through the page (its answers as the form cleans them), then verified.
    assert client.post(crf_url(complete), posted(participant)).status_code == 302
    verification.verify(complete, by=monitor, paths=["weight_kg", "height_cm"])
    response = client.post(crf_url(complete), posted(participant, weight_kg="80.0"),
                           follow=True)
    html = response.content.decode()
    assert "their verification was removed" in html and "Weight" in html
    standing = SourceVerification.objects.filter(voided_at__isnull=True)
    assert list(standing.values_list("field_path", flat=True)) == ["height_cm"]
    assert html.count('data-testid="sdv-mark"') == 0  # back on the participant page
    page = client.get(crf_url(complete)).content.decode()
    assert page.count('data-testid="sdv-mark"') == 1


def test_the_page_costs_the_same_queries_with_many_marks(complete, monitor, client, client_for,
                                                         django_assert_num_queries):
    client_for(monitor)
    url = crf_url(complete)
    client.get(reverse("home"))
    verification.verify(complete, by=monitor, paths=["weight_kg"])
    # The monitor has no second factor to check (SECURITY_QUERIES); the marks are one query,
    # whatever their number.
    with django_assert_num_queries(CRF_PAGE_QUERIES - 1 - SECURITY_QUERIES):
        client.get(url)
    verification.verify(complete, by=monitor, paths=["height_cm", "year_of_birth", ""])
    with django_assert_num_queries(CRF_PAGE_QUERIES - 1 - SECURITY_QUERIES):
        html = client.get(url).content.decode()
    assert html.count('data-testid="sdv-mark"') == 4


def test_a_form_with_errors_has_a_summary_linking_to_each_field(complete, participant,
                                                                investigator, client,
                                                                client_for):
    client_for(investigator)
    response = client.post(crf_url(complete), posted(participant, weight_kg="heavy",
                                                     height_cm="-"))
    assert response.status_code == 400
    html = response.content.decode()
    summary = html.split('data-testid="error-summary"', 1)[1].split("</div>", 1)[0]
    assert 'role="alert"' in html.split('data-testid="error-summary"', 1)[0][-120:]
    assert 'href="#id_weight_kg"' in summary and 'href="#id_height_cm"' in summary
    assert 'id="id_weight_kg"' in html and 'id="id_height_cm"' in html
    assert "2 errors" in summary


def test_save_and_next_goes_to_the_next_form_of_the_visit(participant, baseline, investigator,
                                                          client, client_for):
    client_for(investigator)
    url = reverse("visit_crf_edit", args=[participant.trial.slug, participant.study_id,
                                          baseline.pk, "demographics"])
    assert 'data-testid="save-next"' in client.get(url).content.decode()
    data = posted(participant)
    data.update(action="complete_next", reason="")
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response.url == reverse("visit_crf_edit", args=[
        participant.trial.slug, participant.study_id, baseline.pk, baseline.crfs[1]])


def test_save_and_next_on_the_last_form_goes_back_to_the_participant(complete, participant,
                                                                     baseline, investigator,
                                                                     client, client_for):
    client_for(investigator)
    last = baseline.crfs[-1]
    url = reverse("visit_crf_edit", args=[participant.trial.slug, participant.study_id,
                                          baseline.pk, last])
    # A draft with nothing in it: refused (required answers), so the page stays.
    response = client.post(url, {"action": "complete_next"})
    assert response.status_code == 400
    assert 'data-testid="error-summary"' in response.content.decode()
    # Demographics, saved again as complete: its next form is the visit's second.
    response = client.post(crf_url(complete), {**posted(participant), "action": "complete_next"})
    assert response.status_code == 302
    assert response.url.endswith(f"/crf/{baseline.crfs[1]}/")
    from pages.crfs import next_form_url
    assert next_form_url(baseline, last, participant.study_id, participant.trial.slug) == \
        reverse("participant_detail", args=[participant.trial.slug, participant.study_id])


def test_the_monitor_reads_french(complete, monitor, investigator, participant, client,
                                  client_for):
    from accounts.models import Profile
    Profile.objects.update_or_create(user=monitor, defaults={"language": "fr"})
    Profile.objects.update_or_create(user=investigator, defaults={"language": "fr"})
    client_for(monitor)
    html = client.get(crf_url(complete)).content.decode()
    assert "Vérifier par rapport à la source…" in html and "Tout le formulaire" in html
    response = client.post(record_url("crf_verify", complete), {"scope": "fields"})
    assert "Cochez les réponses que vous avez vérifiées" in response.content.decode()
    page = client.get(reverse("monitoring_visits", args=[complete.participant.trial.slug]))
    assert "Visites de monitorage" in page.content.decode()
    client_for(investigator)
    html = client.post(crf_url(complete), {**posted(participant), "year_of_birth": "x"}
                       ).content.decode()
    assert "Le formulaire comporte 1 erreur" in html
    assert "Enregistrer et passer au formulaire suivant de cette visite" in html
