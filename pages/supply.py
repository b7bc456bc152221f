"""Supply pages for the sites, the monitors and the supply manager (docs/supply.md): the trial's
supply overview, dispatching a shipment, a shipment and its receipt kit by kit, a site's stock
(excursions, returns, destruction, an excursion's decision) and its accountability log (CSV,
PDF).

Thin: reads from ``supply.selectors`` (and ``supply.resupply.levels_at``), writes through
``supply.services``, permissions from ``trials.policy``. Blinding: kits are shown by number,
lot, expiry and state; per-arm stock, resupply levels and requests only when
``policy.can_see_kit_arms``. Another site's shipment, stock or excursion is a 404. A trial whose
protocol declares no kits answers every supply page with a 404 that says so.
"""
from __future__ import annotations

import functools

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from core import audit
from core.forms import attach_errors
from reports.exports import csv_chunks
from supply import pdf, resupply, selectors, services
from supply.forms import DecisionForm, DispatchForm, ExcursionForm, KitsForm, PeriodForm, ReceiptForm
from supply.models import KitStatus, ShipmentStatus
from trials import policy
from trials.models import Site
from trials.policy import Perm
from trials.selectors import get_trial_for


class _NoSupply(Exception):
    def __init__(self, trial):
        self.trial = trial


def supply_view(view):
    """A trial without kits answers 404 with a page that says why, whatever the route."""
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except _NoSupply as exc:
            return render(request, "supply/no_supply.html", {"trial": exc.trial}, status=404)
    return wrapped


def _trial(request, slug: str, perm: Perm = Perm.VIEW_SUPPLY):
    """The trial (404 for a non-member, 403 for a member whose role lacks ``perm``)."""
    trial = get_trial_for(request.user, slug, perm)
    if services.settings_of(trial) is None:
        raise _NoSupply(trial)
    return trial


def _site(request, trial, site_code: str):
    """A site whose supply the user may see; any other is not found."""
    site = selectors.supply_sites(request.user, trial).filter(code=site_code).first()
    if site is None:
        raise Http404("No such site.")
    return site


def _require(request, perm: Perm, trial, site=None) -> None:
    if not policy.has_perm(request.user, perm, trial, site):
        raise PermissionDenied


# --- the overview ----------------------------------------------------------------------------

@require_GET
@supply_view
def supply_overview(request, slug: str):
    trial = _trial(request, slug)
    user = request.user
    sites = selectors.supply_sites(user, trial)
    unblinded = policy.can_see_kit_arms(user, trial)
    rows = [{"stock": stock} for stock in selectors.site_stock(sites)]
    arms, requests = [], []
    if unblinded:
        arms = list(trial.arms.order_by("position"))
        by_arm = selectors.stock_by_arm(sites)
        levels_at = resupply.levels_at(trial, [row["stock"].site for row in rows])
        for row in rows:
            site = row["stock"].site
            levels = {level.arm: level for level in levels_at.get(site.pk, [])}
            row["arms"] = [{"available": by_arm.get(site.pk, {}).get(arm.code, 0),
                            "level": levels.get(arm.code)} for arm in arms]
        requests = list(selectors.open_requests(trial).filter(site__in=sites))
    return render(request, "supply/overview.html", {
        "trial": trial, "rows": rows, "unblinded": unblinded, "arms": arms,
        "requests": requests,
        "shipments": list(selectors.shipments(user, trial)),
        "excursions": list(selectors.excursions(user, trial)),
        "can_manage": policy.has_perm(user, Perm.MANAGE_SUPPLY, trial)})


# --- dispatching a shipment ------------------------------------------------------------------

_DISPATCH_FIELDS = {"bad_depot": "depot", "bad_site": "site", "bad_request": "site"}


@supply_view
def supply_dispatch(request, slug: str):
    """The supply manager sends kits of each arm to a site; a site's open resupply request fills
    the quantities in and is answered by the shipment."""
    trial = _trial(request, slug, Perm.MANAGE_SUPPLY)
    sites = list(trial.sites.filter(active=True).order_by("code"))
    arms = list(trial.arms.order_by("position"))
    depots = services.settings_of(trial)["depots"]
    code = request.POST.get("site") if request.method == "POST" else request.GET.get("site")
    site = next((s for s in sites if s.code == code), None)
    open_request = selectors.open_requests(trial).filter(site=site).first() if site else None
    if request.method == "POST":
        form = DispatchForm(request.POST, sites=sites, arms=arms, depots=depots)
        if form.is_valid():
            try:
                shipment = services.dispatch_shipment(
                    trial, site=site, quantities=form.quantities(), by=request.user,
                    depot=form.cleaned_data["depot"], request=open_request,
                    note=form.cleaned_data["note"])
            except services.SupplyError as exc:
                field = _DISPATCH_FIELDS.get(exc.code)
                if exc.code == "depot_short":
                    field = f"qty_{exc.params['arm']}"
                form.add_error(field, exc.messages)
            else:
                messages.success(request, _("Shipment %(n)s dispatched to %(site)s.") % {
                    "n": shipment.number, "site": site.code})
                return redirect("supply_shipment", slug, shipment.number)
    else:
        initial = {"site": site.code if site else "", "depot": depots[0]["code"]}
        if open_request is not None:
            initial.update({f"qty_{arm}": n for arm, n in open_request.quantities.items()})
        form = DispatchForm(initial=initial, sites=sites, arms=arms, depots=depots)
    return render(request, "supply/dispatch.html", {
        "trial": trial, "form": form, "open_request": open_request, "site": site},
        status=400 if form.errors else 200)


