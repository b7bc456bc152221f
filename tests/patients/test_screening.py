"""Issue 17, items 1, 2 and 6: the screening log (no identifiers), screen failure as a fact of
the eligibility form, screening episodes, and randomised in error."""
from __future__ import annotations

import copy
import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from crfs import screening
from crfs.eligibility import eligibility_record
from patients.models import Participant, ScreeningEpisode, ScreeningLogEntry, Status
from patients.screening import identifier_in, record_screening_log_entry
from randomisation import services as randomisation
from randomisation.models import Allocation, RandomisedInError
from scheduling.services import save_crf_and_replan as save_crf
from tests import factories
from tests.trials.test_protocol_files import MINIMAL, problems, refused

TODAY = timezone.localdate


# --------------------------------------------------------------------------- the protocol key


def test_both_trials_declare_screening_with_sources(reminet, rectal):
    for trial in (reminet, rectal):
        screening_key = trial.definition["screening"]
        assert screening_key["non_inclusion_reasons"]
        for reason in screening_key["non_inclusion_reasons"]:
            assert reason["source"].startswith(("l.", "choice:")), reason
        assert screening_key["opened_on_source"].startswith("choice:")
        assert screening_key["rescreening_source"].startswith("choice:")
    assert reminet.definition["screening"]["rescreening_allowed"] is True
    assert rectal.definition["screening"]["rescreening_allowed"] is False


@pytest.mark.parametrize("change, path, words", [
    (lambda s: s["non_inclusion_reasons"].append(dict(s["non_inclusion_reasons"][0])),
     "screening.non_inclusion_reasons[1].code", "duplicate code 'declined'"),
    (lambda s: s.update(opened_on="2014-13-40"), "screening.opened_on", "is not a date"),
    (lambda s: s.pop("rescreening_allowed"), "screening", "rescreening_allowed"),
    (lambda s: s["non_inclusion_reasons"][0].pop("label"),
     "screening.non_inclusion_reasons[0]", "label"),
])
def test_a_bad_screening_block_is_refused_with_its_path(db, tmp_path, change, path, words):
    data = copy.deepcopy(MINIMAL)
    data["screening"] = {
        "opened_on": "2014-01-01", "opened_on_source": "choice: test",
        "rescreening_allowed": True, "rescreening_source": "choice: test",
        "non_inclusion_reasons": [{"code": "declined", "label": "Declined", "source": "choice"}]}
    change(data["screening"])
    found = problems(refused(tmp_path, data))
    assert path in found, found
    assert words in found[path]


# --------------------------------------------------------------------------- screening log


@pytest.fixture
def site_coordinator(reminet, make_user):
    return make_user("coordinator", reminet, reminet.sites.order_by("code").first())


def test_site_staff_record_a_screening_log_entry(reminet, site_coordinator):
    site = reminet.sites.order_by("code").first()
    entry = record_screening_log_entry(reminet, site=site, screened_on=TODAY(),
                                       reason="l1_too_short", note="L1 for 6 weeks only",
                                       by=site_coordinator)
    assert entry.pk and entry.history.count() == 1
    assert AuditEvent.objects.filter(action="screening_log.entry").exists()


@pytest.mark.parametrize("note, kind", [
    ("Jean Dupont refused", "a name"),
    ("Marie-Claire Martin", "a name"),
    ("born 1954", "a date of birth"),
    ("DOB 12/03/1954", "a date"),
    ("seen 1954-03-12", "a date"),
    ("12 mars 1954", "a date"),
    ("tel 06 12 34 56 78", "a phone or identification number"),
    ("NIP 1850375123456", "a phone or identification number"),
    ("patient J.D.", "initials"),
])
def test_an_identifier_looking_note_is_refused(reminet, site_coordinator, note, kind):
    assert identifier_in(note)[0] == kind
    with pytest.raises(ValidationError) as info:
        record_screening_log_entry(reminet, site=reminet.sites.order_by("code").first(),
                                   screened_on=TODAY(), reason="declined", note=note,
                                   by=site_coordinator)
    assert "must not identify anyone" in info.value.message_dict["note"][0]
    assert kind in info.value.message_dict["note"][0]
    assert not ScreeningLogEntry.objects.exists()


@pytest.mark.parametrize("note", ["", "progression on L1", "ECOG 3", "refused: travel too far",
                                  "L1 2 months short by 1 week"])
def test_a_plain_note_is_accepted(reminet, site_coordinator, note):
    assert identifier_in(note) is None
    record_screening_log_entry(reminet, site=reminet.sites.order_by("code").first(),
                               screened_on=TODAY(), reason="other", note=note,
                               by=site_coordinator)


