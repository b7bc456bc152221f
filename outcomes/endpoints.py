"""Time-to-event endpoints per participant (overall survival, progression-free survival, time to
progression), derived from the CRFs as the protocol file's ``endpoints`` section defines them.

For each randomised participant and endpoint: the time in months from the origin
(randomisation), whether the event was observed, the event or censoring date and why. Rules:

- **Month** = days / (365.25 / 12) = 30.4375 days: the calendar month on average.
- **Event**: the earliest date among the endpoint's ``events`` sources (``crfs.sources``): a
  protocol event (``{event: progression}``) stands for every record that shows it - the
  progression form, a tumour assessment whose derived response is PD, and so on as the
  protocol's ``events[].shown_by`` lists them - so a progression seen on a scan is progression
  for PFS whether or not its form is entered yet (``crfs.agreement`` raises the query that asks
  for it). A CRF source counts only when its ``when`` condition holds on the same CRF (a
  choice, or any of a multiple choice's values, e.g. progression site = metastatic) and, when
  it names ``arms``, only in those arms (rectal TTP: primary-tumour progression counts in arm B
  only).
- **Censoring**: a participant without the event is censored at the latest date of the
  endpoint's ``censoring.last_evidence`` (visits done, dated CRF fields, each counted only
  when its ``when`` holds, like an event's): the last date they were known alive (OS) or free
  of progression (PFS, TTP). OS reads the last-news form's contact date only when it says
  "alive", so a form reporting a death is never evidence of life. Evidence dated before randomisation
  (the baseline scan) counts as day 0; no evidence at all censors at day 0.
- **Horizon**: the protocol's follow-up (``horizon_months``, else ``trial.follow_up_months``).
  An event after it, or evidence past it, is censored at the horizon (administrative
  censoring): rectal 24 months, REMINET 60.
- Only CRFs completed, signed or locked count: a draft is not data yet.
- **Partial dates** (a date field with ``partial``): a date known to the month or the year only
  counts only when the protocol states how to impute it (``partial.impute``: first day, middle,
  last day; ``crfs.missing_data.impute``); then the value records the rule (``imputed``) and
  the outcomes' methods say so. Without a rule such a date is unknown, as if not given.

Set-wise: three queries for a whole trial, whatever its size (allocations, CRF records, last
visit done), asserted in the tests.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from django.db.models import Max, QuerySet
from django.utils import timezone

from crfs.models import CRFRecord, CRFStatus
from crfs.sources import endpoint_event_sources, hits, impute_rule
from patients.models import Visit, VisitStatus, counted
from patients.windows import as_date
from randomisation.models import Allocation
from trials.models import Site, Trial

DAYS_PER_MONTH = 365.25 / 12
VISITS_DONE = "visits_done"
ANALYSED_STATUSES = [CRFStatus.COMPLETE, CRFStatus.SIGNED, CRFStatus.LOCKED]


def months_between(start: dt.date, end: dt.date) -> float:
    return (end - start).days / DAYS_PER_MONTH


@dataclass(frozen=True)
class EndpointValue:
    """One participant's value of one time-to-event endpoint."""

    participant_id: int
    study_id: str
    arm_code: str
    randomised_on: dt.date
    months: float
    event: bool
    date: dt.date   # the event date, or the censoring date
    reason: str     # the event's label, or why and where it was censored
    strata: dict = field(default_factory=dict)   # factor -> level, as recorded at randomisation
    imputed: str | None = None  # the imputation rule, when the date is an imputed partial date


def endpoint_definitions(trial: Trial) -> list[dict]:
    return list(trial.definition.get("endpoints", []))


def horizon_of(trial: Trial, endpoint: dict) -> int:
    return endpoint.get("horizon_months") or trial.definition["trial"]["follow_up_months"]


def strata_of(trial: Trial, endpoint: dict) -> list[str]:
    """The factors an endpoint's log-rank test and Cox model are stratified by: the endpoint's
    ``strata`` when the protocol names them, else the randomisation's own (site first when
    stratified by site, then the stratification factors), as ``Allocation.strata`` records them."""
    if "strata" in endpoint:
        return list(endpoint["strata"])
    definition = trial.definition
    factors = ["site"] if definition["randomisation"].get("stratify_by_site") else []
    return factors + [f["code"] for f in definition.get("stratification_factors", [])]


