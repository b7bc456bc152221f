"""Reads of the supply for pages, the API and the accountability log.

Two views of one stock: ``site_stock`` gives counts and kit numbers only, what every role that
may see the supply sees; ``stock_by_arm`` splits them by arm and is for ``can_see_kit_arms``
only (the caller checks). Neither reads clinical data.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from trials import policy
from trials.models import Site, Trial
from trials.policy import Perm

from .models import (
    Excursion,
    Kit,
    KitAssignment,
    KitEvent,
    KitStatus,
    ResupplyRequest,
    Shipment,
)


def supply_sites(user, trial: Trial) -> QuerySet[Site]:
    """The sites whose supply ``user`` may see."""
    return policy.sites_for(user, trial, Perm.VIEW_SUPPLY).order_by("code")


@dataclass(frozen=True)
class SiteStock:
    site: Site
    available: int      # received, not quarantined, not expired today
    expired: int        # on the shelf past their expiry date: never assigned
    quarantined: int
    assigned: int       # assigned to a participant's coming visit, not yet given
    in_transit: int


def site_stock(sites: QuerySet[Site], today: dt.date | None = None) -> list[SiteStock]:
    """Counts per site, whatever the arm (one query)."""
    today = today or timezone.localdate()
    on_shelf = Q(status=KitStatus.AVAILABLE)
    rows = (Kit.objects.filter(Q(site__in=sites) | Q(shipment__site__in=sites,
                                                     status=KitStatus.IN_TRANSIT))
            .order_by()
            .values("site_id", "shipment__site_id")
            .annotate(available=Count("pk", filter=on_shelf & Q(expires_on__gt=today)),
                      expired=Count("pk", filter=on_shelf & Q(expires_on__lte=today)),
                      quarantined=Count("pk", filter=Q(status=KitStatus.QUARANTINED)),
                      assigned=Count("pk", filter=Q(status=KitStatus.ASSIGNED)),
                      in_transit=Count("pk", filter=Q(status=KitStatus.IN_TRANSIT))))
    totals: dict[int, dict[str, int]] = {}
    for row in rows:
        site_id = row["site_id"] or row["shipment__site_id"]
        into = totals.setdefault(site_id, {})
        for key in ("available", "expired", "quarantined", "assigned", "in_transit"):
            into[key] = into.get(key, 0) + row[key]
    empty = dict.fromkeys(("available", "expired", "quarantined", "assigned", "in_transit"), 0)
    return [SiteStock(site=site, **{**empty, **totals.get(site.pk, {})}) for site in sites]


def stock_by_arm(sites: QuerySet[Site], today: dt.date | None = None
                 ) -> dict[int, dict[str, int]]:
    """Site id -> arm code -> kits available (unblinded roles only: the caller checks)."""
    today = today or timezone.localdate()
    out: dict[int, dict[str, int]] = {}
    for site_id, arm, n in (Kit.objects.filter(site__in=sites, status=KitStatus.AVAILABLE,
                                               expires_on__gt=today)
                            .order_by().values("site_id", "arm__code")
                            .annotate(n=Count("pk")).values_list("site_id", "arm__code", "n")):
        out.setdefault(site_id, {})[arm] = n
    return out


def kits_at(site: Site) -> QuerySet[Kit]:
    """The kits at ``site`` (kit numbers, lot, expiry, state: no arm), by number."""
    return Kit.objects.filter(site=site).order_by("number").only(
        "number", "lot", "expires_on", "status", "site_id")


def shipments(user, trial: Trial) -> QuerySet[Shipment]:
    return (Shipment.objects.filter(trial=trial, site__in=supply_sites(user, trial))
            .select_related("site", "dispatched_by", "received_by")
            .annotate(kit_count=Count("items")).order_by("-number"))


def shipment(user, trial: Trial, number: int) -> Shipment | None:
    return shipments(user, trial).filter(number=number).first()


def open_requests(trial: Trial) -> QuerySet[ResupplyRequest]:
    """Unblinded (quantities per arm): for ``can_see_kit_arms`` only."""
    return (ResupplyRequest.objects.filter(trial=trial, closed_at__isnull=True)
            .select_related("site").order_by("raised_at"))


def excursions(user, trial: Trial) -> QuerySet[Excursion]:
    return (Excursion.objects.filter(trial=trial, site__in=supply_sites(user, trial))
            .select_related("site", "reported_by", "decided_by")
            .annotate(kit_count=Count("kits")).order_by("-reported_at"))


def visit_kit(visit) -> KitAssignment | None:
    """The kit to give at ``visit`` now (its current assignment), with the kit."""
    return (KitAssignment.objects.filter(visit=visit, release__isnull=True)
            .select_related("kit").order_by("-assigned_at", "-pk").first())


def participant_kits(participant) -> QuerySet[KitAssignment]:
    """Every kit assigned to ``participant``, oldest first, with the visit and how it ended."""
    return (KitAssignment.objects.filter(participant=participant)
            .select_related("kit", "visit", "assigned_by", "release")
            .order_by("assigned_at", "pk"))


ACCOUNTABILITY_COLUMNS = ["kit_number", "lot", "expires_on", "event", "at", "by", "shipment",
                          "participant", "visit", "reason", "status_now"]


def accountability(site: Site, *, start: dt.date | None = None, end: dt.date | None = None
                   ) -> QuerySet[KitEvent]:
    """The site's kit events (each kit's life at the site: received, assigned, dispensed,
    returned, destroyed…), by kit and time: what a monitor reconciles against the pharmacy's
    own log. Kit numbers only, never arms. One query, streamed by the callers."""
    events = (KitEvent.objects
              .filter(Q(site=site) | Q(kit__site=site))
              .select_related("kit", "by", "shipment", "participant", "visit")
              .order_by("kit__number", "at", "pk"))
    if start is not None:
        events = events.filter(at__date__gte=start)
    if end is not None:
        events = events.filter(at__date__lte=end)
    return events


def accountability_row(event: KitEvent) -> list[str]:
    by = event.by
    return [event.kit.number, event.kit.lot, event.kit.expires_on.isoformat(),
            event.get_kind_display(), f"{timezone.localtime(event.at):%Y-%m-%d %H:%M}",
            (by.get_full_name() or by.username) if by else "",
            str(event.shipment.number) if event.shipment else "",
            event.participant.study_id if event.participant else "",
            event.visit.label if event.visit else "",
            event.reason, event.kit.get_status_display()]
