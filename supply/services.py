"""Moving kits: shipments, receipt, the kit assigned at each dispensing visit, its dispensing
as the injection form records it, replacements, quarantine, returns and destruction.

Each step changes the kit's ``status`` and writes a ``KitEvent`` in one transaction, so the
accountability log (``selectors.accountability``) is the kit's whole life. Which arm a
participant is on is not read here: the caller that knows it (``randomisation``) passes it, and
every earlier kit of the participant must agree. The kit list itself is generated and sealed
with the allocation list's rules (``randomisation.kitlist``).

Messages shown to sites never name an arm: a blinded coordinator reads "no usable kit for this
participant", not which treatment is missing.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from core import audit, limits
from core.dates import shown_date
from core.notify import enqueue, notify
from patients.locks import refuse_change
from patients.models import Participant, Visit, VisitStatus
from trials import policy
from trials.models import Arm, Site, Trial
from trials.policy import Perm

from .models import (
    Excursion,
    Kit,
    KitAssignment,
    KitEvent,
    KitEventKind,
    KitListStatus,
    KitRelease,
    KitStatus,
    ReceiptOutcome,
    ReleaseKind,
    ResupplyRequest,
    Shipment,
    ShipmentKit,
    ShipmentStatus,
)


class SupplyError(ValidationError):
    """A supply step refused, with what to do; nothing was written."""

    def __init__(self, message, code: str, params: dict | None = None):
        super().__init__(message, code=code)
        self.code, self.params = code, params or {}


def settings_of(trial: Trial) -> dict | None:
    """The protocol's supply settings when the trial dispenses kits, else None."""
    supply = trial.definition.get("supply") or {}
    return supply if supply.get("kits") else None


def _settings_or_error(trial: Trial) -> dict:
    settings = settings_of(trial)
    if settings is None:
        raise SupplyError(_("%(trial)s dispenses no kits (its protocol declares no product "
                            "supply).") % {"trial": trial.short_title}, code="no_supply")
    return settings


def _require(by, perm: Perm, trial: Trial, site: Site | None = None) -> None:
    if not policy.has_perm(by, perm, trial, site):
        raise SupplyError(_("You are not allowed to do this."), code="forbidden")


def normalise_number(number: str) -> str:
    """Kit numbers are typed from labels: spaces around and lower case do not matter."""
    return (number or "").strip().upper()


def _event(kit: Kit, kind: str, *, by, at: dt.datetime, **where) -> KitEvent:
    return KitEvent(kit=kit, kind=kind, at=at, by=by if getattr(by, "pk", None) else None,
                    **where)


def _set(kits: Iterable[Kit], **fields) -> None:
    kits = list(kits)
    for kit in kits:
        for name, value in fields.items():
            setattr(kit, name, value)
    Kit.objects.bulk_update(kits, list(fields))


# --- shipments -----------------------------------------------------------------------------

def depot_of(trial: Trial, code: str | None) -> dict:
    depots = _settings_or_error(trial)["depots"]
    if code is None:
        return depots[0]
    for depot in depots:
        if depot["code"] == code:
            return depot
    raise SupplyError(_("Unknown depot %(code)s: the protocol's depots are %(known)s.") % {
        "code": repr(code), "known": ", ".join(d["code"] for d in depots)}, code="bad_depot")


