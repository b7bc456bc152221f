"""Is a participant eligible? Read from the protocol's ``eligibility`` CRF.

Convention of the protocol files: the ``eligibility`` CRF has one required yes/no field per
criterion, with the criterion's code; "yes" means the criterion holds. Eligible means every
inclusion criterion answered yes and every exclusion criterion answered no.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from patients.models import Participant

from .models import CRFRecord, CRFStatus

ELIGIBILITY_CRF = "eligibility"


@dataclass(frozen=True)
class Eligibility:
    complete: bool                         # every criterion answered, and the CRF completed
    met: bool                              # complete and every criterion as required
    unanswered: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)   # the criteria that exclude

    @property
    def eligible(self) -> bool:
        return self.complete and self.met


def eligibility_record(participant: Participant):
    """The participant's eligibility CRF record, or None: one at most, as for every form not
    tied to a visit (``CRFRecord``'s ``one_crf_outside_visits``)."""
    return (CRFRecord.objects.filter(participant=participant, crf_code=ELIGIBILITY_CRF)
            .order_by("pk").first())


def evaluate(participant: Participant, record=None) -> Eligibility:
    record = record if record is not None else eligibility_record(participant)
    criteria = participant.definition["eligibility"]
    data = record.data if record is not None else {}
    unanswered = [c["code"] for c in criteria if data.get(c["code"]) is None]
    failed = [c for c in criteria if data.get(c["code"]) is not None
              and bool(data[c["code"]]) != (c["kind"] == "inclusion")]
    complete = (record is not None and record.status != CRFStatus.DRAFT and not unanswered)
    return Eligibility(complete=complete, met=complete and not failed,
                       unanswered=unanswered, failed=failed)
