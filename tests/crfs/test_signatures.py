"""Electronic signatures (21 CFR 11.50, 11.70) and the status flow draft → complete → signed →
locked: who may sign and lock, what a signature stores and shows, and that it never stands on
changed data."""
from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from crfs import selectors, services
from crfs.models import CRFRecord, CRFSignature, CRFStatus, SignatureMeaning
from scheduling.services import save_crf_and_replan as save_crf
from tests.conftest import PASSWORD
from tests.crf_world import crf_url, demographics, record_url


def crf_signatures():
    """Signatures of CRFs, not investigators' confirmations of eligibility (the fixtures'
    participants are randomised, so their eligibility is confirmed)."""
    return CRFSignature.objects.exclude(meaning=SignatureMeaning.ELIGIBILITY)


def pdf_string(text: str) -> str:
    """``text`` as it appears in an uncompressed PDF page drawn in Helvetica (WinAnsi)."""
    return "".join(c if c.isascii() and c not in "()\\" else
                   "\\" + c if c.isascii() else "\\%03o" % c.encode("cp1252")[0] for c in text)


def sign(record, by, *, password=PASSWORD, meaning=SignatureMeaning.ACCURATE, **kwargs):
    return services.sign_crf(record, by=by, password=password, meaning=meaning, **kwargs)


def state_of(record):
    record = CRFRecord.objects.get(pk=record.pk)
    page = selectors.crf_page(record.participant, record.crf_code, record.visit)
    return [s.state for s in page.signatures]


# --------------------------------------------------------------------------- signing


def test_an_investigator_signs_a_complete_crf_with_their_password(complete, investigator):
    before = services.latest_version(complete)
    signature = sign(complete, investigator)
    record = CRFRecord.objects.get(pk=complete.pk)
    assert record.status == CRFStatus.SIGNED
    assert signature.signer == investigator
    assert signature.printed_name == "Irène Curie"
    assert signature.meaning == "accurate"
    assert signature.get_meaning_display() == "I confirm these data are accurate and complete"
    assert signature.signed_at.utcoffset() == dt.timedelta(0)  # an instant, stored in UTC
    assert signature.signed_version_id == before.history_id
    assert signature.signed_version.data == record.data
    assert AuditEvent.objects.filter(action="crf.signed").count() == 1
    assert record.history.first().history_user == investigator