@transaction.atomic
def dispatch_shipment(trial: Trial, *, site: Site, quantities: Mapping[str, int], by,
                      depot: str | None = None, request: ResupplyRequest | None = None,
                      note: str = "") -> Shipment:
    """Send kits of each arm (``quantities``: arm code -> number) from the depot to ``site``.

    The depot's kits of sealed lists are taken earliest expiry first, among those that will
    not expire before they could be used (later than the delivery time from today). The
    shipment lists its kits by number only: mixed, they reveal no arm to the site."""
    limits.NOTE.check(note, field="note")
    settings = _settings_or_error(trial)
    _require(by, Perm.MANAGE_SUPPLY, trial)
    depot_code = depot_of(trial, depot)["code"]
    if site.trial_id != trial.pk:
        raise SupplyError(_("%(site)s is not a site of this trial.") % {"site": site.code},
                          code="bad_site")
    arms = {a.code: a for a in Arm.objects.filter(trial=trial)}
    problems = []
    for code, n in quantities.items():
        if code not in arms:
            problems.append(_("unknown arm %(arm)s") % {"arm": repr(code)})
        elif isinstance(n, bool) or not isinstance(n, int) or n < 0:
            problems.append(_("the number of kits of %(arm)s must be a whole number, 0 or "
                              "more") % {"arm": code})
    if problems:
        raise SupplyError("; ".join(problems) + ".", code="bad_quantities")
    if not any(quantities.values()):
        raise SupplyError(_("A shipment needs at least one kit."), code="empty_shipment")
    if request is not None and (request.site_id != site.pk or request.closed_at is not None):
        raise SupplyError(_("This resupply request is not open for %(site)s.") % {
            "site": site.code}, code="bad_request")
    now = timezone.now()
    usable_after = timezone.localdate() + dt.timedelta(days=settings["resupply"]["lead_time_days"])
    chosen: list[Kit] = []
    for code, n in sorted(quantities.items()):
        if not n:
            continue
        kits = list(Kit.objects.select_for_update(skip_locked=True)
                    .filter(trial=trial, arm=arms[code], status=KitStatus.AT_DEPOT,
                            kit_list__status=KitListStatus.SEALED, expires_on__gt=usable_after)
                    .order_by("expires_on", "number")[:n])
        if len(kits) < n:
            raise SupplyError(_(
                "The depot has %(have)s usable kits of %(arm)s (expiring after %(date)s); %(n)s "
                "were asked for: a new kit list (batch) is needed.") % {
                    "have": len(kits), "arm": code, "n": n, "date": shown_date(usable_after)},
                code="depot_short", params={"arm": code})
        chosen += kits
    Trial.objects.select_for_update().filter(pk=trial.pk).first()  # numbers shipments in order
    number = (Shipment.objects.filter(trial=trial).aggregate(n=Max("number"))["n"] or 0) + 1
    shipment = Shipment.objects.create(trial=trial, number=number, depot=depot_code, site=site,
                                       dispatched_at=now, dispatched_by=by, request=request,
                                       note=note.strip())
    chosen.sort(key=lambda k: k.number)
    ShipmentKit.objects.bulk_create([ShipmentKit(shipment=shipment, kit=k) for k in chosen])
    _set(chosen, status=KitStatus.IN_TRANSIT, shipment=shipment, site=None)
    KitEvent.objects.bulk_create([_event(k, KitEventKind.SHIPPED, by=by, at=now, site=site,
                                         shipment=shipment) for k in chosen])
    if request is not None:
        ResupplyRequest.objects.filter(pk=request.pk).update(closed_at=now)
    audit.record("supply.shipment_dispatched",
                 f"Shipment {number} of {len(chosen)} kits dispatched from {depot_code} to "
                 f"{site.code}.", actor=by, trial=trial, obj=shipment,
                 detail={"quantities": dict(quantities)})
    notify(policy_recipients(trial, Perm.RECEIVE_SUPPLY, site),
           _("[%(trial)s] Shipment %(n)s is on its way to %(site)s") % {
               "trial": trial.short_title, "n": number, "site": site.code},
           _("Shipment %(n)s of %(count)s kits left %(depot)s for your site. Confirm its "
             "receipt in the trial's supply pages, kit by kit.") % {
                 "n": number, "count": len(chosen), "depot": depot_code})
    return shipment


def policy_recipients(trial: Trial, perm: Perm, site: Site | None = None) -> list[str]:
    """E-mail addresses of the active members holding ``perm`` in ``trial`` (at ``site``)."""
    from trials.models import Membership

    members = (Membership.objects.filter(trial=trial, active=True, role__in=policy.roles_with(perm),
                                         user__is_active=True)
               .exclude(user__email=""))
    if site is not None:
        members = members.filter(site__isnull=True) | members.filter(site=site)
    return sorted(set(members.values_list("user__email", flat=True)))


