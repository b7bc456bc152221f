"""The API tells the truth about signatures: a signed record answers whether its signature
still holds, decided as its page and PDF decide (``crfs.selectors.signature_views``)."""
from __future__ import annotations

from django.urls import reverse
from django.utils import timezone

from crfs import services as crfs
from crfs.models import CRFRecord, CRFSignature
from tests.conftest import PASSWORD


def _signed(places, make_user):
    """The own site's eligibility record, signed by an investigator of the site."""
    record = places.own.record
    if not CRFSignature.objects.filter(record=record, voided_at=None).exists():
        crfs.close_query(places.own.query, by=places.data_manager)
        investigator = make_user("investigator", places.trial, places.own.site)
        crfs.sign_crf(CRFRecord.objects.get(pk=record.pk), by=investigator, password=PASSWORD,
                      meaning="accurate")
    return CRFRecord.objects.get(pk=record.pk)


def _read(places, api, record):
    url = reverse("api_crf", args=[places.trial.slug, places.own.participant.study_id,
                                   record.pk])
    response = api(places.data_manager).get(url)
    assert response.status_code == 200
    return response.json()


def test_a_signature_is_valid_while_the_data_are_those_signed(places, make_user, api):
    record = _signed(places, make_user)
    body = _read(places, api, record)
    assert body["signature"]["status"] == "signed"
    assert body["signature"]["valid"] is True and body["signature"]["reason"] is None
    assert all(set(s) >= {"meaning", "signed_by", "signed_at", "status", "valid", "reason"}
               for s in body["signatures"])


def test_data_changed_behind_the_application_make_the_signature_invalid(places, make_user, api):
    """As an attacker with database access would: the row changed, no history, no voiding."""
    record = _signed(places, make_user)
    CRFRecord.objects.filter(pk=record.pk).update(
        data={**record.data, "screening_date": "2020-01-01"})
    body = _read(places, api, record)
    assert body["signature"]["status"] == "signed"
    assert body["signature"]["valid"] is False
    assert "data changed after signing" in body["signature"]["reason"]
    listed = api(places.data_manager).get(reverse(
        "api_crfs", args=[places.trial.slug, places.own.participant.study_id])).json()
    row = next(r for r in listed["results"] if r["id"] == record.pk)
    assert row["signature"]["valid"] is False


def test_a_voided_signature_says_so_with_its_reason(places, make_user, api):
    record = _signed(places, make_user)
    CRFSignature.objects.filter(record=record, voided_at=None).update(
        voided_at=timezone.now(), void_reason="Corrected after a query.")
    body = _read(places, api, record)
    assert body["signature"]["status"] == "voided" and body["signature"]["valid"] is False
    assert "Corrected after a query." in body["signature"]["reason"]


def test_an_unsigned_record_has_no_signature(places, api, make_user):
    trial, participant = places.trial, places.own.participant
    url = reverse("api_crfs", args=[trial.slug, participant.study_id])
    rows = api(places.data_manager).get(url).json()["results"]
    unsigned = [r for r in rows if not r["signatures"]]
    assert all(r["signature"] is None for r in unsigned)
