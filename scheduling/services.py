"""Visit schedules: created at randomisation, recomputed when an anchor date changes.

``create_schedule`` is called by ``randomisation.services.randomise`` inside the transaction
that writes the allocation, so a participant is never randomised without a schedule.
``apply_crf`` runs after every CRF save (``save_crf_and_replan``, which the pages, the API and
the demo call): a CRF that
carries an anchor date (surgery, first injection…) reschedules the visits hanging on it, and a
completed event CRF (progression, end of treatment, death…) ends the visits the protocol says
it ends. The coordinator's own actions are ``record_visit_done``, ``mark_visit_missed``,
``mark_visit_not_applicable``, ``reopen_visit`` and ``add_unscheduled_visit``.

How a schedule is computed, in three steps that each do one thing:

1. ``read_facts``: the dates the schedule depends on — randomisation, every anchor whose date
   is recorded on its CRF (earliest date if several records), every event whose CRF is
   completed.
2. ``plan_schedule``: a pure function from the protocol, the arm and those facts to the list
   of visits there should be, each with its window (``visit_window``, the one place where
   dates are computed). Visits hanging on an anchor whose date is not known yet are *not*
   planned: they appear when the date is entered (the timeline lists them as waiting).
   A repetition runs to its ``until`` (counted from its anchor) or, without one, to the end of
   follow-up (``trial.follow_up_months`` after randomisation): REMINET's 28-day injections are
   planned to month 60 and ended by events, never left open-ended.
3. ``_reconcile``: brings the stored visits in line with the plan. Planned visits get their
   new dates; visits done, missed, or closed by a person are never touched; visits the plan no
   longer wants become "not applicable" (``closed_by`` names the event or ``schedule``), and
   come back if the cause is corrected. Nothing is deleted; every change is in the visit's
   history and, for reschedules, in the audit log.

The plan covers the whole follow-up, but visits are *created* only up to a rolling planning
horizon (``SCHEDULE_PLANNING_MONTHS``, 6 months ahead of today by default):
``Participant.schedule_planned_through`` records how far, and the daily ``extend_schedules``
job creates the next occurrences as that date comes nearer (a month before it). Planning to
the end of follow-up at randomisation wrote 51 visits and their history rows for a REMINET
participant inside the randomisation's transaction, most of them years away and most later
ended by progression; now it writes about ten. Every visit that exists is reconciled against
the whole plan, so a visit moved past the horizon by a new anchor date keeps its new dates.

Because the plan depends only on recorded facts, recomputing it is idempotent: the same facts
give the same schedule, however often and in whatever order the triggers run.

Languages: errors shown to the user who acts (``ValidationError``) are translated with
``gettext`` in the request's language. What is stored stays in English on purpose, one language
for the record whoever reads it later: visit status reasons written by the schedule, deviation
descriptions, void reasons, history change reasons and audit-log messages.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _, ngettext
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from core import audit, limits
from core.dates import shown_date
from core.history import change_reason
from crfs import screening, services as crfs
from crfs.facts import RANDOMISATION, FactRecord, Facts, randomisation_date, read_facts
from crfs.models import CRFRecord, DataQuery
from patients import status as participant_status
from patients import services as participants
from patients.consent import withdrawal_rules
from patients.locks import refuse_change
from patients.models import (Deviation, DeviationRule, Participant, Visit, VisitStatus,
                             Withdrawal, WithdrawalLevel)
from patients.windows import Window, add_months, as_date, visit_window
from safety import services as safety
from supply import services as supply
from trials import policy
from trials.models import definition_of
from trials.policy import Perm

UNSCHEDULED = "unscheduled"
CLOSED_BY_SCHEDULE = "schedule"  # ``Visit.closed_by`` when no event, but the plan, closed it
MAX_OCCURRENCES = 500            # a guard: no protocol repeats a visit more often than this
EXTEND_MARGIN_DAYS = 30          # extend a schedule when less than horizon − this is created


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class PlannedVisit:
    code: str
    label: str
    occurrence: int
    anchor_code: str
    anchor_date: dt.date
    window: Window
    crfs: tuple[str, ...]
    stopped_by: str | None = None  # the event after which this occurrence would fall
    stopped_on: dt.date | None = None  # that event's date


WITHDRAWAL_PREFIX = "withdrawal:"  # ``stopped_by`` / ``Visit.closed_by`` for a withdrawal level


def withdrawal_stops(definition: dict, template_code: str, facts: Facts
                     ) -> list[tuple[dt.date, str]]:
    """The withdrawals that end a visit template, as (date, ``withdrawal:<level>``).

    From study treatment: the protocol's ``withdrawal.treatment_visits``. From visits: every
    visit but its ``withdrawal.vital_status_visits`` (survival follow-up). Consent withdrawn:
    every visit (no data is collected after it).
    """
    rules = withdrawal_rules(definition)
    ends = {WithdrawalLevel.TREATMENT: template_code in rules.get("treatment_visits", []),
            WithdrawalLevel.VISITS: template_code not in rules.get("vital_status_visits", []),
            WithdrawalLevel.CONSENT: True}
    return [(facts.withdrawals[level], WITHDRAWAL_PREFIX + level)
            for level, ended in ends.items() if ended and level in facts.withdrawals]


def stop_label(definition: dict, code: str) -> str:
    """What ended a visit, for its stored reason: English (see the module docstring)."""
    if code.startswith(WITHDRAWAL_PREFIX):
        return {"treatment": "Withdrawal from study treatment",
                "visits": "Withdrawal from visits (vital-status follow-up allowed)",
                "consent": "Withdrawal of consent"}.get(code[len(WITHDRAWAL_PREFIX):], code)
    return next((e["label"] for e in definition.get("events", []) if e["code"] == code), code)


def plan_schedule(definition: dict, arm_code: str, facts: Facts) -> list[PlannedVisit]:
    """Every visit the participant should have, given the protocol, their arm and the facts.

    Occurrences after an ending event are returned with ``stopped_by`` set (they become "not
    applicable" if they exist; they are not created if they do not).
    """
    follow_up = definition["trial"].get("follow_up_months")
    horizon = add_months(facts.randomised_on, follow_up) if follow_up else None
    events = {e["code"]: e for e in definition.get("events", [])}
    ends_all = [(facts.events[code], code) for code, e in events.items()
                if e.get("ends_all_visits") and code in facts.events]
    planned: list[PlannedVisit] = []
    for template in definition["visits"]:
        if template.get("arms") and arm_code not in template["arms"]:
            continue
        anchor_code, anchor_date = anchor_of(template, facts)
        if anchor_date is None:
            continue  # scheduled once the anchor's date is recorded
        repeat = template.get("repeat")
        stops = ends_all + [(facts.events[code], code) for code in
                            (repeat or {}).get("until_event", []) if code in facts.events]
        stops += withdrawal_stops(definition, template["code"], facts)
        # On the same day, the withdrawal is named rather than the event it counts as.
        stop = min(stops, default=None,
                   key=lambda s: (s[0], not s[1].startswith(WITHDRAWAL_PREFIX)))
        last = None
        if repeat:
            last = _shift(anchor_date, repeat["until"]) if "until" in repeat else horizon
        for n in range(1, (MAX_OCCURRENCES if repeat else 1) + 1):
            window = visit_window(anchor_date, template["offset"], template["window"],
                                  every=(repeat or {}).get("every"), occurrence=n)
            if last is not None and window.target > last:
                break
            stopped = stop is not None and window.target > stop[0]
            planned.append(PlannedVisit(template["code"], template["label"], n,
                                        anchor_code, anchor_date, window,
                                        tuple(template["crfs"]),
                                        stop[1] if stopped else None,
                                        stop[0] if stopped else None))
    return planned


def anchor_of(template: dict, facts: Facts) -> tuple[str, dt.date | None]:
    """The code and date a visit template hangs on, (first code, None) while none is known.

    ``anchor`` names an anchor (randomisation, surgery, first injection) or an event
    (progression...), or a list of them: the visit then hangs on whichever is dated first
    (survival follow-up "after progression or end of treatment", DESIGN.md). An event gives a
    date once its CRF is completed, like the events that end visits.
    """
    codes = template["anchor"] if isinstance(template["anchor"], list) else [template["anchor"]]
    known = [(day, code) for code in codes
             for day in (facts.anchors.get(code), facts.events.get(code)) if day is not None]
    if not known:
        return codes[0], None
    day, code = min(known)
    return code, day


def _shift(day: dt.date, duration: Mapping[str, int]) -> dt.date:
    """``day`` + a protocol duration ({months, days}), by the same rule as ``visit_window``."""
    return add_months(day, duration.get("months", 0)) + dt.timedelta(days=duration.get("days", 0))


def pending_anchors(participant: Participant, arm_code: str, facts: Facts) -> list[dict]:
    """Anchors with visits waiting for their date: [{code, label, visits: [labels]}]. A visit
    hanging on the first of several anchors or events waits under the first one's code."""
    definition = participant.definition
    labels = {a["code"]: a["label"]
              for a in definition.get("anchors", []) + definition.get("events", [])}
    waiting: dict[tuple[str, ...], list[str]] = {}
    for template in definition["visits"]:
        if template.get("arms") and arm_code not in template["arms"]:
            continue
        if anchor_of(template, facts)[1] is None:
            codes = template["anchor"]
            codes = tuple(codes) if isinstance(codes, list) else (codes,)
            waiting.setdefault(codes, []).append(template["label"])
    result = []
    for codes, visits in waiting.items():
        label = labels.get(codes[0], codes[0])
        for code in codes[1:]:  # a visit that hangs on whichever event comes first
            label = _("%(first)s or %(other)s") % {"first": label,
                                                   "other": labels.get(code, code)}
        result.append({"code": codes[0], "label": label, "visits": visits})
    return result


# --------------------------------------------------------------------------- reconcile


@dataclass
class ScheduleChange:
    """What one reconciliation did, for the audit log and the tests."""

    created: list[Visit] = field(default_factory=list)
    moved: list[tuple[Visit, dt.date]] = field(default_factory=list)  # (visit, old target)
    closed: list[Visit] = field(default_factory=list)
    reopened: list[Visit] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.moved or self.closed or self.reopened)

    def summary(self) -> str:
        """For the audit log: English, like every stored text (see the module docstring)."""
        parts = []
        for n, what in ((len(self.created), "added"), (len(self.moved), "moved"),
                        (len(self.closed), "made not applicable"),
                        (len(self.reopened), "planned again")):
            if n:
                parts.append(f"{n} {what}")
        return ", ".join(parts) or "no change"