@transaction.atomic
def receive_shipment(shipment: Shipment, *, by, outcomes: Mapping[str, str]) -> Shipment:
    """The site's receipt: each kit of the shipment received, damaged or missing (kits not
    named are received). A kit number not in the shipment refuses the whole receipt."""
    shipment = Shipment.objects.select_for_update().select_related("trial", "site").get(
        pk=shipment.pk)
    _require(by, Perm.RECEIVE_SUPPLY, shipment.trial, shipment.site)
    if shipment.status != ShipmentStatus.DISPATCHED:
        raise SupplyError(_("Shipment %(n)s was already received on %(date)s.") % {
            "n": shipment.number, "date": shown_date(timezone.localtime(shipment.received_at).date())},
            code="already_received")
    items = {i.kit.number: i for i in shipment.items.select_related("kit")}
    wanted = {normalise_number(n): o for n, o in outcomes.items()}
    unknown = sorted(n for n in wanted if n not in items)
    bad = sorted(n for n, o in wanted.items() if o not in ReceiptOutcome.values)
    if unknown or bad:
        problems = []
        if unknown:
            problems.append(_("kit(s) %(kits)s are not in shipment %(n)s") % {
                "kits": ", ".join(unknown), "n": shipment.number})
        if bad:
            problems.append(_("kit(s) %(kits)s: the outcome must be received, damaged or "
                              "missing") % {"kits": ", ".join(bad)})
        raise SupplyError(_("Receipt refused: %(problems)s. Nothing was recorded.") % {
            "problems": "; ".join(problems)}, code="bad_receipt")
    now = timezone.now()
    status_of = {ReceiptOutcome.RECEIVED: KitStatus.AVAILABLE,
                 ReceiptOutcome.DAMAGED: KitStatus.DAMAGED,
                 ReceiptOutcome.MISSING: KitStatus.MISSING}
    event_of = {ReceiptOutcome.RECEIVED: KitEventKind.RECEIVED,
                ReceiptOutcome.DAMAGED: KitEventKind.DAMAGED,
                ReceiptOutcome.MISSING: KitEventKind.MISSING}
    events, counts = [], {o: 0 for o in ReceiptOutcome.values}
    for number, item in items.items():
        outcome = wanted.get(number, ReceiptOutcome.RECEIVED)
        counts[outcome] += 1
        item.outcome = outcome
        item.kit.status = status_of[outcome]
        item.kit.site = shipment.site
        events.append(_event(item.kit, event_of[outcome], by=by, at=now, site=shipment.site,
                             shipment=shipment,
                             reason="" if outcome == ReceiptOutcome.RECEIVED else _(
                                 "reported at the receipt of shipment %(n)s") % {
                                     "n": shipment.number}))
    ShipmentKit.objects.bulk_update(items.values(), ["outcome"])
    Kit.objects.bulk_update([i.kit for i in items.values()], ["status", "site"])
    KitEvent.objects.bulk_create(events)
    shipment.status = ShipmentStatus.RECEIVED
    shipment.received_at, shipment.received_by = now, by
    shipment.save(update_fields=["status", "received_at", "received_by"])
    audit.record("supply.shipment_received",
                 f"Shipment {shipment.number} received at {shipment.site.code}: "
                 f"{counts['received']} kits in good condition, {counts['damaged']} damaged, "
                 f"{counts['missing']} missing.", actor=by, trial=shipment.trial, obj=shipment)
    if counts["damaged"] or counts["missing"]:
        notify(policy_recipients(shipment.trial, Perm.MANAGE_SUPPLY),
               f"[{shipment.trial.short_title}] Shipment {shipment.number} received with "
               f"kits damaged or missing",
               f"{shipment.site.code} received shipment {shipment.number}: "
               f"{counts['damaged']} kit(s) damaged, {counts['missing']} missing.")
    _check_after_commit(shipment.site)
    return shipment


# --- assignment and dispensing -------------------------------------------------------------

def current_assignment(visit: Visit) -> KitAssignment | None:
    """The visit's kit: its latest assignment not ended."""
    return (KitAssignment.objects.filter(visit=visit, release__isnull=True)
            .select_related("kit").order_by("-assigned_at", "-pk").first())


def _dispensing_visit(settings: dict, visit: Visit) -> None:
    if visit.code not in settings["dispensing"]["visits"]:
        raise SupplyError(_("No kit is dispensed at %(visit)s.") % {"visit": visit.label},
                          code="not_a_dispensing_visit")
    if visit.status == VisitStatus.NOT_APPLICABLE:
        raise SupplyError(_("%(visit)s is not applicable: no kit is dispensed.") % {
            "visit": visit.label}, code="visit_not_applicable")