def test_the_digest_is_the_sha256_of_the_canonical_content_signed(complete, investigator):
    signature = sign(complete, investigator)
    record = CRFRecord.objects.get(pk=complete.pk)
    canonical = json.dumps({"participant": record.participant.study_id, "crf_code": "demographics",
                            "visit": record.visit_id,
                            "protocol_version": record.protocol_version_id, "data": record.data},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert signature.digest == hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def test_a_wrong_password_signs_nothing(complete, investigator):
    with pytest.raises(ValidationError) as caught:
        sign(complete, investigator, password="not-my-password")
    assert caught.value.message_dict == {"password": ["The password is not correct."]}
    assert not crf_signatures().exists()
    assert CRFRecord.objects.get(pk=complete.pk).status == CRFStatus.COMPLETE


@pytest.mark.parametrize("meaning", ["", "approved-by-me"])
def test_a_signature_needs_one_of_the_stated_meanings(complete, investigator, meaning):
    with pytest.raises(ValidationError) as caught:
        sign(complete, investigator, meaning=meaning)
    assert "meaning" in caught.value.message_dict
    assert not crf_signatures().exists()


def test_a_draft_cannot_be_signed(participant, baseline, investigator):
    draft = save_crf(participant, "demographics", {"sex": "female"}, by=investigator,
                     complete=False, visit=baseline)
    with pytest.raises(ValidationError, match="Only a complete CRF can be signed"):
        sign(draft, investigator)


def test_a_signed_crf_is_not_signed_twice_and_a_locked_one_not_at_all(
        complete, investigator, data_manager):
    sign(complete, investigator)
    with pytest.raises(ValidationError, match="already signed"):
        sign(complete, investigator)
    services.lock_crf(complete, by=data_manager)
    with pytest.raises(ValidationError, match="locked"):
        sign(complete, investigator)
    assert crf_signatures().count() == 1


def test_only_an_investigator_of_the_participants_site_signs(
        complete, coordinator, data_manager, other_investigator):
    for user in (coordinator, data_manager, other_investigator):
        with pytest.raises(PermissionDenied):
            sign(complete, user)
    assert not crf_signatures().exists()


def test_the_signer_signs_the_version_they_were_shown(complete, investigator):
    shown = services.latest_version(complete).history_id
    save_crf(complete.participant, "demographics", demographics(complete.participant,
                                                                weight_kg="80.0"),
             by=investigator, complete=True, record=complete, reason="weighed again")
    with pytest.raises(ValidationError, match="changed since you opened it"):
        sign(complete, investigator, version=shown)
    assert not crf_signatures().exists()


def test_the_printed_name_is_the_name_at_the_time_of_signing(complete, investigator):
    signature = sign(complete, investigator)
    investigator.last_name = "Joliot-Curie"
    investigator.save()
    signature.refresh_from_db()
    assert signature.printed_name == "Irène Curie"


# --------------------------------------------------------------------------- never on changed data


def test_changing_a_signed_crf_needs_a_reason_and_voids_the_signature(complete, investigator):
    signature = sign(complete, investigator)
    p = complete.participant
    with pytest.raises(ValidationError) as caught:
        save_crf(p, "demographics", demographics(p, weight_kg="73.0"), by=investigator,
                 complete=True, record=complete)
    assert "reason" in caught.value.message_dict
    assert state_of(complete) == ["valid"]

    save_crf(p, "demographics", demographics(p, weight_kg="73.0"), by=investigator,
             complete=True, record=complete, reason="Transcription error, source says 73 kg")
    signature.refresh_from_db()
    assert signature.voided_at is not None and signature.voided_by == investigator
    assert signature.void_reason == "Transcription error, source says 73 kg"
    assert CRFRecord.objects.get(pk=complete.pk).status == CRFStatus.COMPLETE
    assert state_of(complete) == ["voided"]
    assert AuditEvent.objects.filter(action="crf.signature_voided").count() == 1


def test_a_raw_database_change_of_the_data_shows_the_signature_as_not_valid(
        complete, investigator, client, client_for):
    sign(complete, investigator)
    data = dict(CRFRecord.objects.get(pk=complete.pk).data, weight_kg="99.0")
    CRFRecord.objects.filter(pk=complete.pk).update(data=data)  # no page, no service: raw

    assert state_of(complete) == ["invalid"]
    client_for(investigator)
    html = client.get(crf_url(complete)).content.decode()
    assert 'data-testid="signature-invalid"' in html
    assert "not valid: the data changed after signing" in html
    pdf = client.get(record_url("crf_pdf", complete)).content.decode("latin-1")
    assert "NOT VALID: the data changed after signing" in pdf


def test_signing_again_after_a_change_gives_a_new_valid_signature(complete, investigator):
    sign(complete, investigator)
    p = complete.participant
    save_crf(p, "demographics", demographics(p, weight_kg="73.0"), by=investigator,
             complete=True, record=complete, reason="corrected")
    sign(complete, investigator, meaning=SignatureMeaning.REVIEWED)
    assert state_of(complete) == ["voided", "valid"]


# --------------------------------------------------------------------------- locking


def test_the_data_manager_locks_and_nobody_changes_a_locked_crf(
        complete, investigator, data_manager):
    sign(complete, investigator)
    services.lock_crf(complete, by=data_manager)
    record = CRFRecord.objects.get(pk=complete.pk)
    assert record.status == CRFStatus.LOCKED and record.locked_by == data_manager
    p = complete.participant
    with pytest.raises(ValidationError, match="locked"):
        save_crf(p, "demographics", demographics(p, weight_kg="60.0"), by=investigator,
                 complete=True, record=record, reason="late correction")
    assert CRFRecord.objects.get(pk=complete.pk).data["weight_kg"] == "71.5"


def test_unlocking_needs_a_reason_and_returns_to_signed_while_the_signature_stands(
        complete, investigator, data_manager):
    sign(complete, investigator)
    services.lock_crf(complete, by=data_manager)
    with pytest.raises(ValidationError) as caught:
        services.unlock_crf(complete, by=data_manager, reason="  ")
    assert "reason" in caught.value.message_dict
    record = services.unlock_crf(complete, by=data_manager, reason="Source verification found "
                                                                    "a typo")
    assert record.status == CRFStatus.SIGNED and record.locked_at is None
    assert record.history.first().history_change_reason == "Unlocked: Source verification found a typo"
    assert AuditEvent.objects.filter(action="crf.unlocked").count() == 1


def test_an_unsigned_crf_unlocks_to_complete(complete, data_manager):
    services.lock_crf(complete, by=data_manager)
    assert services.unlock_crf(complete, by=data_manager, reason="r").status == CRFStatus.COMPLETE


def test_what_cannot_be_locked_or_unlocked(participant, baseline, complete, investigator,
                                           data_manager):
    draft = save_crf(participant, "qlq_c30", {}, by=investigator, complete=False, visit=baseline)
    with pytest.raises(ValidationError, match="A draft cannot be locked"):
        services.lock_crf(draft, by=data_manager)
    with pytest.raises(ValidationError, match="not locked"):
        services.unlock_crf(complete, by=data_manager, reason="r")
    services.raise_query(complete, by=data_manager, field_path="weight_kg", text="Check")
    with pytest.raises(ValidationError, match="Close its open queries first"):
        services.lock_crf(complete, by=data_manager)
    for user in (investigator,):
        with pytest.raises(PermissionDenied):
            services.lock_crf(complete, by=user)


# --------------------------------------------------------------------------- pages


def test_the_signature_shows_name_date_time_and_meaning_on_the_page_and_every_printed_page(
        complete, investigator, data_manager, client, client_for):
    signature = sign(complete, investigator)
    client_for(data_manager)
    html = client.get(crf_url(complete)).content.decode()
    local = timezone.localtime(signature.signed_at)  # shown in TIME_ZONE (Europe/Paris)
    assert "Irène Curie" in html and f"{local:%Y-%m-%d %H:%M %Z}" in html
    assert "I confirm these data are accurate and complete" in html
    pdf = client.get(record_url("crf_pdf", complete))
    assert pdf["Content-Type"] == "application/pdf"
    text = pdf.content.decode("latin-1")
    line = pdf_string(f"Signed by Irène Curie, {local:%Y-%m-%d %H:%M %Z} "
                      f"({signature.signed_at:%H:%M} UTC): I confirm these data are accurate "
                      f"and complete")
    assert text.count(line) == text.count("/Type /Page\n") >= 1, "in the footer of every page"


def test_signing_on_the_page(complete, investigator, client, client_for):
    client_for(investigator)
    url = record_url("crf_sign", complete)
    page = client.get(url)
    assert "What you sign" in page.content.decode() and "71.5 kg" in page.content.decode()
    version = page.context["form"].initial["version"]

    wrong = client.post(url, {"meaning": "accurate", "password": "guess", "version": version})
    assert wrong.status_code == 400
    assert wrong.context["form"].errors == {"password": ["The password is not correct."]}
    missing = client.post(url, {"meaning": "", "password": "", "version": version})
    assert missing.status_code == 400 and set(missing.context["form"].errors) == {"meaning",
                                                                                  "password"}
    assert not crf_signatures().exists()

    done = client.post(url, {"meaning": "reviewed", "password": PASSWORD, "version": version})
    assert done.status_code == 302 and done.url == crf_url(complete)
    assert crf_signatures().get().meaning == "reviewed"


def test_signing_a_draft_on_the_page_says_why_not(participant, baseline, investigator, client, client_for):
    draft = save_crf(participant, "demographics", {"sex": "male"}, by=investigator,
                     complete=False, visit=baseline)
    client_for(investigator)
    url = record_url("crf_sign", draft)
    assert "Only a complete CRF can be signed" in client.get(url).content.decode()
    version = services.latest_version(draft).history_id
    response = client.post(url, {"meaning": "accurate", "password": PASSWORD, "version": version})
    assert response.status_code == 400
    assert "Only a complete CRF can be signed" in response.content.decode()


def test_lock_and_unlock_on_the_page(complete, data_manager, client, client_for):
    client_for(data_manager)
    assert client.post(record_url("crf_lock", complete)).status_code == 302
    page = client.get(crf_url(complete)).content.decode()
    assert "Locked" in page and "Unlock…" in page
    refused = client.post(record_url("crf_unlock", complete), {"reason": ""})
    assert refused.status_code == 400
    assert refused.context["unlock_form"].errors == {"reason": ["Give the reason."]}
    assert CRFRecord.objects.get(pk=complete.pk).status == CRFStatus.LOCKED
    again = client.post(record_url("crf_lock", complete))
    assert again.status_code == 400 and "already locked" in again.content.decode()
    assert client.post(record_url("crf_unlock", complete),
                       {"reason": "SDV correction"}).status_code == 302
    assert CRFRecord.objects.get(pk=complete.pk).status == CRFStatus.COMPLETE


def test_saving_a_locked_crf_on_the_page_is_refused_with_a_message(
        complete, coordinator, data_manager, client, client_for):
    services.lock_crf(complete, by=data_manager)
    client_for(coordinator)
    page = client.get(crf_url(complete))
    assert page.context["can"]["enter"] is False
    post = {k: v for k, v in demographics(complete.participant).items() if v is not None}
    post.update({"sex": "female", "ecog": "0", "metastatic_sites": "liver", "action": "complete",
                 "reason": "try"})
    response = client.post(crf_url(complete), post)
    assert response.status_code == 400
    assert "This CRF is locked by the data manager" in response.content.decode()
    assert CRFRecord.objects.get(pk=complete.pk).data["sex"] == "male"


def test_another_sites_investigator_gets_404_on_every_crf_route(complete, other_investigator,
                                                                client, client_for):
    client_for(other_investigator)
    assert client.get(crf_url(complete)).status_code == 404
    for name in ("crf_sign", "crf_history", "crf_pdf"):
        assert client.get(record_url(name, complete)).status_code == 404, name
    for name in ("crf_sign", "crf_lock", "crf_unlock", "query_raise"):
        assert client.post(record_url(name, complete), {}).status_code == 404, name
    p = complete.participant
    assert client.get(reverse("crf_sign", args=[p.trial.slug, p.study_id, 999999])) \
        .status_code == 404


def test_every_page_of_a_long_printout_carries_the_signature(participant, investigator,
                                                             data_manager, client, client_for):
    from patients.models import Visit

    follow_up = Visit.objects.filter(participant=participant, code="follow_up").first()
    day = timezone.localdate().isoformat()
    events = [{"term": f"Event {i}", "grade": 1, "serious": False, "attribution": "unrelated",
               "start_date": day, "ongoing": False, "end_date": day} for i in range(45)]
    record = save_crf(participant, "adverse_events", {"any_event": True, "events": events},
                      by=investigator, complete=False, visit=follow_up)
    record = save_crf(participant, "adverse_events", record.data, by=investigator,
                      complete=True, record=record)
    sign(record, investigator)
    client_for(data_manager)
    text = client.get(record_url("crf_pdf", record)).content.decode("latin-1")
    pages = text.count("/Type /Page\n")
    assert pages >= 3
    assert text.count(pdf_string("Signed by Irène Curie, ")) == pages