# --- a shipment and its receipt --------------------------------------------------------------

def _shipment(request, trial, number: int):
    shipment = selectors.shipment(request.user, trial, number)
    if shipment is None:
        raise Http404("No such shipment.")
    return shipment


def _shipment_page(request, trial, shipment, *, form=None, status=200):
    items = list(shipment.items.select_related("kit").only(
        "outcome", "shipment_id", "kit__number", "kit__lot", "kit__expires_on")
        .order_by("kit__number"))
    can_receive = (shipment.status == ShipmentStatus.DISPATCHED
                   and policy.has_perm(request.user, Perm.RECEIVE_SUPPLY, trial, shipment.site))
    if form is None and can_receive:
        form = ReceiptForm(numbers=[i.kit.number for i in items])
    return render(request, "supply/shipment.html", {
        "trial": trial, "shipment": shipment, "items": items, "form": form,
        "rows": list(zip(items, form.kit_fields())) if form else [(i, None) for i in items]},
        status=status)


@require_GET
@supply_view
def supply_shipment(request, slug: str, shipment_number: int):
    trial = _trial(request, slug)
    return _shipment_page(request, trial, _shipment(request, trial, shipment_number))


@require_POST
@supply_view
def supply_receive(request, slug: str, shipment_number: int):
    trial = _trial(request, slug)
    shipment = _shipment(request, trial, shipment_number)
    _require(request, Perm.RECEIVE_SUPPLY, trial, shipment.site)
    numbers = list(shipment.items.order_by("kit__number").values_list("kit__number", flat=True))
    form = ReceiptForm(request.POST, numbers=numbers)
    if form.is_valid():
        try:
            services.receive_shipment(shipment, by=request.user, outcomes=form.outcomes())
        except services.SupplyError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Receipt of shipment %(n)s recorded.") % {
                "n": shipment.number})
            return redirect("supply_site", slug, shipment.site.code)
    return _shipment_page(request, trial, shipment, form=form, status=400)


# --- a site's stock --------------------------------------------------------------------------

def _site_page(request, trial, site, *, forms=None, status=200):
    user, today = request.user, timezone.localdate()
    forms = forms or {}
    kits = list(selectors.kits_at(site))
    for kit in kits:
        kit.expired = kit.status == KitStatus.AVAILABLE and kit.expires_on <= today
    available = [k.number for k in kits if k.status == KitStatus.AVAILABLE and not k.expired]
    can_receive = policy.has_perm(user, Perm.RECEIVE_SUPPLY, trial, site)
    can_manage = policy.has_perm(user, Perm.MANAGE_SUPPLY, trial, site)
    excursions = list(selectors.excursions(user, trial).filter(site=site))
    for excursion in excursions:
        # A refused decision is shown with its form, even on an excursion decided meanwhile.
        excursion.form = forms.get(("decide", excursion.pk)) or (
            DecisionForm(prefix=f"e{excursion.pk}")
            if can_manage and excursion.decided_at is None else None)
    unblinded = policy.can_see_kit_arms(user, trial)
    arms = list(trial.arms.order_by("position")) if unblinded else []
    by_arm = selectors.stock_by_arm(Site.objects.filter(pk=site.pk)) if unblinded else {}
    return render(request, "supply/site.html", {
        "trial": trial, "site": site, "kits": kits,
        "stock": selectors.site_stock(Site.objects.filter(pk=site.pk))[0],
        "by_arm": [(arm, by_arm.get(site.pk, {}).get(arm.code, 0)) for arm in arms],
        "excursions": excursions,
        "excursion_form": forms.get("excursion") or (
            ExcursionForm(numbers=available) if can_receive else None),
        "returns_form": forms.get("returns") or (KitsForm(prefix="returns")
                                                 if can_receive else None),
        "destroy_form": forms.get("destroy") or (KitsForm(prefix="destroy")
                                                 if can_manage else None),
        "period_form": forms.get("period") or PeriodForm(),
    }, status=status)


@require_GET
@supply_view
def supply_site(request, slug: str, site_code: str):
    trial = _trial(request, slug)
    return _site_page(request, trial, _site(request, trial, site_code))


def _site_action(request, slug: str, site_code: str, perm: Perm):
    trial = _trial(request, slug)
    site = _site(request, trial, site_code)
    _require(request, perm, trial, site)
    return trial, site