def _stock_out(participant: Participant, visit: Visit, arm: Arm) -> SupplyError:
    return SupplyError(
        _("No usable kit for %(id)s at %(site)s for %(visit)s (none in stock that is not "
          "quarantined and will not expire before the visit window closes on %(date)s). "
          "Contact the trial's supply manager: they have been alerted.") % {
            "id": participant.study_id, "site": participant.site.code, "visit": visit.label,
            "date": shown_date(visit.window_closes)},
        code="stock_out", params={"site_id": participant.site_id, "arm_id": arm.pk})


def assign(participant: Participant, visit: Visit, arm: Arm, *, by,
           at: dt.datetime | None = None, reason: str = "", first: bool = False
           ) -> KitAssignment:
    """Assign ``participant`` the next suitable kit of ``arm`` at the site for ``visit``
    (inside the caller's transaction): available (received, not quarantined), not expiring
    before the visit's window closes, earliest expiry first. The kit row is locked and skipped
    by concurrent dispensings, so two never take the same kit. A visit that already has a
    current kit keeps it. Raises ``SupplyError`` ``stock_out`` when there is none (the caller
    rolls back, then calls ``alert_stock_out``). ``first``: the participant's first kit, in
    the randomisation's transaction (no kit can exist yet: the checks below are skipped)."""
    settings = _settings_or_error(participant.trial)
    _dispensing_visit(settings, visit)
    if visit.participant_id != participant.pk:
        raise SupplyError(_("This visit is not %(id)s's.") % {"id": participant.study_id},
                          code="bad_visit")
    if not first:  # a first kit: ``randomise`` has checked
        refuse_change(participant)
    existing = None if first else current_assignment(visit)
    if existing is not None:
        return existing
    if not first and (Kit.objects.filter(assignments__participant=participant)
                      .exclude(arm=arm).exists()):
        # Never happens unless an allocation and the kits disagree: refuse loudly.
        raise SupplyError(_("The kits already given to %(id)s disagree with the allocation: "
                            "contact the supply manager.") % {"id": participant.study_id},
                          code="arm_mismatch")
    kit = (Kit.objects.select_for_update(skip_locked=True)
           .filter(site_id=participant.site_id, arm=arm, status=KitStatus.AVAILABLE,
                   expires_on__gte=visit.window_closes)
           .order_by("expires_on", "number").first())
    if kit is None:
        raise _stock_out(participant, visit, arm)
    at = at or timezone.now()
    kit.status = KitStatus.ASSIGNED
    kit.save(update_fields=["status"])
    assignment = KitAssignment.objects.create(kit=kit, participant=participant, visit=visit,
                                              assigned_at=at, assigned_by=by,
                                              reason=reason.strip())
    _event(kit, KitEventKind.ASSIGNED, by=by, at=at, site_id=participant.site_id,
           participant=participant, visit=visit, reason=reason.strip()).save()
    _check_after_commit(participant.site)
    return assignment


def arms_out_of_stock(site: Site, on: dt.date) -> list[Arm]:
    """The trial's arms of which ``site`` holds no available kit unexpired on ``on``."""
    stocked = Kit.objects.filter(site=site, arm=OuterRef("pk"), status=KitStatus.AVAILABLE,
                                 expires_on__gt=on)
    return list(Arm.objects.filter(trial_id=site.trial_id).exclude(Exists(stocked))
                .order_by("position"))


def alert_stock_out(error: SupplyError) -> None:
    """After a stock-out rolled the dispensing back: raise the site's resupply request (once)
    and tell the supply manager and the depot. Its own transaction."""
    from . import resupply

    site = Site.objects.select_related("trial").get(pk=error.params["site_id"])
    resupply.raise_request(site, stock_out=True)


def check_site_stock_later(site: Site) -> None:
    _check_after_commit(site)


def _check_after_commit(site: Site) -> None:
    from .tasks import check_site_stock

    site_id = site.pk
    transaction.on_commit(lambda: enqueue(check_site_stock, site_id))


