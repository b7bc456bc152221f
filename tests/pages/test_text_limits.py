"""Every free text a page takes has its limit (``core.limits``): over it, the page answers 400
with the message next to the box, and nothing is written. The boxes say their limit
(``maxlength``)."""
from __future__ import annotations

from django.urls import reverse

from crfs import services
from crfs.models import CRFStatus, DataQuery, QueryMessage
from patients.models import Withdrawal
from tests.crf_world import crf_url, demographics, record_url, query_url

LONG = "x" * 20_000


def test_a_query_of_20000_characters_is_refused_with_the_limit(complete, data_manager,
                                                               client_for):
    client = client_for(data_manager)
    page = client.get(crf_url(complete)).content.decode()
    assert 'maxlength="2000"' in page  # the question's box
    response = client.post(record_url("query_raise", complete),
                           {"field_path": "weight_kg", "text": LONG})
    assert response.status_code == 400
    assert ("The query text is 20,000 characters; at most 2,000 are allowed."
            in response.content.decode())
    assert not DataQuery.objects.exists()


def test_an_answer_over_the_limit_is_refused_and_the_query_stays_open(
        complete, data_manager, investigator, client_for):
    query = services.raise_query(complete, by=data_manager, field_path="weight_kg",
                                 text="Source says 75 kg?")
    response = client_for(investigator).post(query_url("query_answer", query),
                                             {"text": "y" * 2_001})
    assert response.status_code == 400
    assert ("The query text is 2,001 characters; at most 2,000 are allowed."
            in response.content.decode())
    query.refresh_from_db()
    assert query.status == "open" and QueryMessage.objects.filter(query=query).count() == 1


def test_a_change_reason_over_the_limit_is_refused_and_the_crf_unchanged(complete, investigator,
                                                                        client_for):
    versions = complete.history.count()
    answers = {k: v for k, v in demographics(complete.participant, weight_kg="80.0").items()
               if v is not None}
    response = client_for(investigator).post(crf_url(complete),
                                             {**answers, "action": "complete", "reason": LONG})
    assert response.status_code == 400
    assert ("The reason is 20,000 characters; at most 1,000 are allowed."
            in response.content.decode())
    complete.refresh_from_db()
    assert complete.history.count() == versions and complete.data["weight_kg"] == "71.5"


def test_an_unlock_reason_over_the_limit_leaves_the_crf_locked(complete, data_manager,
                                                              client_for):
    services.lock_crf(complete, by=data_manager)
    response = client_for(data_manager).post(record_url("crf_unlock", complete),
                                             {"reason": LONG})
    assert response.status_code == 400
    assert "at most 1,000 are allowed" in response.content.decode()
    complete.refresh_from_db()
    assert complete.status == CRFStatus.LOCKED


def test_a_withdrawal_reason_over_the_limit_is_refused(participant, coordinator, client_for):
    url = reverse("record_withdrawal", args=[participant.trial.slug, participant.study_id])
    client = client_for(coordinator)
    assert 'maxlength="1000"' in client.get(url).content.decode()
    response = client.post(url, {"level": "treatment", "reason": LONG,
                                 "withdrawn_on": participant.screened_on.isoformat()})
    assert response.status_code == 400
    assert ("The reason is 20,000 characters; at most 1,000 are allowed."
            in response.content.decode())
    assert not Withdrawal.objects.exists()
