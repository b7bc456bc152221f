"""Resupply: a site's usable stock of each arm, counted in the visits it covers, and the
request raised when it no longer covers the protocol's level (``supply.resupply``).

For each arm, ``due`` is the number of the arm's dispensing visits at the site that are planned
within the delivery time (``lead_time_days``) and have no kit yet; ``usable`` the kits of the arm
available at the site that will not expire within that time. A site is short of an arm when
``usable <= due + trigger_visits``; the request then asks, for every arm, enough kits to cover
``due + trigger_visits + resupply_visits`` (every arm, so that a shipment's size tells the
site nothing). One request is open per site at most (a unique constraint), and its e-mail to the
supply manager and the depot is sent exactly once: claimed by one task with one atomic UPDATE,
as the visit and SAE reminders are.

The arm of a participant is read from their kits (the first is assigned at randomisation, from
the allocation); the numbers stay with the unblinded (the request, the supply manager's page).
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings as django_settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from core.notify import enqueue, notify
from trials.models import Arm, Site, Trial
from trials.policy import Perm

from .models import Kit, KitAssignment, KitStatus, ResupplyRequest
from .services import depot_of, policy_recipients, settings_of, undispensed_visits_at

logger = logging.getLogger("ctms.supply")

CLAIM_LEASE = dt.timedelta(minutes=30)


@dataclass(frozen=True)
class Level:
    arm: str
    usable: int
    due: int
    trigger: int   # due + trigger_visits: at or below it, the site is short
    target: int    # due + trigger_visits + resupply_visits: what a resupply brings it to

    @property
    def short(self) -> bool:
        return self.usable <= self.trigger

    @property
    def to_send(self) -> int:
        return max(0, self.target - self.usable)


def levels(site: Site, today: dt.date | None = None) -> list[Level]:
    """Each arm's stock at ``site`` against its coming visits (three queries)."""
    return levels_at(site.trial, [site], today).get(site.pk, [])


def levels_at(trial: Trial, sites: Iterable[Site], today: dt.date | None = None
              ) -> dict[int, list[Level]]:
    """``levels`` of several sites of ``trial`` (site id -> levels), in three queries whatever
    the number of sites (the supply overview)."""
    settings = settings_of(trial)
    sites = list(sites)
    if settings is None or not sites:
        return {}
    today = today or timezone.localdate()
    rules = settings["resupply"]
    horizon = today + dt.timedelta(days=rules["lead_time_days"])
    usable = {(site_id, arm): n for site_id, arm, n in
              Kit.objects.filter(site__in=sites, status=KitStatus.AVAILABLE,
                                 expires_on__gt=horizon)
              .order_by().values("site_id", "arm__code").annotate(n=Count("pk"))
              .values_list("site_id", "arm__code", "n")}
    first_kit_arm = (KitAssignment.objects.filter(participant=OuterRef("participant"))
                     .order_by("assigned_at", "pk").values("kit__arm__code")[:1])
    due = {(site_id, arm): n for site_id, arm, n in
           undispensed_visits_at(trial, sites).filter(target_date__lte=horizon)
           .annotate(arm=Subquery(first_kit_arm)).order_by()
           .values("participant__site_id", "arm").annotate(n=Count("pk"))
           .values_list("participant__site_id", "arm", "n")}
    arms = list(Arm.objects.filter(trial=trial).order_by("position"))
    out: dict[int, list[Level]] = {}
    for site in sites:
        out[site.pk] = []
        for arm in arms:
            d = due.get((site.pk, arm.code), 0)
            out[site.pk].append(Level(
                arm=arm.code, usable=usable.get((site.pk, arm.code), 0), due=d,
                trigger=d + rules["trigger_visits"],
                target=d + rules["trigger_visits"] + rules["resupply_visits"]))
    return out