def release(assignment: KitAssignment, *, kind: str, reason: str, by,
            at: dt.datetime | None = None) -> KitRelease:
    """End an assignment (inside the caller's transaction): the kit damaged or lost leaves the
    stock; a kit not given goes back to it."""
    limits.REASON.check(reason, field="reason")
    if not reason.strip():
        raise SupplyError({"reason": _("Give the reason.")}, code="reason_missing")
    at = at or timezone.now()
    kit = Kit.objects.select_for_update().get(pk=assignment.kit_id)
    if kind == ReleaseKind.NOT_GIVEN:
        status, event = KitStatus.AVAILABLE, KitEventKind.UNASSIGNED
    else:
        if kit.status == KitStatus.DISPENSED:
            raise SupplyError(_("Kit %(kit)s was recorded as given at this visit: it cannot be "
                                "replaced. Correct the injection form first if it was not "
                                "given.") % {"kit": kit.number}, code="already_dispensed")
        status = KitStatus.DAMAGED if kind == ReleaseKind.DAMAGED else KitStatus.MISSING
        event = KitEventKind.REPLACED
    done = KitRelease.objects.create(assignment=assignment, kind=kind, reason=reason.strip(),
                                     at=at, by=by)
    kit.status = status
    kit.save(update_fields=["status"])
    _event(kit, event, by=by, at=at, site_id=kit.site_id, participant=assignment.participant,
           visit=assignment.visit, reason=f"{ReleaseKind(kind).label}: {reason.strip()}").save()
    return done


def replace(assignment: KitAssignment, arm: Arm, *, kind: str, reason: str, by
            ) -> KitAssignment:
    """A replacement kit for one damaged or lost, with the reason (inside the caller's
    transaction): the old kit leaves the stock, the next suitable one is assigned."""
    limits.REASON.check(reason, field="reason")
    _require(by, Perm.DISPENSE, assignment.participant.trial, assignment.participant.site)
    refuse_change(assignment.participant)
    if kind not in (ReleaseKind.DAMAGED, ReleaseKind.LOST):
        raise SupplyError({"kind": _("A kit is replaced when it is damaged or lost.")},
                          code="bad_kind")
    assignment = KitAssignment.objects.select_related("participant__site", "visit", "kit").get(
        pk=assignment.pk)
    if KitRelease.objects.filter(assignment=assignment).exists():
        raise SupplyError(_("Kit %(kit)s is no longer assigned (already replaced or back in "
                            "stock).") % {"kit": assignment.kit.number}, code="not_current")
    release(assignment, kind=kind, reason=reason, by=by)
    return assign(assignment.participant, assignment.visit, arm, by=by,
                  reason=_("replaces kit %(kit)s: %(reason)s") % {
                      "kit": assignment.kit.number, "reason": reason.strip()})


def record_dispensing(record, *, by) -> None:
    """Check the dispensing form (``supply.dispensing.crf``) against the kit assigned at its
    visit, inside the save's transaction: any other number (unknown, of another site or arm,
    another participant's) is refused, so a kit of the wrong arm can never be recorded as
    given. Once it matches, the kit is dispensed; a form saying the injection was not given
    puts the visit's kit back in the site's stock."""
    settings = settings_of(record.participant.trial)
    if settings is None or record.crf_code != settings["dispensing"]["crf"]:
        return
    dispensing = settings["dispensing"]
    field = dispensing["field"]
    data = record.data or {}
    given_field = dispensing.get("given_field")
    given = data.get(given_field) if given_field else True
    number = normalise_number(data.get(field) or "")
    visit = record.visit
    if visit is None or visit.code not in dispensing["visits"]:
        if given is not False and number:
            raise ValidationError({field: _(
                "Kits are dispensed at the protocol's dispensing visits only: record this "
                "injection at its visit.")})
        return
    current = current_assignment(visit)
    if given is False:
        if current is not None:
            release(current, kind=ReleaseKind.NOT_GIVEN, by=by,
                    reason=_("%(crf)s records the injection as not given") % {
                        "crf": record.crf_code})
        return
    if not number:
        return  # a draft without the kit yet; completing it requires the number
    if current is None and _recorded_before(record, field, number, visit):
        return  # given before the trial dispensed kits through the system, and unchanged
    if current is None:
        raise ValidationError({field: _(
            "No kit is assigned to %(id)s at this visit: assign one first (the visit shows "
            "the kit to give).") % {"id": record.participant.study_id}})
    if number != current.kit.number:
        known = Kit.objects.filter(trial=record.participant.trial, number=number).exists()
        raise ValidationError({field: _(
            "Kit %(kit)s is not the kit assigned to %(id)s at this visit (%(assigned)s)%(why)s. "
            "Give the assigned kit; if it is damaged or lost, assign a replacement.") % {
                "kit": number, "id": record.participant.study_id,
                "assigned": current.kit.number,
                "why": "" if known else _(": no kit of this trial has that number")}})
    kit = Kit.objects.select_for_update().get(pk=current.kit_id)
    if kit.status == KitStatus.ASSIGNED:
        now = timezone.now()
        kit.status = KitStatus.DISPENSED
        kit.save(update_fields=["status"])
        _event(kit, KitEventKind.DISPENSED, by=by, at=now, site_id=kit.site_id,
               participant=record.participant, visit=visit,
               reason=f"{record.crf_code} #{record.pk}").save()


