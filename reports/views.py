"""The Reports and Exports pages of a trial, and the outcomes report built while the reader waits.

The Reports page of a trial: request a report, follow its progress, download it.

Thin: who may do what comes from ``trials.policy`` through ``reports.services`` (the registry
names each kind's permission; ``Rights`` decides downloads), every change from
``reports.services.request_report``. A trial the user has no part in answers 404, a member
without the permission 403, a report of another trial 404. The page works without JavaScript
(reload to see progress); ``static/js/reports.js`` polls the status endpoint every second.
"""
import io

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from patients.selectors import get_trial_and_participant_for
from trials import policy
from trials.models import definition_of
from trials.policy import Perm
from trials.selectors import get_trial_for

from . import blank_crf, downloads, exports, services as reports
from .models import ReportRequest
from .outcomes_report import build_outcomes_report


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
            reports.reports_for(request.user, trial)[:100]]
    return render(request, "outcomes/reports.html", {
        "trial": trial, "rows": rows, "kinds": reports.kinds_for(request.user, trial),
        "trial_kinds": reports.trial_kinds_for(request.user, trial),
        "blinded": rights.blinded, "comparisons": rights.comparisons,
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


@require_POST
def casebook_request(request, slug: str, study_id: str):
    """Ask for the casebook of one participant (the button on their page): built in the
    background, followed on the Reports page. Another site's participant is a 404."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not reports.may_request_casebook(request.user, participant):
        raise PermissionDenied
    report = reports.request_report(trial, "casebook", by=request.user, participant=participant)
    if report.status == "done":
        messages.success(request, _("The casebook of %(id)s is ready.") % {
            "id": participant.study_id})
    else:
        messages.info(request, _("The casebook of %(id)s is queued; this page shows its "
                                 "progress.") % {"id": participant.study_id})
    return redirect("report_list", slug=trial.slug)


@require_GET
def report_status(request, slug: str, report_id: int):
    trial = _trial(request, slug)
    report = reports.report_of(trial, report_id, request.user)
    return JsonResponse(_status(report, reports.Rights.of(request.user, trial)))


@require_GET
def report_download(request, slug: str, report_id: int):
    return reports.download(request.user, _trial(request, slug), report_id)


@require_GET
def trial_outcomes_pdf(request, slug: str):
    """The outcomes report, built while the reader waits (until the report queue takes it)."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_REPORTS)
    buffer = io.BytesIO()
    build_outcomes_report(trial, viewer=request.user, stream=buffer)
    response = HttpResponse(buffer.getvalue(), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="outcomes-{trial.slug}.pdf"'
    return response


# --------------------------------------------------------------------------- exports


@require_GET
def export_list(request, slug: str):
    """The trial's exports: each CRF as long and wide CSV, and the whole trial as CDISC ODM."""
    trial = get_trial_for(request.user, slug, Perm.EXPORT_DATA)
    return render(request, "outcomes/exports.html", _exports_context(request, trial))


def _exports_context(request, trial) -> dict:
    return {"trial": trial, "crfs": list(exports.trial_layouts(trial).values()),
            "blinded": policy.is_blinded_for(request.user, trial),
            "sites": policy.sites_for(request.user, trial, Perm.EXPORT_DATA).order_by("code")}


@require_GET
def export_crf_csv(request, slug: str, crf_code: str, form: str):
    trial = get_trial_for(request.user, slug, Perm.EXPORT_DATA)
    try:
        return downloads.crf_csv(request.user, trial, crf_code, form)
    except Http404 as missing:  # an unknown CRF or form: say which, on the exports page
        return _missing(request, trial, missing)


@require_GET
def export_all_csv(request, slug: str, form: str):
    """Every CRF's CSV in one ZIP archive."""
    trial = get_trial_for(request.user, slug, Perm.EXPORT_DATA)
    try:
        return downloads.all_crfs_zip(request.user, trial, form)
    except Http404 as missing:
        return _missing(request, trial, missing)


@require_GET
def export_odm(request, slug: str):
    trial = get_trial_for(request.user, slug, Perm.EXPORT_DATA)
    return downloads.odm_xml(request.user, trial)


def _missing(request, trial, missing: Http404):
    return render(request, "outcomes/exports.html", {
        **_exports_context(request, trial), "missing": str(missing)}, status=404)


# --------------------------------------------------------------------------- blank CRFs


@require_GET
def blank_crf_list(request, slug: str):
    """The blank CRFs of each protocol version of the trial, annotated or plain."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_PARTICIPANTS)
    return render(request, "outcomes/blank_crfs.html", _blank_crfs_context(trial))


def _blank_crfs_context(trial) -> dict:
    versions = list(trial.versions.order_by("-number").only("number", "label", "trial_id"))
    return {"trial": trial, "current_id": trial.current_version_id,
            "versions": [(v, definition_of(v.pk).get("crfs", [])) for v in versions]}


@require_GET
def blank_crf_pdf(request, slug: str, version: int, variant: str, crf_code: str):
    """One blank form of a protocol version, or all of them (``all``), annotated with the
    field codes or plain; 404 naming what is unknown (version, form, variant)."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_PARTICIPANTS)
    try:
        blank_crf.check_variant(variant)
        protocol = blank_crf.version_of(trial, version)
        crfs = blank_crf.forms_of(protocol, crf_code)
    except Http404 as missing:  # say which, on the blank CRFs page
        return render(request, "outcomes/blank_crfs.html", {
            **_blank_crfs_context(trial), "missing": str(missing)}, status=404)
    buffer = io.BytesIO()
    blank_crf.build_blank_crf(trial, protocol, crfs, annotated=variant == "annotated",
                              stream=buffer)
    response = HttpResponse(buffer.getvalue(), content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{trial.slug}-v{protocol.number}-{crf_code}-{variant}.pdf"')
    return response