def test_bad_screening_log_entries_are_refused_and_nothing_written(reminet, rectal,
                                                                   site_coordinator):
    own, other = reminet.sites.order_by("code")[:2]
    cases = [
        ({"site": own, "screened_on": TODAY() + dt.timedelta(days=1), "reason": "declined"},
         "screened_on", "future"),
        ({"site": own, "screened_on": dt.date(2013, 12, 31), "reason": "declined"},
         "screened_on", "before the trial opened to screening (2014-01-01)"),
        ({"site": rectal.sites.first(), "screened_on": TODAY(), "reason": "declined"},
         "site", "not a site of this trial"),
        ({"site": other, "screened_on": TODAY(), "reason": "declined"},
         "site", "do not keep the screening log"),
        ({"site": own, "screened_on": TODAY(), "reason": "too_old"},
         "reason", "'too_old' is not a reason the protocol declares"),
    ]
    for kwargs, field, words in cases:
        with pytest.raises(ValidationError) as info:
            record_screening_log_entry(reminet, by=site_coordinator, **kwargs)
        assert words in info.value.message_dict[field][0], (field, info.value.message_dict)
    assert not ScreeningLogEntry.objects.exists()


def test_the_screening_log_page_enters_and_lists_by_site(reminet, site_coordinator, make_user,
                                                         client, client_for):
    own, other = reminet.sites.order_by("code")[:2]
    all_sites = make_user("coordinator", reminet)
    record_screening_log_entry(reminet, site=other, screened_on=TODAY(), reason="resectable",
                               by=all_sites)
    client_for(site_coordinator)
    url = reverse("screening_log", args=[reminet.slug])
    response = client.post(url, {"site": own.pk, "screened_on": TODAY().isoformat(),
                                 "reason": "declined", "note": "Paul Durand"})
    assert response.status_code == 400 and "must not identify anyone" in response.content.decode()
    response = client.post(url, {"site": own.pk, "screened_on": TODAY().isoformat(),
                                 "reason": "declined", "note": ""})
    assert response.status_code == 302
    table = client.get(url).content.decode().split('data-testid="screening-log"')[1]
    assert "Declined to participate" in table
    assert "Disease resectable" not in table  # the other site's entry: not this coordinator's
    # The sponsor reads every site's, and has no form.
    client_for(make_user("sponsor", reminet))
    html = client.get(url).content.decode()
    table = html.split('data-testid="screening-log"')[1]
    assert "Declined to participate" in table and "Disease resectable" in table
    assert "screening-log-form" not in html
    assert client.post(url, {"site": own.pk}).status_code == 403


def test_the_api_keeps_the_screening_log(reminet, site_coordinator, client, client_for):
    client_for(site_coordinator)
    url = reverse("api_screening_log", args=[reminet.slug])
    own = reminet.sites.order_by("code").first()
    bad = client.post(url, {"site": own.code, "screened_on": TODAY().isoformat(),
                            "reason": "declined", "note": "born 1950"},
                      content_type="application/json")
    assert bad.status_code == 400 and "note" in bad.json()
    ok = client.post(url, {"site": own.code, "screened_on": TODAY().isoformat(),
                           "reason": "declined"}, content_type="application/json")
    assert ok.status_code == 201, ok.content
    listed = client.get(url).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert [r["reason"] for r in rows] == ["declined"]


# --------------------------------------------------------------------------- screen failure


def test_a_completed_eligibility_form_with_a_criterion_not_met_is_a_screen_failure(
        reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, INC5=False,
                                       l1_duration_months="1.5")
    p.refresh_from_db()
    assert p.status == Status.SCREEN_FAILED
    client_for(coordinator)
    html = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content.decode()
    assert "screen failure" in html and "INC5" in html
    assert "At least 2 months of first-line treatment" in html
    assert reverse("randomise", args=[trial.slug, p.study_id]) not in html
    with pytest.raises(randomisation.RandomisationError, match="INC5"):
        randomisation.randomise(p, by=coordinator)
    assert not Allocation.objects.exists()


def test_a_draft_is_not_yet_a_screen_failure(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, complete=False, INC5=False,
                                   l1_duration_months="1.5")
    assert Participant.objects.get(pk=p.pk).status == Status.SCREENED