def derive_endpoints(trial: Trial, *, sites: QuerySet[Site] | None = None,
                     codes: list[str] | None = None) -> dict[str, list[EndpointValue]]:
    """Every randomised participant's value of each endpoint (``codes``: only those), in study
    ID order; ``sites`` restricts to participants of those sites (the reader's scope)."""
    endpoints = [e for e in endpoint_definitions(trial) if codes is None or e["code"] in codes]
    # Test participants (registered in test mode) are analysed nowhere: ``counted``.
    allocations = Allocation.objects.filter(counted("participant__"), trial=trial)
    records = CRFRecord.objects.filter(counted("participant__"), participant__trial=trial,
                                       status__in=ANALYSED_STATUSES)
    visits = Visit.objects.filter(counted("participant__"), participant__trial=trial,
                                  status=VisitStatus.DONE)
    if sites is not None:
        allocations = allocations.filter(participant__site__in=sites)
        records = records.filter(participant__site__in=sites)
        visits = visits.filter(participant__site__in=sites)
    subjects = list(allocations.order_by("participant__study_id").values_list(
        "participant_id", "participant__study_id", "arm__code", "randomised_at", "strata"))
    if not endpoints or not subjects:
        return {e["code"]: [] for e in endpoints}

    sources_of = {e["code"]: endpoint_event_sources(trial.definition, e) for e in endpoints}
    crf_codes = set()
    uses_visits = False
    for endpoint in endpoints:
        crf_codes |= {source["crf"] for source in sources_of[endpoint["code"]]}
        for source in endpoint["censoring"]["last_evidence"]:
            if source == VISITS_DONE:
                uses_visits = True
            else:
                crf_codes.add(source["crf"])
    data_of: dict[tuple[int, str], list[dict]] = {}
    for participant_id, crf_code, data in records.filter(crf_code__in=crf_codes).values_list(
            "participant_id", "crf_code", "data"):
        data_of.setdefault((participant_id, crf_code), []).append(data or {})
    last_visit: dict[int, dt.date] = {}
    if uses_visits:
        last_visit = dict(visits.values("participant_id").annotate(last=Max("done_on"))
                          .values_list("participant_id", "last"))

    result: dict[str, list[EndpointValue]] = {}
    for endpoint in endpoints:
        horizon = horizon_of(trial, endpoint)
        values = []
        for participant_id, study_id, arm_code, randomised_at, strata in subjects:
            randomised_on = timezone.localdate(randomised_at)
            values.append(_value(endpoint, sources_of[endpoint["code"]], horizon, participant_id, study_id, arm_code,
                                 randomised_on, data_of, last_visit.get(participant_id),
                                 strata or {}, trial.definition))
        result[endpoint["code"]] = values
    return result


def _value(endpoint: dict, sources: list[dict], horizon: int, participant_id: int, study_id: str, arm_code: str,
           randomised_on: dt.date, data_of: dict[tuple[int, str], list[dict]],
           last_visit: dt.date | None, strata: dict,
           definition: dict | None = None) -> EndpointValue:
    def make(day: dt.date, event: bool, reason: str, imputed: str | None) -> EndpointValue:
        months = max(0.0, months_between(randomised_on, day))
        if months > horizon:
            day = randomised_on + dt.timedelta(days=round(horizon * DAYS_PER_MONTH))
            return EndpointValue(participant_id, study_id, arm_code, randomised_on,
                                 float(horizon), False, day,
                                 f"censored at the end of follow-up ({horizon} months)", strata)
        return EndpointValue(participant_id, study_id, arm_code, randomised_on, months, event,
                             max(day, randomised_on), reason, strata, imputed)

    def read(source: dict, data: dict) -> list[tuple[dt.date, str | None]]:
        rule = impute_rule(definition or {}, source)
        return [(h.date, rule if h.imputed else None) for h in hits(source, data, impute=rule)
                if h.date is not None]

    events: list[tuple[dt.date, str, str | None]] = []
    for source in sources:
        if source.get("arms") and arm_code not in source["arms"]:
            continue
        for data in data_of.get((participant_id, source["crf"]), []):
            events += [(d, source.get("label") or source["crf"], rule or "")
                       for d, rule in read(source, data)]
    if events:
        day, label, rule = min(events)
        return make(day, True, label, rule or None)

    evidence: list[tuple[dt.date, str, str]] = []
    for source in endpoint["censoring"]["last_evidence"]:
        if source == VISITS_DONE:
            if last_visit is not None:
                evidence.append((last_visit, "last visit done", ""))
            continue
        for data in data_of.get((participant_id, source["crf"]), []):
            evidence += [(d, f"{source['crf']}.{source['field']}", rule or "")
                         for d, rule in read(source, data)]
    if not evidence:
        return make(randomised_on, False, "censored at randomisation: no follow-up recorded",
                    None)
    day, where, rule = max(evidence)
    return make(day, False, f"censored at the last evidence ({where})", rule or None)