def _set_dates(visit: Visit, p: PlannedVisit) -> bool:
    new = (p.anchor_date, p.window.target, p.window.opens, p.window.closes)
    old = (visit.anchor_date, visit.target_date, visit.window_opens, visit.window_closes)
    if new == old:
        return False
    (visit.anchor_date, visit.target_date, visit.window_opens, visit.window_closes) = new
    return True


def planning_horizon(today: dt.date) -> dt.date:
    """The last target date for which visits are created now (see the module docstring)."""
    return add_months(today, settings.SCHEDULE_PLANNING_MONTHS)


def _reconcile(participant: Participant, arm_code: str, facts: Facts, *, by,
               reason: str, today: dt.date | None = None, first: bool = False,
               ) -> ScheduleChange:
    """Make the stored visits match ``plan_schedule``. Callers hold the participant's lock.

    Planned occurrences past the planning horizon are not created yet; the participant's
    ``schedule_planned_through`` says up to where they are (NULL once the whole plan exists).
    ``first``: the schedule is being created at randomisation, so no visit exists yet (every
    visit needs a randomised participant), and the caller saves ``schedule_planned_through``
    with the participant's new status, in one statement.
    """
    definition = participant.definition
    plan = plan_schedule(definition, arm_code, facts)
    # A visit row keeps the protocol's first language, whoever's request plans it; pages show
    # the reader's language from the definition.
    stored_labels = {v["code"]: v["label"] for v in
                     definition_of(participant.protocol_version_id, first_language=True)["visits"]}
    through = planning_horizon(today or timezone.localdate())
    deferred = False
    existing = {} if first else {
        (v.code, v.occurrence): v for v in Visit.objects.filter(participant=participant)}
    change = ScheduleChange()
    to_update: list[Visit] = []
    wanted = set()
    for p in plan:
        key = (p.code, p.occurrence)
        wanted.add(key)
        visit = existing.get(key)
        if p.stopped_by:
            if visit is not None and visit.status == VisitStatus.PLANNED:
                _close(visit, p.stopped_by,
                       f"{stop_label(definition, p.stopped_by)} on {p.stopped_on:%Y-%m-%d}")
                change.closed.append(visit)
                to_update.append(visit)
            continue
        if visit is None:
            if p.window.target > through:
                deferred = True  # created by ``extend_schedules`` when its date comes nearer
                continue
            visit = Visit(participant=participant, code=p.code, label=stored_labels[p.code],
                          occurrence=p.occurrence, anchor_code=p.anchor_code,
                          anchor_date=p.anchor_date, target_date=p.window.target,
                          window_opens=p.window.opens, window_closes=p.window.closes,
                          crfs=list(p.crfs))
            change.created.append(visit)
        elif visit.status == VisitStatus.PLANNED:
            old_target = visit.target_date
            if _set_dates(visit, p):
                change.moved.append((visit, old_target))
                to_update.append(visit)
        elif visit.status == VisitStatus.NOT_APPLICABLE and visit.closed_by:
            # Closed by the schedule, and the cause is gone (an event date corrected, an anchor
            # moved back): the visit is planned again.
            _set_dates(visit, p)
            visit.status, visit.closed_by, visit.status_reason = VisitStatus.PLANNED, "", ""
            change.reopened.append(visit)
            to_update.append(visit)
        # done, missed, or closed by a person: never touched.
    ends_all = [(day, code) for code, day in facts.events.items()
                if any(e["code"] == code and e.get("ends_all_visits")
                       for e in definition.get("events", []))]
    if WithdrawalLevel.VISITS in facts.withdrawals:  # unscheduled visits end with the visits
        ends_all.append((facts.withdrawals[WithdrawalLevel.VISITS],
                         WITHDRAWAL_PREFIX + WithdrawalLevel.VISITS))
    first_end = min(ends_all, default=None)
    for key, visit in existing.items():
        if visit.status != VisitStatus.PLANNED or key in wanted:
            continue
        if visit.unscheduled:
            if first_end is None or visit.target_date <= first_end[0]:
                continue
            _close(visit, first_end[1],
                   f"{stop_label(definition, first_end[1])} on {first_end[0]:%Y-%m-%d}")
        else:
            # No longer in the plan: its anchor moved so that it falls past the horizon.
            _close(visit, CLOSED_BY_SCHEDULE, "no longer in the schedule: " + reason)
        change.closed.append(visit)
        to_update.append(visit)
    if change.created:
        bulk_create_with_history(change.created, Visit, default_user=_user(by),
                                 default_change_reason=change_reason(reason))
    if to_update:
        bulk_update_with_history(
            to_update, Visit, ["anchor_date", "target_date", "window_opens", "window_closes",
                               "status", "closed_by", "status_reason", "updated_at"],
            default_user=_user(by), default_change_reason=change_reason(reason))
    planned_through = through if deferred else None
    if participant.schedule_planned_through != planned_through:
        # Bookkeeping, not clinical data: no history row (the visits created have theirs).
        participant.schedule_planned_through = planned_through
        if not first:
            Participant.objects.filter(pk=participant.pk).update(
                schedule_planned_through=planned_through)
    return change