def test_correcting_the_form_reverts_the_screen_failure(reminet_ready):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, EXC2=True)
    assert Participant.objects.get(pk=p.pk).status == Status.SCREEN_FAILED
    record = eligibility_record(p)
    save_crf(p, "eligibility", {**record.data, "EXC2": False}, by=coordinator, complete=True,
             reason="EXC2 ticked by mistake", record=record)
    p.refresh_from_db()
    assert p.status == Status.SCREENED
    factories.confirm_eligibility(p)  # the investigator confirms the corrected form
    assert randomisation.randomise(p, by=coordinator).pk
    assert [h.status for h in p.history.order_by("history_date")][-3:] == [
        Status.SCREEN_FAILED, Status.SCREENED, Status.RANDOMISED]


def test_rescreening_keeps_the_old_episode(reminet_ready, client, client_for):
    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, INC5=False,
                                       l1_duration_months="1.5")
    record = eligibility_record(p)
    answered_on = record.data["screening_date"]
    client_for(coordinator)
    response = client.post(reverse("rescreen", args=[trial.slug, p.study_id]),
                           {"reason": "L1 now given for 3 months"})
    assert response.status_code == 302
    p.refresh_from_db()
    assert p.status == Status.SCREENED
    episode = ScreeningEpisode.objects.get(participant=p)
    assert (episode.number, episode.outcome, episode.failed_criteria) == (
        1, Status.SCREEN_FAILED, ["INC5"])
    assert episode.assessed_on.isoformat() == answered_on
    assert episode.eligibility_data["INC5"] is False
    record.refresh_from_db()
    assert record.status == "draft"  # the same record, open for episode 2
    # Episode 2: eligible this time, randomised; episode 1 still shows with its outcome.
    save_crf(p, "eligibility", {**record.data, "INC5": True, "l1_duration_months": "3"},
             by=coordinator, complete=True, reason="episode 2", record=record)
    factories.confirm_eligibility(p)
    randomisation.randomise(p, by=coordinator)
    html = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content.decode()
    assert "Screening episodes" in html and "Screen failure" in html and "INC5" in html


def test_rescreening_is_refused_where_the_protocol_does_not_allow_it(rectal_ready):
    trial, coordinator = rectal_ready
    p = factories.eligible_participant(trial, by=coordinator, INC2=False)
    with pytest.raises(ValidationError, match="does not allow"):
        screening.rescreen(p, by=coordinator, reason="try again")
    assert not ScreeningEpisode.objects.exists()


def test_rescreening_needs_a_screen_failure_a_reason_and_the_right(reminet_ready, make_user):
    trial, coordinator = reminet_ready
    eligible = factories.eligible_participant(trial, by=coordinator)
    with pytest.raises(ValidationError, match="Only a screen failure"):
        screening.rescreen(eligible, by=coordinator, reason="why not")
    failed = factories.eligible_participant(trial, by=coordinator, INC1=False)
    with pytest.raises(ValidationError) as info:
        screening.rescreen(failed, by=coordinator, reason="  ")
    assert "reason" in info.value.message_dict
    with pytest.raises(PermissionDenied):
        screening.rescreen(failed, by=make_user("sponsor", trial), reason="x")
    assert not ScreeningEpisode.objects.exists()


# --------------------------------------------------------------------------- randomised in error


def test_randomised_in_error_is_recorded_and_the_allocation_stands(reminet_ready, make_user,
                                                                    client, client_for):
    trial, coordinator = reminet_ready
    p = factories.randomised(trial, by=coordinator)
    allocation = p.allocation
    client_for(make_user("data_manager", trial))
    url = reverse("record_randomised_in_error", args=[trial.slug, p.study_id])
    assert client.post(url, {"reason": " "}).status_code == 302
    assert not RandomisedInError.objects.exists()  # refused: no reason
    assert client.post(url, {"reason": "Registered twice (see REMINET-01-0001)"}).status_code == 302
    flag = RandomisedInError.objects.get()
    assert flag.allocation == allocation and flag.reason.startswith("Registered twice")
    assert AuditEvent.objects.filter(action="allocation.randomised_in_error").exists()
    p.refresh_from_db()
    assert p.status == Status.RANDOMISED and Allocation.objects.get(pk=allocation.pk)
    with pytest.raises(ValidationError, match="already recorded"):
        randomisation.record_randomised_in_error(allocation, reason="again", by=coordinator)
    with pytest.raises(PermissionDenied):
        randomisation.record_randomised_in_error(allocation, reason="x",
                                                 by=make_user("sponsor", trial))
    page = client.get(reverse("participant_detail", args=[trial.slug, p.study_id]))
    assert "randomised in error" in page.content.decode()