@require_POST
@supply_view
def supply_excursion(request, slug: str, site_code: str):
    trial, site = _site_action(request, slug, site_code, Perm.RECEIVE_SUPPLY)
    available = list(selectors.kits_at(site).filter(status=KitStatus.AVAILABLE)
                     .values_list("number", flat=True))
    form = ExcursionForm(request.POST, numbers=available)
    if form.is_valid():
        try:
            excursion = services.report_excursion(
                site, numbers=form.cleaned_data["kits"],
                description=form.cleaned_data["description"], by=request.user)
        except services.SupplyError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _(
                "Excursion reported: %(n)s kit(s) quarantined until the supply manager "
                "decides.") % {"n": excursion.kits.count()})
            return redirect("supply_site", slug, site.code)
    return _site_page(request, trial, site, forms={"excursion": form}, status=400)


def _record_kits(request, slug: str, site_code: str, *, kind: str, perm: Perm, prefix: str):
    trial, site = _site_action(request, slug, site_code, perm)
    form = KitsForm(request.POST, prefix=prefix)
    if form.is_valid():
        try:
            n = services.record_kits(site, kind=kind, numbers=form.numbers_list(),
                                     reason=form.cleaned_data["reason"], by=request.user)
        except services.SupplyError as exc:
            form.add_error("numbers", exc.messages)
        else:
            messages.success(request, (_("%(n)s kit(s) recorded as returned.")
                                       if kind == "returned" else
                                       _("%(n)s kit(s) recorded as destroyed.")) % {"n": n})
            return redirect("supply_site", slug, site.code)
    return _site_page(request, trial, site, forms={prefix: form}, status=400)


@require_POST
@supply_view
def supply_returns(request, slug: str, site_code: str):
    return _record_kits(request, slug, site_code, kind="returned", perm=Perm.RECEIVE_SUPPLY,
                        prefix="returns")


@require_POST
@supply_view
def supply_destruction(request, slug: str, site_code: str):
    return _record_kits(request, slug, site_code, kind="destroyed", perm=Perm.MANAGE_SUPPLY,
                        prefix="destroy")


@require_POST
@supply_view
def supply_decide(request, slug: str, excursion_id: int):
    trial = _trial(request, slug)
    excursion = selectors.excursions(request.user, trial).filter(pk=excursion_id).first()
    if excursion is None:
        raise Http404("No such excursion.")
    _require(request, Perm.MANAGE_SUPPLY, trial, excursion.site)
    form = DecisionForm(request.POST, prefix=f"e{excursion.pk}")
    if form.is_valid():
        try:
            services.decide_excursion(excursion, by=request.user, **form.cleaned_data)
        except services.SupplyError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Decision on the excursion recorded."))
            return redirect("supply_site", slug, excursion.site.code)
    return _site_page(request, trial, excursion.site, forms={("decide", excursion.pk): form},
                      status=400)


# --- the accountability log ------------------------------------------------------------------

def _accountability(request, slug: str, site_code: str, what: str):
    """The site's log for the period asked (``start``, ``end``), audited before it leaves; a
    bad date shows the site's page with the error next to it."""
    trial = _trial(request, slug)
    site = _site(request, trial, site_code)
    form = PeriodForm(request.GET)
    if not form.is_valid():
        return site, None, None, None, _site_page(request, trial, site,
                                                  forms={"period": form}, status=400)
    start, end = form.cleaned_data["start"], form.cleaned_data["end"]
    audit.record("supply.accountability_exported",
                 f"{trial.short_title}: kit accountability log of {site.code} ({what})",
                 actor=request.user, trial=trial,
                 detail={"site": site.code, "format": what,
                         "start": start.isoformat() if start else None,
                         "end": end.isoformat() if end else None})
    return site, selectors.accountability(site, start=start, end=end), start, end, None


def _filename(site, start, end, ext: str) -> str:
    period = "".join(f"-{d:%Y%m%d}" if d else "-" for d in (start, end)).rstrip("-")
    return f"accountability-{site.code}{period}.{ext}"


@require_GET
@supply_view
def supply_accountability_csv(request, slug: str, site_code: str):
    site, events, start, end, refused = _accountability(request, slug, site_code, "csv")
    if refused is not None:
        return refused

    def rows():
        yield list(selectors.ACCOUNTABILITY_COLUMNS)
        for event in events.iterator(chunk_size=500):
            yield selectors.accountability_row(event)

    response = StreamingHttpResponse(csv_chunks(rows()), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{_filename(site, start, end, "csv")}"')
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@supply_view
def supply_accountability_pdf(request, slug: str, site_code: str):
    site, events, start, end, refused = _accountability(request, slug, site_code, "pdf")
    if refused is not None:
        return refused
    response = HttpResponse(pdf.accountability_pdf(site, events, start=start, end=end),
                            content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{_filename(site, start, end, "pdf")}"'
    response["Cache-Control"] = "no-store"
    return response