def _recorded_before(record, field: str, number: str, visit: Visit) -> bool:
    """Was this kit number already on the record, at a visit that never had a kit assigned?
    Records from before the trial's kits were dispensed here (the amendment that brought the
    supply) keep their kit number through later corrections of other answers."""
    if KitAssignment.objects.filter(visit=visit).exists():
        return False
    earlier = record.history.order_by("-history_date", "-history_id")[1:2]
    return any(normalise_number((h.data or {}).get(field) or "") == number for h in earlier)


# --- quarantine, returns, destruction ------------------------------------------------------

@transaction.atomic
def report_excursion(site: Site, *, numbers: Iterable[str], description: str, by
                     ) -> Excursion:
    """A temperature excursion at ``site``: the named kits on site (available) are quarantined
    and never assigned until the supply manager decides."""
    limits.DESCRIPTION.check(description, field="description")
    trial = site.trial
    _settings_or_error(trial)
    _require(by, Perm.RECEIVE_SUPPLY, trial, site)
    if not description.strip():
        raise SupplyError({"description": _("Describe the excursion (temperatures, how long, "
                                            "where the kits were).")}, code="description")
    wanted = sorted({normalise_number(n) for n in numbers if normalise_number(n)})
    if not wanted:
        raise SupplyError({"kits": _("Name the kits exposed.")}, code="no_kits")
    kits = list(Kit.objects.select_for_update().filter(trial=trial, number__in=wanted))
    found = {k.number: k for k in kits}
    wrong = [n for n in wanted if n not in found or found[n].site_id != site.pk
             or found[n].status != KitStatus.AVAILABLE]
    if wrong:
        raise SupplyError({"kits": _("Not in %(site)s's available stock: %(kits)s. Nothing was "
                                     "quarantined.") % {"site": site.code,
                                                        "kits": ", ".join(wrong)}},
                          code="bad_kits")
    now = timezone.now()
    excursion = Excursion.objects.create(trial=trial, site=site, reported_at=now,
                                         reported_by=by, description=description.strip())
    excursion.kits.set(kits)
    _set(kits, status=KitStatus.QUARANTINED)
    KitEvent.objects.bulk_create([_event(k, KitEventKind.QUARANTINED, by=by, at=now, site=site,
                                         reason=description.strip()) for k in kits])
    audit.record("supply.excursion_reported",
                 f"Temperature excursion at {site.code}: {len(kits)} kits quarantined.",
                 actor=by, trial=trial, obj=excursion)
    notify(policy_recipients(trial, Perm.MANAGE_SUPPLY),
           f"[{trial.short_title}] Temperature excursion at {site.code}",
           f"{site.code} reported a temperature excursion; {len(kits)} kit(s) are quarantined "
           f"until you decide: {description.strip()}")
    _check_after_commit(site)
    return excursion


