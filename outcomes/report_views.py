"""The Reports page of a trial: request a report, follow its progress, download it.

Thin: who may do what comes from ``trials.policy`` through ``outcomes.reports`` (the registry
names each kind's permission; ``Rights`` decides downloads), every change from
``outcomes.reports.request_report``. A trial the user has no part in answers 404, a member
without the permission 403, a report of another trial 404. The page works without JavaScript
(reload to see progress); ``static/js/reports.js`` polls the status endpoint every second.
"""
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from trials.selectors import get_trial_for

from . import reports
from .models import ReportRequest


def _trial(request, slug: str):
    trial = get_trial_for(request.user, slug)
    if not reports.kinds_for(request.user, trial):
        raise PermissionDenied
    return trial


def _status(report: ReportRequest, rights: reports.Rights) -> dict:
    allowed = rights.may_download(report)
    return {
        "id": report.pk, "status": report.status, "label": report.get_status_display(),
        "progress": 100 if report.status == "done" else report.progress,
        "step": report.step, "error": report.error if report.status == "failed" else "",
        "finished": report.finished,
        "download": (reverse("report_download", args=[report.trial.slug, report.pk])
                     if allowed else None),
        "size": report.size,
    }


@require_GET
def report_list(request, slug: str):
    trial = _trial(request, slug)
    rights = reports.Rights.of(request.user, trial)
    rows = [(r, _status(r, rights)) for r in
            ReportRequest.objects.defer("content").select_related("trial", "requested_by")
            .filter(trial=trial)[:100]]
    return render(request, "outcomes/reports.html", {
        "trial": trial, "rows": rows, "kinds": reports.kinds_for(request.user, trial),
        "blinded": rights.blinded,
    })


@require_POST
def report_request(request, slug: str):
    trial = _trial(request, slug)  # 403 before the kind is even looked at
    kind = request.POST.get("kind", "")
    try:
        report = reports.request_report(trial, kind, by=request.user)
    except ValidationError as exc:
        return HttpResponse("; ".join(exc.messages), status=400,
                            content_type="text/plain; charset=utf-8")
    if report.status == "done":
        messages.success(request, _("The report is ready."))
    else:
        messages.info(request, _("Your report is queued; this page shows its progress."))
    return redirect("report_list", slug=trial.slug)


@require_GET
def report_status(request, slug: str, report_id: int):
    trial = _trial(request, slug)
    report = reports.report_of(trial, report_id)
    return JsonResponse(_status(report, reports.Rights.of(request.user, trial)))


@require_GET
def report_download(request, slug: str, report_id: int):
    return reports.download(request.user, _trial(request, slug), report_id)