def _close(visit: Visit, closed_by: str, reason: str) -> None:
    # ``reason`` is stored (``status_reason``): English, see the module docstring.
    visit.status = VisitStatus.NOT_APPLICABLE
    visit.closed_by = closed_by
    visit.status_reason = reason
    visit.updated_at = timezone.now()


def _user(by):
    return by if getattr(by, "is_authenticated", False) else None


# --------------------------------------------------------------------------- triggers


def create_schedule(allocation, records: list[FactRecord] | None = None) -> list[Visit]:
    """Create the participant's visits from the protocol template for their arm.

    Runs inside ``randomise``'s transaction, which then saves the participant's status and
    ``schedule_planned_through`` (set here) together. Anchors already recorded (rare: a CRF
    entered before randomisation) are used when they are not before randomisation.
    ``records``: as for ``read_facts``, when ``randomise`` has read them already.
    """
    participant = allocation.participant
    # No withdrawal exists before randomisation (``patients.services.record_withdrawal``).
    facts = read_facts(participant, allocation, records, withdrawals=())
    facts = Facts(facts.randomised_on,
                  {k: v for k, v in facts.anchors.items() if v >= facts.randomised_on},
                  facts.events)
    change = _reconcile(participant, allocation.arm.code, facts, by=allocation.randomised_by,
                        reason="schedule created at randomisation", first=True)
    return change.created


