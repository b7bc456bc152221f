"""The monitoring pages of a trial (issue 20): the audit log (``Perm.VIEW_AUDIT``), with its
CSV export, the query metrics (``Perm.VIEW_REPORTS``), both read through selectors that know who
is asking (``reports.audit_log`` and ``crfs.metrics``), and the monitoring visits: the monitor
(``Perm.VERIFY_SOURCE`` at a site) records them, and whoever may read a site's monitoring
(``crfs.monitoring.may_read``) downloads its monitoring visit report (PDF)."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from core import limits
from core.dates import shown_date
from core.forms import DateInput, LimitedText, attach_errors
from crfs import monitoring
from crfs.metrics import OLD_DAYS, YOUNG_DAYS, query_metrics
from crfs.models import MonitoringVisit
from reports import audit_log, downloads
from trials import policy
from trials.policy import Perm
from trials.selectors import get_trial_for

PAGE_SIZE = 50


def audit_log_page(request, slug: str):
    """The trial's audit log, filtered by the query string, a page at a time; a bad filter is
    said next to it (400), and no entry is listed until it is corrected."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_AUDIT)
    errors, page, rows = {}, None, []
    try:
        filters = audit_log.parse_filters(request.user, trial, request.GET)
    except ValidationError as exc:
        errors = {name: messages for name, messages in exc.message_dict.items()}
    else:
        page = Paginator(audit_log.audit_log_for(request.user, trial, filters), PAGE_SIZE
                         ).get_page(request.GET.get("page"))
        rows = audit_log.rows(request.user, trial, page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "monitoring/audit_log.html", {
        "trial": trial, "rows": rows, "page": page, "errors": errors,
        "values": {name: request.GET.get(name, "") for name in audit_log.FILTERS},
        "sites": list(audit_log.readable_sites(request.user, trial)),
        "kinds": audit_log.kinds(request.user, trial),
        "query": query.urlencode(),
    }, status=400 if errors else 200)


def audit_log_csv(request, slug: str):
    """The filtered audit log as CSV, streamed and audited; a bad filter is a 400 saying which."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_AUDIT)
    try:
        filters = audit_log.parse_filters(request.user, trial, request.GET)
    except ValidationError as exc:
        text = "\n".join(f"{name}: {message}" for name, messages in exc.message_dict.items()
                         for message in messages)
        return HttpResponse(_("The audit log was not exported:") + "\n" + text, status=400,
                            content_type="text/plain; charset=utf-8")
    return downloads.audit_log_csv(request.user, trial, filters)


def query_metrics_page(request, slug: str):
    """Open queries by age, median times to answer and to close, per site and per form."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_REPORTS)
    return render(request, "monitoring/query_metrics.html", {
        "trial": trial, "metrics": query_metrics(request.user, trial),
        "young": YOUNG_DAYS, "old": OLD_DAYS})


# --------------------------------------------------------------------------- monitoring visits

VISITS_SHOWN = 100


class VisitForm(forms.Form):
    site = forms.ModelChoiceField(queryset=None, label=gettext_lazy("Site"),
                                  error_messages={"required": gettext_lazy("Choose the site."),
                                                  "invalid_choice": gettext_lazy(
                                                      "You do not monitor this site.")})
    visited_on = forms.DateField(label=gettext_lazy("Date of the visit"),
                                 widget=DateInput(),
                                 error_messages={"required": gettext_lazy("Give the date."),
                                                 "invalid": gettext_lazy(
                                                     "Enter a date as YYYY-MM-DD.")})
    findings = LimitedText(limit=limits.FINDINGS, rows=5, label=gettext_lazy("Findings"),
                           required=False)

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites


class ReportForm(forms.Form):
    site = forms.ModelChoiceField(queryset=None, label=gettext_lazy("Site"),
                                  error_messages={"required": gettext_lazy("Choose the site."),
                                                  "invalid_choice": gettext_lazy(
                                                      "You do not follow this site.")})
    start = forms.DateField(label=gettext_lazy("From"),
                            widget=DateInput(),
                            error_messages={"required": gettext_lazy("Give the first day."),
                                            "invalid": gettext_lazy(
                                                "Enter a date as YYYY-MM-DD.")})
    end = forms.DateField(label=gettext_lazy("To"),
                          widget=DateInput(),
                          error_messages={"required": gettext_lazy("Give the last day."),
                                          "invalid": gettext_lazy("Enter a date as YYYY-MM-DD.")})

    def __init__(self, *args, sites, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites


def _readable_sites(user, trial):
    """The sites whose monitoring ``user`` may read (``crfs.monitoring.may_read``)."""
    return (policy.sites_for(user, trial, Perm.VERIFY_SOURCE)
            | policy.sites_for(user, trial, Perm.VIEW_REPORTS)).distinct().order_by("code")


def _visits_page(request, trial, *, visit_form=None, report_form=None, status=200):
    user = request.user
    monitored = policy.sites_for(user, trial, Perm.VERIFY_SOURCE).order_by("code")
    readable = _readable_sites(user, trial)
    today = timezone.localdate()
    can_record = policy.has_perm(user, Perm.VERIFY_SOURCE, trial)
    if visit_form is None and can_record:
        visit_form = VisitForm(sites=monitored, initial={"visited_on": today})
    if report_form is None:
        report_form = ReportForm(sites=readable, initial={
            "start": today.replace(day=1), "end": today})
    visits = list(MonitoringVisit.objects.filter(trial=trial, site__in=readable)
                  .select_related("site", "monitor")
                  .order_by("-visited_on", "-pk")[:VISITS_SHOWN])
    return render(request, "monitoring/monitoring_visits.html", {
        "trial": trial, "visits": visits, "visit_form": visit_form if can_record else None,
        "report_form": report_form, "shown": VISITS_SHOWN}, status=status)


def monitoring_visits(request, slug: str):
    """The trial's monitoring visits: the monitor records one (site, date, findings); every
    reader of a site's monitoring sees its past visits and downloads its report."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_REPORTS)
    if request.method != "POST":
        return _visits_page(request, trial)
    if not policy.has_perm(request.user, Perm.VERIFY_SOURCE, trial):
        raise PermissionDenied
    form = VisitForm(request.POST, sites=policy.sites_for(request.user, trial,
                                                          Perm.VERIFY_SOURCE))
    if form.is_valid():
        try:
            visit = monitoring.record_visit(form.cleaned_data["site"], by=request.user,
                                            visited_on=form.cleaned_data["visited_on"],
                                            findings=form.cleaned_data["findings"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Monitoring visit to %(site)s on %(date)s recorded.") % {
                "site": visit.site.code, "date": shown_date(visit.visited_on)})
            return redirect("monitoring_visits", slug)
    return _visits_page(request, trial, visit_form=form, status=400)


@require_GET
def monitoring_report_pdf(request, slug: str):
    """The monitoring visit report of a site and a period (``?site=&start=&end=``), as PDF; a bad
    site or date is said on the monitoring page (400)."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_REPORTS)
    form = ReportForm(request.GET, sites=_readable_sites(request.user, trial))
    if form.is_valid():
        site = form.cleaned_data["site"]
        if not monitoring.may_read(request.user, site):
            raise PermissionDenied
        try:
            data = monitoring.report(site, form.cleaned_data["start"], form.cleaned_data["end"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            response = HttpResponse(monitoring.pdf(data), content_type="application/pdf")
            name = (f"monitoring-{site.code}-{data.start:%Y%m%d}-{data.end:%Y%m%d}.pdf")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
    messages.error(request, _("The monitoring visit report was not built: correct the "
                              "period or the site below."))
    return _visits_page(request, trial, report_form=form, status=400)
