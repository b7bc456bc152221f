"""The monitoring pages of a trial (issue 20): the audit log (``Perm.VIEW_AUDIT``), with its
CSV export, and the query metrics (``Perm.VIEW_REPORTS``). Both read through selectors that
know who is asking: ``reports.audit_log`` and ``crfs.metrics``."""
from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from crfs.metrics import OLD_DAYS, YOUNG_DAYS, query_metrics
from reports import audit_log, downloads
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