def extend_schedules(today: dt.date | None = None) -> int:
    """Create the visits that came within the planning horizon. Returns how many.

    The daily beat job (and ``manage.py extend_schedules``). Each participant is extended in a
    transaction of its own under their lock, by the same reconciliation as every other trigger,
    so a run that stops half-way, or two runs at once, leave nothing to repair: the next run
    carries on. A participant is due a month before their created visits run out.
    """
    today = today or timezone.localdate()
    due = planning_horizon(today) - dt.timedelta(days=EXTEND_MARGIN_DAYS)
    created = 0
    pending = (Participant.objects.filter(schedule_planned_through__lt=due)
               .order_by("pk").values_list("pk", flat=True))
    for pk in pending.iterator(chunk_size=500):
        with transaction.atomic():
            participant = _lock(Participant(pk=pk))
            if participant.schedule_planned_through is None or \
                    participant.schedule_planned_through >= due:
                continue  # extended meanwhile by another run or a CRF save
            allocation = _allocation_of(participant)
            if allocation is None:
                continue
            facts = read_facts(participant, allocation)
            change = _reconcile(participant, allocation.arm.code, facts, by=None,
                                reason="schedule extended to the planning horizon", today=today)
            created += len(change.created)
    return created


def _allocation_of(participant: Participant):
    """The participant's allocation with its arm, None before randomisation. Read through the
    relation ``randomisation`` declares (the layer above, which calls ``create_schedule``):
    the schedule depends on the arm, not on how it was allocated. No query after ``_lock``."""
    try:
        return participant.allocation
    except ObjectDoesNotExist:
        return None


def _lock(participant: Participant) -> Participant:
    """Serialise schedule changes of one participant (two saves of a CRF, a coordinator's
    click). Only the participant row is locked (``of``), not the joined rows."""
    return (Participant.objects.select_for_update(of=("self",))
            .select_related("trial", "site", "allocation__arm").get(pk=participant.pk))


@transaction.atomic
def reschedule_from(participant: Participant, anchor_code: str, *, by,
                    reason: str = "") -> ScheduleChange:
    """Recompute the schedule after ``anchor_code``'s date was entered or corrected.

    Planned visits hanging on the anchor move; done ones stay where they were. The change is
    written to the audit log with each visit's old and new target date.
    """
    participant = _lock(participant)
    allocation = _allocation_of(participant)
    if allocation is None:
        raise ValidationError(_("%(id)s is not randomised: there is no schedule.") % {
            "id": participant.study_id})
    facts = read_facts(participant, allocation)
    definition = participant.definition
    if anchor_code != RANDOMISATION and anchor_code not in {
            a["code"] for a in definition.get("anchors", [])}:
        raise ValidationError(_("Unknown anchor %(anchor)s in this protocol.") % {
            "anchor": repr(anchor_code)})
    before = {v.anchor_date for v in Visit.objects.filter(participant=participant,
                                                          anchor_code=anchor_code)}
    change = _reconcile(participant, allocation.arm.code, facts, by=by,
                        reason=reason or f"{anchor_code} date changed")
    if change:
        _audit_change(participant, change, by=by, reason=reason,
                      title=_anchor_title(definition, anchor_code, before,
                                          facts.anchors.get(anchor_code)))
    return change