def test_exports_flag_the_randomised_in_error(reminet_ready, make_user):
    from reports.exports import export_csv
    from reports.odm import export_odm

    trial, coordinator = reminet_ready
    flagged = factories.randomised(trial, by=coordinator)
    other = factories.randomised(trial, by=coordinator)
    randomisation.record_randomised_in_error(flagged.allocation, reason="not eligible: INC2",
                                             by=coordinator)
    sponsor = make_user("sponsor", trial)
    lines = "".join(export_csv(sponsor, trial, "eligibility", "wide")).splitlines()
    header = lines[0].split(",")
    column = header.index("randomised_in_error")
    rows = {line.split(",")[0]: line.split(",")[column] for line in lines[1:]}
    assert rows == {flagged.study_id: "yes", other.study_id: ""}
    odm = "".join(export_odm(sponsor, trial))
    assert odm.count('ItemOID="IT.ALLOCATION.RANDOMISED_IN_ERROR" Value="yes"') == 1
    assert 'OID="IT.ALLOCATION.RANDOMISED_IN_ERROR"' in odm  # declared in the metadata


def test_a_french_coordinator_reads_the_screening_in_french(reminet_ready, client, client_for):
    from accounts.models import Profile

    trial, coordinator = reminet_ready
    Profile.objects.update_or_create(user=coordinator, defaults={"language": "fr"})
    p = factories.eligible_participant(trial, by=coordinator, INC5=False,
                                       l1_duration_months="1.5")
    client_for(coordinator)
    html = client.get(reverse("participant_detail", args=[trial.slug, p.study_id])).content.decode()
    assert "échec de pré-inclusion" in html and "critères non remplis" in html
    response = client.post(reverse("screening_log", args=[trial.slug]), {
        "site": p.site.pk, "screened_on": TODAY().isoformat(), "reason": "declined",
        "note": "né en 1950"})
    text = response.content.decode()
    assert response.status_code == 400
    assert "le registre de pré-inclusion ne doit identifier personne" in text
    assert "une date de naissance" in text


def test_the_api_rescreens_and_records_randomised_in_error(reminet_ready, make_user, client,
                                                           client_for):
    trial, coordinator = reminet_ready
    failed = factories.eligible_participant(trial, by=coordinator, INC5=False,
                                       l1_duration_months="1.5")
    randomised = factories.randomised(trial, by=coordinator)
    client_for(coordinator)
    url = reverse("api_rescreen", args=[trial.slug, failed.study_id])
    refused = client.post(url, {"reason": ""}, content_type="application/json")
    assert refused.status_code == 400 and "reason" in refused.json()
    done = client.post(url, {"reason": "L1 now 3 months"}, content_type="application/json")
    assert done.status_code == 200 and done.json()["status"] == Status.SCREENED
    assert ScreeningEpisode.objects.filter(participant=failed).count() == 1
    url = reverse("api_randomised_in_error", args=[trial.slug, randomised.study_id])
    flagged = client.post(url, {"reason": "Registered twice"}, content_type="application/json")
    assert flagged.status_code == 201 and flagged.json()["study_id"] == randomised.study_id
    again = client.post(url, {"reason": "again"}, content_type="application/json")
    assert again.status_code == 400 and "already recorded" in str(again.json())
    not_randomised = reverse("api_randomised_in_error", args=[trial.slug, failed.study_id])
    assert client.post(not_randomised, {"reason": "x"},
                       content_type="application/json").status_code == 400


def test_the_upgrade_command_brings_older_participants_in_line(reminet_ready):
    from io import StringIO

    from django.core.management import call_command

    trial, coordinator = reminet_ready
    p = factories.eligible_participant(trial, by=coordinator, INC3=False)
    ok = factories.eligible_participant(trial, by=coordinator)
    # As before the upgrade: the failed participant left "screened".
    Participant.objects.filter(pk=p.pk).update(status=Status.SCREENED)
    out = StringIO()
    call_command("apply_screen_failures", stdout=out)
    assert "2 participant(s)" in out.getvalue() and "1 status(es) changed" in out.getvalue()
    assert Participant.objects.get(pk=p.pk).status == Status.SCREEN_FAILED
    assert Participant.objects.get(pk=ok.pk).status == Status.SCREENED
    assert Participant.objects.get(pk=p.pk).history.first().history_change_reason.startswith(
        "screening: status brought in line")
    call_command("apply_screen_failures", stdout=out)
    assert "0 status(es) changed" in out.getvalue()