@transaction.atomic
def decide_excursion(excursion: Excursion, *, decision: str, reason: str, by) -> Excursion:
    """The supply manager's decision: the kits are usable again, or not (destroyed)."""
    limits.REASON.check(reason, field="reason")
    excursion = Excursion.objects.select_for_update().select_related("site", "trial").get(
        pk=excursion.pk)
    _require(by, Perm.MANAGE_SUPPLY, excursion.trial)
    if excursion.decided_at is not None:
        raise SupplyError(_("This excursion was already decided."), code="already_decided")
    if decision not in ("release", "destroy"):
        raise SupplyError({"decision": _("Decide release or destroy.")}, code="bad_decision")
    if not reason.strip():
        raise SupplyError({"reason": _("Give the reason (stability data, the depot's "
                                       "advice…).")}, code="reason_missing")
    now = timezone.now()
    kits = list(excursion.kits.select_for_update().filter(status=KitStatus.QUARANTINED))
    if decision == "release":
        _set(kits, status=KitStatus.AVAILABLE)
        kind = KitEventKind.RELEASED
    else:
        _set(kits, status=KitStatus.DESTROYED)
        kind = KitEventKind.DESTROYED
    KitEvent.objects.bulk_create([_event(k, kind, by=by, at=now, site=excursion.site,
                                         reason=reason.strip()) for k in kits])
    excursion.decision, excursion.decision_reason = decision, reason.strip()
    excursion.decided_at, excursion.decided_by = now, by
    excursion.save(update_fields=["decision", "decision_reason", "decided_at", "decided_by"])
    audit.record("supply.excursion_decided",
                 f"Excursion at {excursion.site.code}: {len(kits)} kits "
                 f"{'released' if decision == 'release' else 'to be destroyed'}.",
                 actor=by, trial=excursion.trial, obj=excursion)
    _check_after_commit(excursion.site)
    return excursion


_NEXT = {
    # What the site or the supply manager may do with a kit in each state.
    KitEventKind.RETURNED: ({KitStatus.DISPENSED, KitStatus.AVAILABLE}, KitStatus.RETURNED,
                           Perm.RECEIVE_SUPPLY),
    KitEventKind.DESTROYED: ({KitStatus.RETURNED, KitStatus.DAMAGED, KitStatus.AVAILABLE},
                            KitStatus.DESTROYED, Perm.MANAGE_SUPPLY),
}


@transaction.atomic
def record_kits(site: Site, *, kind: str, numbers: Iterable[str], reason: str, by) -> int:
    """Kits returned by the site (used packs, or unused ones sent back), or destroyed: all the
    named kits or none."""
    limits.REASON.check(reason, field="reason")
    trial = site.trial
    _settings_or_error(trial)
    allowed, status, perm = _NEXT[kind]
    _require(by, perm, trial, site)
    wanted = sorted({normalise_number(n) for n in numbers if normalise_number(n)})
    if not wanted:
        raise SupplyError({"kits": _("Name the kits.")}, code="no_kits")
    kits = {k.number: k for k in Kit.objects.select_for_update().filter(trial=trial,
                                                                         number__in=wanted)}
    wrong = [n for n in wanted if n not in kits or kits[n].site_id != site.pk
             or kits[n].status not in allowed]
    if wrong:
        raise SupplyError({"kits": _("Cannot be %(what)s at %(site)s: %(kits)s (not at the "
                                     "site, or not in a state that allows it). Nothing was "
                                     "recorded.") % {"what": KitEventKind(kind).label.lower(),
                                                     "site": site.code,
                                                     "kits": ", ".join(wrong)}},
                          code="bad_kits")
    now = timezone.now()
    _set(kits.values(), status=status)
    KitEvent.objects.bulk_create([_event(k, kind, by=by, at=now, site=site,
                                         reason=reason.strip()) for k in kits.values()])
    audit.record(f"supply.kits_{kind}", f"{len(kits)} kits {kind} at {site.code}.",
                 actor=by, trial=trial, detail={"kits": wanted})
    _check_after_commit(site)
    return len(kits)


def undispensed_visits(site: Site):
    """Planned visits of the site's participants at which a kit is dispensed and none is
    assigned yet (for the resupply forecast)."""
    return undispensed_visits_at(site.trial, [site])


def undispensed_visits_at(trial: Trial, sites: Iterable[Site]):
    """``undispensed_visits`` of several sites of ``trial`` at once."""
    settings = _settings_or_error(trial)
    current = KitAssignment.objects.filter(visit=OuterRef("pk"), release__isnull=True)
    return (Visit.objects.filter(participant__site__in=sites, status=VisitStatus.PLANNED,
                                 code__in=settings["dispensing"]["visits"])
            .exclude(Exists(current)))