def _anchor_title(definition: dict, code: str, before: set, after: dt.date | None) -> str:
    """For the audit log: English (see the module docstring)."""
    label = next((a["label"] for a in definition.get("anchors", []) if a["code"] == code),
                 "Randomisation" if code == RANDOMISATION else code)
    old = ", ".join(sorted(f"{d:%Y-%m-%d}" for d in before)) or "not recorded"
    new = f"{after:%Y-%m-%d}" if after else "not recorded"
    if not before:
        return f"{label} date recorded ({new})"
    return f"{label} date changed from {old} to {new}"


def _audit_change(participant: Participant, change: ScheduleChange, *, by, reason: str,
                  title: str) -> None:
    detail = {
        "created": [[v.code, v.occurrence, f"{v.target_date:%Y-%m-%d}"] for v in change.created],
        "moved": [[v.code, v.occurrence, f"{old:%Y-%m-%d}", f"{v.target_date:%Y-%m-%d}"]
                  for v, old in change.moved],
        "closed": [[v.code, v.occurrence, v.closed_by] for v in change.closed],
        "reopened": [[v.code, v.occurrence] for v in change.reopened],
    }
    audit.record("visits.rescheduled",
                 f"{participant.study_id}: {title}; visits {change.summary()}."
                 + (f" Reason: {reason}" if reason else ""),
                 actor=by, trial=participant.trial, obj=participant, detail=detail,
                 participant=participant)


def apply_crf(record, *, by, reason: str = "") -> ScheduleChange | None:
    """Run by ``save_crf_and_replan`` (inside its transaction) after every save of a CRF record.

    If the CRF carries an anchor date, the visits hanging on it are recomputed; if it is a
    completed event CRF, the visits the event ends become not applicable. Dates that cannot be
    right raise ``ValidationError`` naming the field, and the CRF save is rolled back with it.
    CRFs that carry neither cost no query.
    """
    participant = record.participant
    definition = participant.definition
    anchors = [a for a in definition.get("anchors", []) if a["source"]["crf"] == record.crf_code]
    events = [e for e in definition.get("events", []) if e["source"]["crf"] == record.crf_code]
    if not anchors and not events:
        return None
    participant = _lock(participant)
    allocation = _allocation_of(participant)
    if allocation is None:
        return None  # not randomised: ``create_schedule`` will read these dates
    randomised_on = randomisation_date(allocation)
    today = timezone.localdate()
    errors: dict[str, str] = {}
    for item in anchors + events:
        name = item["source"]["field"]
        day = as_date(record.data.get(name))
        if day is None:
            continue
        names = {"label": item["label"], "day": shown_date(day),
                 "randomised_on": shown_date(randomised_on)}
        if day < randomised_on:
            errors[name] = _("%(label)s: %(day)s is before randomisation (%(randomised_on)s); "
                             "visits are scheduled from it, so it must be on or after that "
                             "day.") % names
        elif day > today:
            errors[name] = _("%(label)s: %(day)s is in the future.") % names
    if errors:
        raise ValidationError(errors)
    facts = read_facts(participant, allocation)
    for anchor in anchors:
        if anchor["code"] not in facts.anchors and Visit.objects.filter(
                participant=participant, anchor_code=anchor["code"]).exists():
            raise ValidationError({anchor["source"]["field"]: _(
                "%(label)s: visits are scheduled from this date; correct it rather than "
                "removing it.") % {"label": anchor["label"]}})
    for event in events:
        day = facts.events.get(event["code"])
        if day is None or not event.get("ends_all_visits"):
            continue
        later = (Visit.objects.filter(participant=participant, status=VisitStatus.DONE,
                                      done_on__gt=day).order_by("-done_on").first())
        if later is not None:
            raise ValidationError({event["source"]["field"]: _(
                "%(label)s: %(day)s is before the visit “%(visit)s” recorded as done on "
                "%(done_on)s.") % {"label": event["label"], "day": shown_date(day),
                                   "visit": later.title, "done_on": shown_date(later.done_on)}})
    before = {a["code"]: {v for v in Visit.objects.filter(participant=participant,
                                                          anchor_code=a["code"])
                          .values_list("anchor_date", flat=True)} for a in anchors}
    change = _reconcile(participant, allocation.arm.code, facts, by=by,
                        reason=reason or f"{record.crf_code} saved")
    participant_status.apply_derived(participant, facts.status, by=by,
                                     why=f"{record.crf_code} saved")
    if change:
        titles = [_anchor_title(definition, a["code"], before[a["code"]],
                                facts.anchors.get(a["code"])) for a in anchors
                  if before[a["code"]] != ({facts.anchors[a["code"]]}
                                           if a["code"] in facts.anchors else set())]
        titles += [f"{e['label']} on {facts.events[e['code']]:%Y-%m-%d}" for e in events
                   if e["code"] in facts.events]
        _audit_change(participant, change, by=by, reason=reason,
                      title="; ".join(titles) or f"{record.crf_code} saved")
    return change


