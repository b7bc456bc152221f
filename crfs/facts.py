"""The dates a participant's CRFs establish: randomisation, the protocol's anchors (surgery, first
injection…) and events (progression, end of treatment, death…), and the status they give.

Read from the CRFs the protocol names, by the visit planner (``scheduling``), randomisation and
the edit checks of ``crfs.services``. An anchor counts as soon as its date is saved, an event
once its CRF is completed.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple

from django.utils import timezone

from patients.consent import withdrawal_rules
from patients.models import WITHDRAWAL_ORDER, Participant, Withdrawal, WithdrawalLevel
from patients.status import derived_status
from patients.windows import as_date

from .models import CRFRecord, CRFStatus
from .sources import dates

RANDOMISATION = "randomisation"  # the anchor every protocol has: day 0


def randomisation_date(allocation) -> dt.date:
    """Day 0: the randomisation's calendar day in the trials' time zone."""
    return timezone.localdate(allocation.randomised_at)


@dataclass(frozen=True)
class Facts:
    randomised_on: dt.date
    anchors: dict[str, dt.date]   # every known anchor date, randomisation included
    events: dict[str, dt.date]    # events whose CRF is completed, with their dates
    status: str | None = None     # the status these facts give (``participant_status``)
    # Withdrawal level → the date it takes effect; a level includes those below it, so a
    # withdrawal of consent also stops visits and treatment from its date (``withdrawn_from``).
    withdrawals: Mapping[str, dt.date] = field(default_factory=dict)


def withdrawn_from(recorded: Iterable[tuple[str, dt.date]]) -> dict[str, dt.date]:
    """Each level's date of effect: the earliest withdrawal at that level or a further one."""
    recorded = list(recorded)
    out = {}
    for i, level in enumerate(WITHDRAWAL_ORDER):
        days = [day for lvl, day in recorded if WITHDRAWAL_ORDER.index(lvl) >= i]
        if days:
            out[str(level)] = min(days)
    return out


def fact_crfs(definition: dict) -> set[str]:
    """The CRFs whose answers the schedule depends on: those of the anchors and events."""
    return ({a["source"]["crf"] for a in definition.get("anchors", [])}
            | {e["source"]["crf"] for e in definition.get("events", [])})


class FactRecord(NamedTuple):
    crf_code: str
    status: str
    data: dict


def fact_records(participant: Participant, *, also: Iterable[str] = ()) -> list[FactRecord]:
    """The participant's records of the CRFs the schedule depends on (``fact_crfs``) and of
    ``also``, oldest first (one query)."""
    codes = fact_crfs(participant.definition) | set(also)
    if not codes:
        return []
    return [FactRecord(*row) for row in
            CRFRecord.objects.filter(participant_id=participant.pk, crf_code__in=codes)
            .order_by("created_at", "pk").values_list(*FactRecord._fields)]


def read_facts(participant: Participant, allocation,
               records: list[FactRecord] | None = None, *,
               withdrawals: Iterable[tuple[str, dt.date]] | None = None) -> Facts:
    """The dates the schedule hangs on, read from the CRFs the protocol names (one query).

    An anchor counts as soon as its date is saved, draft or not: the coordinator wants the
    post-operative visits as soon as the surgery date is known. An event counts only once its
    CRF is completed, because it ends visits. ``records``: ``fact_records``, when the caller
    has already read them. ``withdrawals``: (level, date) pairs, read when not given (one
    query); a withdrawal from study treatment (or further) counts as the protocol's
    ``withdrawal.treatment_event`` (REMINET: end of study treatment, so survival follow-up
    starts from it); a withdrawal from study treatment or visits puts the participant in
    follow-up, a withdrawal of consent makes them withdrawn.
    """
    definition = participant.definition
    randomised_on = randomisation_date(allocation)
    anchors = definition.get("anchors", [])
    events = definition.get("events", [])
    crfs = fact_crfs(definition)
    records = [r for r in (fact_records(participant) if records is None else records)
               if r.crf_code in crfs]

    def earliest(source: dict, completed_only: bool) -> dt.date | None:
        return min((day for code, status, data in records
                    if code == source["crf"] and not (completed_only and status == CRFStatus.DRAFT)
                    for day in dates(source, data)), default=None)

    known = {RANDOMISATION: randomised_on}
    for anchor in anchors:
        day = earliest(anchor["source"], completed_only=False)
        if day is not None:
            known[anchor["code"]] = day
    happened = {}
    for event in events:
        day = earliest(event["source"], completed_only=True)
        if day is not None:
            happened[event["code"]] = day
    if withdrawals is None:
        withdrawals = Withdrawal.objects.filter(participant_id=participant.pk).values_list(
            "level", "withdrawn_on")
    withdrawn = withdrawn_from(withdrawals)
    treatment_event = withdrawal_rules(definition).get("treatment_event")
    if treatment_event and WithdrawalLevel.TREATMENT in withdrawn:
        day = withdrawn[WithdrawalLevel.TREATMENT]
        happened[treatment_event] = min(day, happened.get(treatment_event, day))
    statuses = [a["participant_status"] for a in anchors
                if a["code"] in known and a.get("participant_status")]
    for event in events:
        rule = event.get("participant_status")
        if not rule or event["code"] not in happened:
            continue
        if isinstance(rule, dict):  # read from a choice on the event's CRF (end of study)
            answer = next((data.get(rule["field"]) for code, status, data in records
                           if code == event["source"]["crf"] and status != CRFStatus.DRAFT
                           and as_date(data.get(event["source"]["field"]))
                           == happened[event["code"]]), None)
            rule = rule["values"].get(answer, rule["otherwise"])
        statuses.append(rule)
    if WithdrawalLevel.TREATMENT in withdrawn:
        statuses.append("follow_up")  # off study treatment, still followed
    if WithdrawalLevel.CONSENT in withdrawn:
        statuses.append("withdrawn")
    return Facts(randomised_on, known, happened, derived_status(statuses), withdrawn)