def raise_request(site: Site, *, stock_out: bool = False, today: dt.date | None = None
                  ) -> ResupplyRequest | None:
    """Raise ``site``'s resupply request when an arm is short (or a participant's kit could not
    be assigned: ``stock_out``), unless one is open. Returns the request raised, else None.
    The e-mail leaves after the commit, once."""
    stock = levels(site, today)
    if not stock or not (stock_out or any(level.short for level in stock)):
        return None
    if ResupplyRequest.objects.filter(site=site, closed_at__isnull=True).exists():
        if stock_out:
            _stock_out_on_open_request(site)
        return None
    quantities = {level.arm: level.to_send or (1 if stock_out else 0) for level in stock}
    try:
        with transaction.atomic():
            request = ResupplyRequest.objects.create(
                trial=site.trial, site=site, raised_at=timezone.now(), quantities=quantities,
                stock_out=stock_out,
                detail={level.arm: {"usable": level.usable, "due": level.due,
                                    "trigger": level.trigger} for level in stock})
    except IntegrityError:  # a concurrent run raised it first
        if stock_out:
            _stock_out_on_open_request(site)
        return None
    from .tasks import send_resupply_request  # the task module imports this one

    request_id = request.pk
    transaction.on_commit(lambda: enqueue(send_resupply_request, request_id))
    return request


def _stock_out_on_open_request(site: Site) -> None:
    """A participant's kit could not be assigned while the site's request is already open (its
    stock was short, not yet empty): the request is marked a stock-out by one atomic UPDATE, and
    the one call that marks it tells the supply manager and the depot (once), after the
    commit."""
    marked = (ResupplyRequest.objects.filter(site=site, closed_at__isnull=True, stock_out=False)
              .update(stock_out=True))
    if not marked:
        return
    depot = depot_of(site.trial, None)
    notify(sorted(set(policy_recipients(site.trial, Perm.MANAGE_SUPPLY)) | {depot["email"]}),
           f"[{site.trial.short_title}] Stock-out at {site.code}",
           f"A participant's kit could not be assigned at {site.code}: no usable kit of their "
           f"arm. The site's resupply request, already open, is now a stock-out: dispatch it "
           f"from {depot['code']} without delay (the trial's supply pages).")


def check_all(today: dt.date | None = None) -> int:
    """The daily check of every site of every trial with kits (expiry moves, visits come
    nearer): how many requests were raised."""
    raised = 0
    for site in Site.objects.select_related("trial").order_by("pk"):
        if settings_of(site.trial) is not None and raise_request(site, today=today):
            raised += 1
    return raised


def claim(request_id: int, token: str) -> int:
    """One atomic UPDATE, outside any transaction: visible to other workers at once."""
    now = timezone.now()
    return (ResupplyRequest.objects.filter(pk=request_id, notified_at__isnull=True)
            .filter(Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - CLAIM_LEASE)
                    | Q(claimed_by=token))
            .update(claimed_by=token, claimed_at=now))


def send(request_id: int, *, token: str) -> bool:
    """E-mail the request to the supply manager(s) and the depot, once: True if this call sent
    it. Unblinded content: the recipients are unblinded to kits by their role."""
    if not claim(request_id, token):
        return False
    request = ResupplyRequest.objects.select_related("site", "trial").get(pk=request_id)
    trial = request.trial
    depot = depot_of(trial, None)
    recipients = sorted(set(policy_recipients(trial, Perm.MANAGE_SUPPLY)) | {depot["email"]})
    lines = [f"- {arm}: {n} kit(s) (usable now {request.detail.get(arm, {}).get('usable', 0)}, "
             f"visits due within the delivery time {request.detail.get(arm, {}).get('due', 0)})"
             for arm, n in sorted(request.quantities.items())]
    why = ("A participant's kit could not be assigned (no usable kit of their arm)."
           if request.stock_out else "The site's stock no longer covers its coming visits.")
    try:
        send_mail(f"[{trial.short_title}] Resupply request for {request.site.code}",
                  f"{why}\nKits to send from {depot['code']} to {request.site.code}:\n"
                  + "\n".join(lines) + "\n\nDispatch the shipment in the trial's supply pages.",
                  django_settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception:
        ResupplyRequest.objects.filter(pk=request_id, claimed_by=token).update(
            claimed_by="", claimed_at=None)
        raise
    ResupplyRequest.objects.filter(pk=request_id).update(notified_at=timezone.now())
    logger.info("resupply request %s for %s sent to %d recipient(s)", request_id,
                request.site.code, len(recipients))
    return True


def unsent() -> list[int]:
    return list(ResupplyRequest.objects.filter(notified_at__isnull=True)
                .order_by("pk").values_list("pk", flat=True))