@transaction.atomic
def save_crf_and_replan(participant: Participant, crf_code: str, data: dict, *, by,
                        complete: bool, reason: str = "", record: CRFRecord | None = None,
                        visit: Visit | None = None) -> CRFRecord:
    """Save CRF data (``crfs.services.save_crf``), then bring the schedule and the participant's
    status in line with it (``apply_crf``), in one transaction: a CRF carrying an anchor date
    (surgery, first injection) or a completed event (progression, end of treatment, death)
    reschedules or ends visits, and a date the schedule refuses (before randomisation…) refuses
    the save too; the eligibility form makes a participant a screen failure or not. What the
    CRF page, the API and the demo call.

    After a withdrawal of consent to further data collection, no new form is collected at a
    visit due after it (the visit is not applicable; data collected before it is kept)."""
    limits.REASON.check(reason, field="reason")
    if record is None and visit is not None:
        withdrawn = (Withdrawal.objects.filter(participant=participant,
                                               level=WithdrawalLevel.CONSENT,
                                               withdrawn_on__lt=visit.target_date)
                     .values_list("withdrawn_on", flat=True).first())
        if withdrawn is not None:
            raise ValidationError(_(
                "%(id)s withdrew consent to further data collection on %(date)s: no form is "
                "collected at a visit due after it.") % {"id": participant.study_id,
                                                         "date": shown_date(withdrawn)})
    record = crfs.save_crf(participant, crf_code, data, by=by, complete=complete, reason=reason,
                           record=record, visit=visit)
    # The injection form's kit must be the kit assigned at its visit (supply): then dispensed.
    supply.record_dispensing(record, by=by)
    apply_crf(record, by=by, reason=reason.strip())
    # A serious event, a death: its SAE report opens now, the 24-hour clock with it.
    safety.open_from_record(record, by=by)
    # The eligibility form decides screen failure (``crfs.screening``).
    screening.apply_eligibility(record, by=by)
    return record


@transaction.atomic
def answer_query_and_replan(query: DataQuery, *, by, text: str, correction: dict | None = None,
                            complete: bool = True) -> DataQuery:
    """A site's answer to a data query (``crfs.services.answer_query``); a correction it carries
    is a CRF save, so the schedule follows it as after ``save_crf_and_replan``."""
    limits.QUERY_TEXT.check(text, field="text")
    query = crfs.answer_query(query, by=by, text=text, correction=correction, complete=complete)
    if correction is not None:
        supply.record_dispensing(query.record, by=by)
        apply_crf(query.record, by=by, reason=f"Query #{query.pk}: {text.strip()}")
        safety.open_from_record(query.record, by=by)
        screening.apply_eligibility(query.record, by=by, why=f"query #{query.pk} answered")
    return query


@transaction.atomic
def record_consent_and_replan(participant: Participant, *, by, **consent) -> Participant:
    """Record a consent (``patients.services.record_consent``); a re-consent that moved the
    participant to the trial's current protocol version re-plans their visits from it: the
    new version's visits and forms from now on, visits done and CRFs captured under the old
    version kept as they were (each CRF keeps its protocol version). What the pages, the API
    and the demo call."""
    if not policy.has_perm(by, Perm.SCREEN, participant.trial, participant.site):
        raise PermissionDenied(_("You may not record consent for this participant."))
    before = participant.protocol_version_id
    participant = participants.record_consent(participant, by=by, **consent)
    if participant.protocol_version_id != before:
        replan(participant, by=by,
               reason=f"re-consented: protocol version {participant.trial.current_version.label}")
    return participant


@transaction.atomic
def record_withdrawal_and_replan(participant: Participant, *, by, level: str,
                                 withdrawn_on: dt.date, reason: str) -> Withdrawal:
    """Record a withdrawal (``patients.services.record_withdrawal``) and end the visits its
    level ends: from study treatment, the protocol's treatment visits (and the treatment event
    it counts as starts survival follow-up); from visits, all but the vital-status follow-up;
    consent withdrawn, all. Refused, with nothing written, when a visit it would end is
    already recorded as done after the withdrawal's date. Reminders of the ended visits are
    not sent (they are not planned any more)."""
    if not policy.has_perm(by, Perm.SCREEN, participant.trial, participant.site):
        raise PermissionDenied(_("You may not record a withdrawal for this participant."))
    withdrawal = participants.record_withdrawal(participant, by=by, level=level,
                                                withdrawn_on=withdrawn_on, reason=reason)
    participant = _lock(participant)
    allocation = _allocation_of(participant)
    facts = read_facts(participant, allocation)
    ended = {(p.code, p.occurrence) for p in
             plan_schedule(participant.definition, allocation.arm.code, facts) if p.stopped_by}
    done = [v for v in Visit.objects.filter(participant=participant, status=VisitStatus.DONE,
                                            done_on__gt=withdrawn_on).order_by("done_on")
            if (v.code, v.occurrence) in ended or (v.unscheduled and level != "treatment")]
    if done:
        raise ValidationError({"withdrawn_on": _(
            "The withdrawal is dated %(date)s, before the visit “%(visit)s” recorded as done "
            "on %(done_on)s, which it would end.") % {
            "date": shown_date(withdrawn_on), "visit": done[0].title,
            "done_on": shown_date(done[0].done_on)}})
    replan(participant, by=by, reason=f"withdrawal ({level}) from {withdrawn_on:%Y-%m-%d}",
           facts=facts)
    return withdrawal


