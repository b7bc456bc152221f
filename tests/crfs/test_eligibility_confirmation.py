"""Eligibility confirmed by an investigator before randomisation (issue 17, item 3), and the
criteria derived from their source values on the eligibility form."""
from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from crfs import eligibility
from crfs.models import CRFRecord, CRFSignature, CRFStatus, SignatureMeaning
from crfs.services import confirm_eligibility, latest_version, sign_crf
from randomisation.models import Allocation
from randomisation.selectors import to_randomise
from randomisation.services import RandomisationError, randomise
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.conftest import PASSWORD


@pytest.fixture
def world(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    first, second = trial.sites.order_by("code")[:2]
    investigator = make_user("investigator", trial, first, first_name="Irène", last_name="Curie")
    return trial, coordinator, investigator, make_user("investigator", trial, second)


def awaiting(trial, coordinator, **answers):
    """Consented, eligible, the form complete: awaiting the investigator's confirmation."""
    return factories.eligible_participant(trial, by=coordinator, confirmed=False, **answers)


def record_of(p) -> CRFRecord:
    return CRFRecord.objects.get(participant=p, crf_code="eligibility")


# --------------------------------------------------------------------------- protocol


def test_both_trials_ask_for_the_confirmation(rectal, reminet):
    for trial in (rectal, reminet):
        assert trial.definition["eligibility_confirmation"]["required"] is True
        p_def = {c["code"]: c for c in trial.definition["eligibility"]}
        assert any(c.get("derive", {}).get("rule") == "age_at_least" for c in p_def.values())
    reminet_inc5 = {c["code"]: c for c in reminet.definition["eligibility"]}["INC5"]
    # The rule's note is for the protocol's author: the definition pages read leaves it out.
    assert reminet_inc5["derive"] == {"rule": "at_least", "from": "l1_duration_months",
                                      "value": 2}


@pytest.mark.parametrize("derive, path, message", [
    ({"rule": "at_least", "from": "no_such_field", "value": 2}, "eligibility[4].derive.from",
     "unknown field 'no_such_field'"),
    ({"rule": "at_least", "from": "tumour_grade", "value": 2}, "eligibility[4].derive.from",
     "'tumour_grade' is a choice field; at_least reads a integer or decimal field"),
    ({"rule": "age_at_least", "from": "l1_response", "at": "screening_date", "value": 18},
     "eligibility[4].derive.from", "age_at_least reads a date or integer field"),
    ({"rule": "age_at_least", "from": "year_of_birth", "value": 18},
     "eligibility[4].derive.at", "age_at_least needs the date field"),
    ({"rule": "age_at_least", "from": "year_of_birth", "at": "tumour_grade", "value": 18},
     "eligibility[4].derive.at", "'tumour_grade' is not a date field"),
    ({"rule": "at_least", "from": "l1_duration_months", "at": "screening_date", "value": 2},
     "eligibility[4].derive.at", "at_least takes no date"),
    ({"rule": "at_least", "from": "INC5", "value": 2}, "eligibility[4].derive.from",
     "cannot derive from itself"),
    ({"rule": "older_than", "from": "year_of_birth", "value": 2}, "eligibility[4].derive.rule",
     "is not one of"),
    ({"rule": "at_least", "from": "l1_duration_months", "value": "two"},
     "eligibility[4].derive.value", "is not of type 'number'"),
])
def test_a_bad_derivation_is_refused_at_load_with_its_path(derive, path, message):
    from trials.protocol import read_protocol_file, validate_definition

    data = read_protocol_file("trials/protocols/reminet.yaml")
    assert data["eligibility"][4]["code"] == "INC5"
    data["eligibility"][4]["derive"] = derive
    problems = [(p.path, p.message) for p in validate_definition(data)]
    assert any(p == path and message in m for p, m in problems), problems


def test_a_bad_confirmation_key_is_refused_with_its_path():
    from trials.protocol import read_protocol_file, validate_definition

    data = read_protocol_file("trials/protocols/reminet.yaml")
    data["eligibility_confirmation"] = {"required": "yes", "by": "coordinator"}
    problems = {p.path: p.message for p in validate_definition(data)}
    assert "eligibility_confirmation" in problems
    assert "by" in problems["eligibility_confirmation"]
    assert problems["eligibility_confirmation.required"] == "'yes' is not of type 'boolean'"


# --------------------------------------------------------------------------- derived criteria


def test_a_blank_criterion_is_derived_from_its_source(reminet_ready):
    trial, coordinator = reminet_ready
    p = awaiting(trial, coordinator, INC5=None, INC7=None, year_of_birth=1960,
                 l1_duration_months="4.5")
    data = record_of(p).data
    assert data["INC5"] is True and data["INC7"] is True
    p2 = awaiting(trial, coordinator, INC5=None, l1_duration_months="1.5")
    assert record_of(p2).data["INC5"] is False
    assert not eligibility.evaluate(p2).met


def test_an_answer_contradicting_its_source_is_refused_naming_both(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    today = timezone.localdate()
    answers = factories.eligibility_answers(trial, INC7=True, year_of_birth=today.year - 14,
                                            screening_date=today.isoformat())
    with pytest.raises(ValidationError) as refused:
        save_crf(p, "eligibility", answers, by=coordinator, complete=True)
    assert refused.value.message_dict == {"INC7": [
        (f"INC7 answered yes but the year of birth {today.year - 14} gives age 13-14 on the "
         f"screening date {today.isoformat()}.")]}
    assert not CRFRecord.objects.filter(participant=p).exists(), "nothing written"

    answers = factories.eligibility_answers(trial, INC5=True, l1_duration_months="1.5")
    with pytest.raises(ValidationError) as refused:
        save_crf(p, "eligibility", answers, by=coordinator, complete=False)
    assert refused.value.message_dict == {"INC5": [
        "INC5 answered yes but the duration of first-line treatment is 1.5 months."]}
    assert not CRFRecord.objects.filter(participant=p).exists()


def test_an_undecided_source_leaves_the_answer_to_the_site(reminet_ready):
    """Born in the year 18 years before screening: 17 or 18 on the day, the year cannot say."""
    trial, coordinator = reminet_ready
    year = timezone.localdate().year - 18
    p = awaiting(trial, coordinator, INC7=True, year_of_birth=year)
    assert record_of(p).data["INC7"] is True
    p2 = awaiting(trial, coordinator, INC7=False, year_of_birth=year)
    assert record_of(p2).data["INC7"] is False


def test_age_from_a_date_of_birth_counts_completed_years():
    rule = {"rule": "age_at_least", "from": "birth", "at": "screening", "value": 18}
    fields = {"birth": {"label": "Date of birth"}, "screening": {"label": "Screening date"}}
    data = {"birth": "2008-05-02", "screening": "2026-05-01"}
    assert eligibility.criterion_from_source(rule, data, fields) == (
        False, "the date of birth 2008-05-02 gives age 17 on the screening date 2026-05-01")
    data["screening"] = "2026-05-02"
    assert eligibility.criterion_from_source(rule, data, fields)[0] is True
    crf = {"fields": [{"code": "birth", "label": "Date of birth"},
                      {"code": "screening", "label": "Screening date"}]}
    _, errors = eligibility.derive_criteria(
        [{"code": "INC1", "derive": rule}], crf,
        {"birth": "2012-05-01", "screening": "2026-05-01", "INC1": True})
    assert errors == {"INC1": ("INC1 answered yes but the date of birth 2012-05-01 gives age "
                               "14 on the screening date 2026-05-01.")}


# --------------------------------------------------------------------------- confirmation


def test_an_investigator_confirms_and_the_coordinator_may_then_randomise(world):
    trial, coordinator, investigator, _ = world
    p = awaiting(trial, coordinator)
    with pytest.raises(RandomisationError) as refused:
        randomise(p, by=coordinator)
    assert refused.value.code == "eligibility_unconfirmed"
    assert "awaiting an investigator's confirmation" in refused.value.messages[0]
    assert not Allocation.objects.exists()

    record = record_of(p)
    signature = confirm_eligibility(p, by=investigator, password=PASSWORD,
                                    version=latest_version(record).history_id)
    assert signature.meaning == SignatureMeaning.ELIGIBILITY
    assert signature.printed_name == "Irène Curie"
    record.refresh_from_db()
    assert record.status == CRFStatus.SIGNED
    assert eligibility.confirmation_of(p) == signature
    assert AuditEvent.objects.filter(action="eligibility.confirmed").count() == 1
    assert randomise(p, by=coordinator).participant == p


def test_a_change_to_the_eligibility_form_voids_the_confirmation(world):
    trial, coordinator, investigator, _ = world
    p = awaiting(trial, coordinator)
    confirm_eligibility(p, by=investigator, password=PASSWORD)
    record = record_of(p)
    answers = dict(record.data, l1_duration_months="5.0")
    save_crf(p, "eligibility", answers, by=coordinator, complete=True, record=record,
             reason="duration corrected from the source file")
    signature = CRFSignature.objects.get(record=record)
    assert signature.voided_at is not None
    assert signature.void_reason == "duration corrected from the source file"
    assert eligibility.confirmation_of(p) is None
    with pytest.raises(RandomisationError, match="awaiting an investigator's confirmation"):
        randomise(p, by=coordinator)
    confirm_eligibility(p, by=investigator, password=PASSWORD)  # confirmed again
    randomise(p, by=coordinator)


def test_a_confirmation_never_stands_on_changed_data_however_changed(world):
    trial, coordinator, investigator, _ = world
    p = awaiting(trial, coordinator)
    confirm_eligibility(p, by=investigator, password=PASSWORD)
    record = record_of(p)
    CRFRecord.objects.filter(pk=record.pk).update(data=dict(record.data, tumour_grade="G2"))
    assert eligibility.confirmation_of(p) is None
    with pytest.raises(RandomisationError):
        randomise(p, by=coordinator)


def test_only_an_investigator_of_the_site_may_confirm(world):
    trial, coordinator, _, other_site = world
    p = awaiting(trial, coordinator)
    for user in (coordinator, other_site):
        with pytest.raises(PermissionDenied):
            confirm_eligibility(p, by=user, password=PASSWORD)
    assert not CRFSignature.objects.exists()


@pytest.mark.parametrize("case, message", [
    ("wrong_password", "The password is not correct."),
    ("incomplete", "not complete"),
    ("not_eligible", r"does not meet the criteria \(EXC1\)"),
    ("changed_since_shown", "changed since you opened it"),
    ("already", "already confirmed"),
    ("randomised", "already randomised"),
])
def test_a_confirmation_that_cannot_be_given_writes_nothing(world, case, message):
    trial, coordinator, investigator, _ = world
    kwargs = {"password": PASSWORD}
    if case == "incomplete":
        p = awaiting(trial, coordinator, complete=False)
    elif case == "not_eligible":
        p = awaiting(trial, coordinator, EXC1=True)
    else:
        p = awaiting(trial, coordinator)
    if case == "wrong_password":
        kwargs["password"] = "not-it"
    if case == "changed_since_shown":
        kwargs["version"] = latest_version(record_of(p)).history_id - 1
    if case in ("already", "randomised"):
        confirm_eligibility(p, by=investigator, password=PASSWORD)
    if case == "randomised":
        randomise(p, by=coordinator)
    before = CRFSignature.objects.count()
    with pytest.raises(ValidationError, match=message):
        confirm_eligibility(p, by=investigator, **kwargs)
    assert CRFSignature.objects.count() == before


def test_the_crf_signature_cannot_pass_for_a_confirmation(world):
    trial, coordinator, investigator, _ = world
    p = awaiting(trial, coordinator)
    with pytest.raises(ValidationError, match="Choose what your signature means"):
        sign_crf(record_of(p), by=investigator, password=PASSWORD,
                 meaning=SignatureMeaning.ELIGIBILITY)
    sign_crf(record_of(p), by=investigator, password=PASSWORD, meaning=SignatureMeaning.ACCURATE)
    with pytest.raises(RandomisationError, match="awaiting an investigator's confirmation"):
        randomise(p, by=coordinator)
    confirm_eligibility(p, by=investigator, password=PASSWORD)  # a signed form may be confirmed
    randomise(p, by=coordinator)


def test_a_protocol_without_the_requirement_randomises_without_confirmation(world):
    trial, coordinator, _, _ = world
    p = awaiting(trial, coordinator)
    version = p.protocol_version
    definition = dict(version.definition, eligibility_confirmation={"required": False})
    type(version).objects.filter(pk=version.pk).update(definition=definition)
    from trials import models
    models._DEFINITIONS.clear()
    p.refresh_from_db()
    assert not eligibility.confirmation_required(p)
    randomise(p, by=coordinator)


# --------------------------------------------------------------------------- worklist, pages


def test_the_worklist_says_who_awaits_the_investigator(world, client_for,
                                                       django_assert_max_num_queries):
    trial, coordinator, _, _ = world
    waiting = awaiting(trial, coordinator)
    ready = factories.eligible_participant(trial, by=coordinator)
    incomplete = factories.participant(trial, by=coordinator)
    failed = awaiting(trial, coordinator, EXC1=True)
    randomised = factories.randomised(trial, by=coordinator)
    with django_assert_max_num_queries(4):
        states = {c.participant.study_id: (c.state, c.label)
                  for c in to_randomise(coordinator, trial)}
    assert states == {
        waiting.study_id: ("awaiting_confirmation", "awaiting investigator's confirmation"),
        ready.study_id: ("ready", "ready to randomise"),
        incomplete.study_id: ("incomplete", "consent or eligibility form to complete"),
    }
    # A completed form with a criterion not met makes a screen failure, no longer one to
    # randomise (issue 17, item 2): it is shown as such on the participant's page.
    assert failed.study_id not in states and randomised.study_id not in states
    html = client_for(coordinator).get(reverse("visit_worklist", args=[trial.slug])).content.decode()
    row = html.split(waiting.study_id, 2)[2].split("</tr>")[0]
    assert "awaiting investigator&#x27;s confirmation" in row
    row = html.split(ready.study_id, 2)[2].split("</tr>")[0]
    assert "ready to randomise" in row


def test_the_participant_page_offers_the_confirmation_to_investigators_only(world, client_for):
    trial, coordinator, investigator, _ = world
    p = awaiting(trial, coordinator)
    url = reverse("participant_detail", args=[trial.slug, p.study_id])
    confirm_url = reverse("confirm_eligibility", args=[trial.slug, p.study_id])
    html = client_for(coordinator).get(url).content.decode().replace("&#x27;", "'")
    assert "awaiting investigator's confirmation" in html
    assert confirm_url not in html
    assert reverse("randomise", args=[trial.slug, p.study_id]) not in html
    html = client_for(investigator).get(url).content.decode()
    assert confirm_url in html


def test_the_confirmation_page(world, client_for, make_user):
    trial, coordinator, investigator, other_site = world
    p = awaiting(trial, coordinator)
    url = reverse("confirm_eligibility", args=[trial.slug, p.study_id])
    assert client_for(coordinator).get(url).status_code == 403
    assert client_for(other_site).get(url).status_code == 404
    client = client_for(investigator)
    page = client.get(url)
    assert page.status_code == 200 and "What you confirm" in page.content.decode()
    version = latest_version(record_of(p)).history_id
    refused = client.post(url, {"password": "wrong", "version": version})
    assert refused.status_code == 400
    assert "The password is not correct." in refused.content.decode()
    done = client.post(url, {"password": PASSWORD, "version": version})
    assert done.status_code == 302
    assert eligibility.confirmation_of(p).signer == investigator
    html = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content
    assert "by Irène Curie" in html.decode()


def test_the_randomise_page_says_the_confirmation_is_awaited(world, client_for):
    trial, coordinator, _, _ = world
    p = awaiting(trial, coordinator)
    html = client_for(coordinator).post(reverse("randomise", args=[trial.slug, p.study_id]),
                                        {}).content.decode()
    assert "awaiting an investigator&#x27;s confirmation" in html
    assert not Allocation.objects.exists()


def test_a_source_that_cannot_be_read_derives_nothing(reminet_ready):
    """No screening date: the age cannot be taken, the answer stays the site's."""
    trial, _ = reminet_ready
    data = factories.eligibility_answers(trial, INC7=None, year_of_birth=1950)
    data.pop("screening_date")
    crf = {"fields": [{"code": "year_of_birth", "label": "Year of birth"},
                      {"code": "screening_date", "label": "Screening date"}]}
    out, errors = eligibility.derive_criteria(trial.definition["eligibility"], crf, data)
    assert out["INC7"] is None and errors == {}


def test_the_eligibility_page_derives_a_blank_answer_and_refuses_a_contradiction(
        reminet_ready, client_for):
    trial, coordinator = reminet_ready
    p = factories.participant(trial, by=coordinator)
    client = client_for(coordinator)
    url = reverse("crf_edit", args=[trial.slug, p.study_id, "eligibility"])
    answers = factories.eligibility_answers(trial, INC5=None, INC7=None, year_of_birth=1960,
                                            l1_duration_months="4.5")
    post = {k: ("true" if v is True else "false" if v is False else v)
            for k, v in answers.items() if v is not None}
    refused = client.post(url, {**post, "INC5": "true", "l1_duration_months": "1.5",
                                "action": "complete"})
    assert refused.status_code == 400
    assert ("INC5 answered yes but the duration of first-line treatment is 1.5 months."
            in refused.content.decode())
    assert not CRFRecord.objects.filter(participant=p).exists()
    saved = client.post(url, {**post, "action": "complete"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    data = record_of(p).data
    assert data["INC5"] is True and data["INC7"] is True


def test_a_french_coordinator_reads_why_randomisation_waits(world, client_for):
    from accounts.models import Profile

    trial, coordinator, _, _ = world
    p = awaiting(trial, coordinator)
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})
    client = client_for(coordinator)
    text = client.get(reverse("randomise", args=[trial.slug, p.study_id])).content.decode()
    assert f"L&#x27;éligibilité de {p.study_id} attend la confirmation d&#x27;un investigateur" \
        in text
    page = client.get(reverse("visit_worklist", args=[trial.slug])).content.decode()
    assert "en attente de la confirmation de l&#x27;investigateur" in page