def replan(participant: Participant, *, by, reason: str, facts: Facts | None = None
           ) -> ScheduleChange | None:
    """Bring a randomised participant's visits and status in line with their protocol version
    and facts (after a re-consent or a withdrawal). Callers run in a transaction; None before
    randomisation (there is no schedule yet)."""
    participant = _lock(participant)
    allocation = _allocation_of(participant)
    if allocation is None:
        return None
    facts = facts or read_facts(participant, allocation)
    change = _reconcile(participant, allocation.arm.code, facts, by=by, reason=reason)
    participant_status.apply_derived(participant, facts.status, by=by, why=reason)
    if change:
        _audit_change(participant, change, by=by, reason="", title=reason)
    return change


# --------------------------------------------------------------------------- coordinator actions


def _require(by, participant: Participant) -> None:
    if not policy.has_perm(by, Perm.SCHEDULE_VISITS, participant.trial, participant.site):
        raise PermissionDenied(_("You may not change visits of this participant."))


def _locked_visit(visit: Visit) -> Visit:
    return Visit.objects.select_for_update(of=("self",)).select_related(
        "participant__trial", "participant__site").get(pk=visit.pk)


def _save(visit: Visit, by, reason: str, fields: Iterable[str]) -> None:
    visit._history_user = _user(by)
    visit._change_reason = change_reason(reason) if reason else None
    visit.save(update_fields=[*fields, "updated_at"])


def _earliest_done_on(visit: Visit, randomised_on: dt.date) -> tuple[dt.date, str]:
    """A visit cannot be done before randomisation, except one whose window opens before it
    (the baseline visit, days -14 to 0), which cannot be done before screening."""
    if visit.window_opens < randomised_on:
        return visit.participant.screened_on, "screening"
    return randomised_on, "randomisation"


@transaction.atomic
def record_visit_done(visit: Visit, *, done_on: dt.date, by, reason: str = "") -> Visit:
    """Record that the visit took place on ``done_on``. Outside the window, a deviation is
    recorded (rule, days early or late). Changing the date of a visit already done needs a
    reason; its earlier deviation, if any, is voided rather than deleted."""
    limits.REASON.check(reason, field="reason")
    visit = _locked_visit(visit)
    participant = visit.participant
    _require(by, participant)
    refuse_change(participant)
    allocation = _allocation_of(participant)
    randomised_on = randomisation_date(allocation)
    earliest, after_what = _earliest_done_on(visit, randomised_on)
    reason = (reason or "").strip()
    if not isinstance(done_on, dt.date):
        raise ValidationError({"done_on": _("Give the date the visit took place.")})
    if done_on > timezone.localdate():
        raise ValidationError({"done_on": _("The visit date cannot be in the future.")})
    if done_on < earliest:
        too_early = (_("The visit date %(date)s is before screening (%(earliest)s).")
                     if after_what == "screening" else
                     _("The visit date %(date)s is before randomisation (%(earliest)s)."))
        raise ValidationError({"done_on": too_early % {"date": shown_date(done_on),
                                                       "earliest": shown_date(earliest)}})
    if visit.status == VisitStatus.NOT_APPLICABLE:
        raise ValidationError({"action": _("This visit is not applicable; reopen it first.")})
    if visit.status == VisitStatus.DONE:
        if visit.done_on == done_on:
            return visit
        if not reason:
            raise ValidationError({"reason": _(
                "The visit is recorded as done on %(date)s; give the reason for correcting the "
                "date.") % {"date": shown_date(visit.done_on)}})
    corrected = visit.status == VisitStatus.DONE
    visit.status, visit.done_on = VisitStatus.DONE, done_on
    visit.status_reason = reason if corrected else ""
    _save(visit, by, reason or "visit done", ["status", "done_on", "status_reason"])
    _check_window(visit, by=by, voiding_reason=reason)
    return visit


def _check_window(visit: Visit, *, by, voiding_reason: str) -> Deviation | None:
    """Void the visit's open window deviation if any, then record one if the date is outside."""
    # The void reason and the description are stored: English (see the module docstring).
    for old in Deviation.objects.filter(visit=visit, rule=DeviationRule.VISIT_WINDOW,
                                        voided_at__isnull=True):
        old.voided_at = timezone.now()
        old.void_reason = f"done date corrected to {visit.done_on:%Y-%m-%d}: {voiding_reason}"
        old._history_user = _user(by)
        old.save(update_fields=["voided_at", "void_reason"])
    if visit.window_opens <= visit.done_on <= visit.window_closes:
        return None
    if visit.done_on < visit.window_opens:
        days = (visit.done_on - visit.window_opens).days  # negative: early
        where = f"{-days} day(s) before its window opened"
    else:
        days = (visit.done_on - visit.window_closes).days
        where = f"{days} day(s) after its window closed"
    deviation = Deviation(
        participant=visit.participant, visit=visit, rule=DeviationRule.VISIT_WINDOW,
        days_outside=days, detected_by=_user(by),
        description=(f"{visit.title} done on {visit.done_on:%Y-%m-%d}, {where} "
                     f"(window {visit.window_opens:%Y-%m-%d} to {visit.window_closes:%Y-%m-%d})."))
    deviation._history_user = _user(by)
    deviation.save()
    audit.record("deviation.detected", f"{visit.participant.study_id}: {deviation.description}",
                 actor=by, trial=visit.participant.trial, obj=deviation,
                 participant=visit.participant)
    return deviation


def _need_reason(reason: str, missing: str) -> str:
    """``reason`` stripped; ``missing`` (a whole translated sentence) when it is empty."""
    limits.REASON.check(reason, field="reason")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": missing})
    return reason


@transaction.atomic
def mark_visit_missed(visit: Visit, *, by, reason: str) -> Visit:
    """The visit did not take place. Only once its window has opened: a visit that will not
    take place at all is "not applicable"."""
    visit = _locked_visit(visit)
    _require(by, visit.participant)
    refuse_change(visit.participant)
    reason = _need_reason(reason, _("Give the reason the visit is not done."))
    if visit.status != VisitStatus.PLANNED:
        raise ValidationError({"action": _(
            "Only a planned visit can be marked not done (this one is %(status)s).") % {
            "status": visit.get_status_display().lower()}})
    if timezone.localdate() < visit.window_opens:
        raise ValidationError({"action": _(
            "The window opens on %(date)s: the visit cannot be missed yet. Mark it not "
            "applicable if it will not take place.") % {
            "date": shown_date(visit.window_opens)}})
    visit.status, visit.status_reason = VisitStatus.MISSED, reason
    _save(visit, by, reason, ["status", "status_reason"])
    return visit


@transaction.atomic
def mark_visit_not_applicable(visit: Visit, *, by, reason: str) -> Visit:
    visit = _locked_visit(visit)
    _require(by, visit.participant)
    refuse_change(visit.participant)
    reason = _need_reason(reason, _("Give the reason the visit is not applicable."))
    if visit.status not in (VisitStatus.PLANNED, VisitStatus.MISSED):
        raise ValidationError({"action": _(
            "Only a planned or missed visit can be made not applicable (this one is "
            "%(status)s).") % {"status": visit.get_status_display().lower()}})
    visit.status, visit.status_reason, visit.closed_by = VisitStatus.NOT_APPLICABLE, reason, ""
    _save(visit, by, reason, ["status", "status_reason", "closed_by"])
    return visit


@transaction.atomic
def reopen_visit(visit: Visit, *, by, reason: str) -> Visit:
    """Plan again a visit a person marked missed or not applicable (a mistake corrected)."""
    visit = _locked_visit(visit)
    _require(by, visit.participant)
    refuse_change(visit.participant)
    reason = _need_reason(reason, _("Give the reason the visit is planned again."))
    if visit.status not in (VisitStatus.MISSED, VisitStatus.NOT_APPLICABLE):
        raise ValidationError({"action": _(
            "Only a missed or not applicable visit can be reopened.")})
    if visit.closed_by:
        # ``status_reason`` is the schedule's own (stored, English) reason.
        raise ValidationError({"action": _(
            "The schedule closed this visit (%(reason)s); correct that date instead.") % {
            "reason": visit.status_reason}})
    visit.status, visit.status_reason = VisitStatus.PLANNED, reason
    _save(visit, by, reason, ["status", "status_reason"])
    return visit


@transaction.atomic
def add_unscheduled_visit(participant: Participant, *, on: dt.date, reason: str, by,
                          crfs: Iterable[str] = ()) -> Visit:
    """An extra visit outside the protocol schedule (a toxicity check, a patient's call).

    Its window is its day; it is numbered after the participant's earlier unscheduled visits.
    """
    limits.REASON.check(reason, field="reason")
    participant = _lock(participant)
    _require(by, participant)
    refuse_change(participant)
    allocation = _allocation_of(participant)
    if allocation is None:
        raise ValidationError(_("%(id)s is not randomised: there is no schedule.") % {
            "id": participant.study_id})
    reason = (reason or "").strip()
    errors = {}
    randomised_on = randomisation_date(allocation)
    if not isinstance(on, dt.date):
        errors["on"] = _("Give the date of the visit.")
    elif on < randomised_on:
        errors["on"] = _("The date %(date)s is before randomisation (%(randomised_on)s).") % {
            "date": shown_date(on), "randomised_on": shown_date(randomised_on)}
    if not reason:
        errors["reason"] = _("Give the reason for the unscheduled visit.")
    known = {c["code"] for c in participant.definition["crfs"]}
    unknown = [c for c in crfs if c not in known]
    if unknown:
        errors["crfs"] = ngettext("Unknown CRF: %(codes)s.", "Unknown CRFs: %(codes)s.",
                                  len(unknown)) % {"codes": ", ".join(unknown)}
    if errors:
        raise ValidationError(errors)
    number = Visit.objects.filter(participant=participant, unscheduled=True).count() + 1
    # The label is stored with the visit (like the protocol's own labels): English.
    visit = Visit(participant=participant, code=UNSCHEDULED, label="Unscheduled visit",
                  occurrence=number, anchor_code="", anchor_date=on, target_date=on,
                  window_opens=on, window_closes=on, crfs=list(crfs), unscheduled=True,
                  status_reason=reason)
    visit._history_user = _user(by)
    visit._change_reason = change_reason(reason)
    visit.save()
    return visit
