"""SAE reporting pages: the worklist (the clock), a report with its versions, the draft, the
signature, follow-ups, the sponsor's assessment, the pharmacovigilance unblinding, the PDFs and
the line listing. Thin: reads from ``safety.selectors``, writes through ``safety.services``
(and ``randomisation.services.safety_unblind``), permissions from ``trials.policy``."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from core.forms import attach_errors
from randomisation.selectors import allocation_of, allocation_view
from randomisation.services import safety_unblind
from reports import safety_listing
from safety import pdf, selectors, services
from safety.forms import (AssessmentForm, PasswordForm, SusarSubmissionForm, UnblindForm,
                          VersionForm)
from safety.models import Causality, Expectedness, VersionStatus
from trials import policy
from trials.policy import Perm
from trials.selectors import get_trial_for


def _trial(request, slug: str, perm: Perm = Perm.VIEW_SAFETY):
    """The trial (404 for a non-member); a member whose role lacks ``perm`` gets 403."""
    trial = get_trial_for(request.user, slug)
    if not policy.has_perm(request.user, perm, trial):
        raise PermissionDenied
    return trial


def sae_list(request, slug: str):
    trial = _trial(request, slug)
    return render(request, "safety/sae_list.html", {
        "trial": trial, "worklist": selectors.worklist(request.user, trial),
        "today": timezone.localdate(),
        "can_assess": policy.has_perm(request.user, Perm.ASSESS_SAFETY, trial)})


def _page(request, trial, report, *, draft_form=None, sign_form=None, assess_form=None,
          susar_form=None, status=200):
    user, site = request.user, report.participant.site
    draft = services.draft_of(report)
    products = services.products(trial)
    can_enter = policy.has_perm(user, Perm.ENTER_CRF, trial, site)
    assessment = selectors.assessment_of(report)
    allocation = allocation_of(report.participant)
    view = allocation_view(user, allocation) if allocation else None
    can_unblind = (trial.is_blinded and assessment is not None and assessment.susar
                   and policy.has_perm(user, Perm.SAFETY_UNBLIND, trial)
                   and view is not None and not view.arm_visible)
    return render(request, "safety/sae_detail.html", {
        "trial": trial, "report": report, "clock": selectors.clock(report),
        "versions": list(report.versions.select_related("signed_by").order_by("number")),
        "draft": draft, "products": products,
        "draft_form": draft_form or (VersionForm(products=products, version=draft)
                                     if draft and can_enter else None),
        "sign_form": sign_form or (PasswordForm() if draft and policy.has_perm(
            user, Perm.SIGN_CRF, trial, site) else None),
        "can_follow_up": draft is None and can_enter,
        "assessment": assessment,
        "susar_days_late": (assessment.susar_days_late(timezone.localdate())
                            if assessment else None),
        "susar_form": susar_form or (
            SusarSubmissionForm() if assessment and assessment.susar
            and assessment.susar_submitted_on is None
            and policy.has_perm(user, Perm.ASSESS_SAFETY, trial) else None),
        "assessment_rows": [{
            "product": p["label"], "reference": assessment.reference.get(p["code"], ""),
            "causality": dict(Causality.choices).get(assessment.causality.get(p["code"]), ""),
            "expectedness": dict(Expectedness.choices).get(
                assessment.expectedness.get(p["code"]), "")}
            for p in products] if assessment else [],
        "assess_form": assess_form or (AssessmentForm(products=products, initial={
            **{f"causality_{k}": v for k, v in (assessment.causality if assessment else {}).items()},
            **{f"expectedness_{k}": v for k, v in
               (assessment.expectedness if assessment else {}).items()},
            "comment": assessment.comment if assessment else ""})
            if report.reported_at and policy.has_perm(user, Perm.ASSESS_SAFETY, trial) else None),
        "treatment": view.treatment if view is not None and view.arm_visible else None,
        "can_unblind": can_unblind,
        "can_view_participant": policy.has_perm(user, Perm.VIEW_PARTICIPANTS, trial, site),
    }, status=status)


def sae_detail(request, slug: str, sae_id: int):
    trial = _trial(request, slug)
    report = selectors.report_for(request.user, trial, sae_id)
    return _page(request, trial, report)


@require_POST
def sae_save_draft(request, slug: str, sae_id: int):
    trial = _trial(request, slug)
    report = selectors.report_for(request.user, trial, sae_id)
    form = VersionForm(request.POST, products=services.products(trial))
    if form.is_valid():
        try:
            services.save_draft(report, form.values(), by=request.user)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Draft saved."))
            return redirect("sae_detail", slug, report.pk)
    return _page(request, trial, report, draft_form=form, status=400)


@require_POST
def sae_sign(request, slug: str, sae_id: int):
    trial = _trial(request, slug)
    report = selectors.report_for(request.user, trial, sae_id)
    if not policy.has_perm(request.user, Perm.SIGN_CRF, trial, report.participant.site):
        raise PermissionDenied
    draft = services.draft_of(report)
    form = PasswordForm(request.POST)
    if draft is None:
        messages.error(request, _("Every version of this report is signed already."))
        return redirect("sae_detail", slug, report.pk)
    if form.is_valid():
        try:
            services.sign_version(draft, by=request.user, request=request,
                                  password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("%(version)s signed.") % {"version": draft.label})
            return redirect("sae_detail", slug, report.pk)
    return _page(request, trial, report, sign_form=form, status=400)


@require_POST
def sae_follow_up(request, slug: str, sae_id: int):
    trial = _trial(request, slug)
    report = selectors.report_for(request.user, trial, sae_id)
    try:
        services.begin_follow_up(report, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("sae_detail", slug, report.pk)


def sae_assess(request, slug: str, sae_id: int):
    trial = _trial(request, slug, Perm.ASSESS_SAFETY)
    report = selectors.report_for(request.user, trial, sae_id)
    if request.method != "POST":
        return redirect("sae_detail", slug, report.pk)
    form = AssessmentForm(request.POST, products=services.products(trial))
    if form.is_valid():
        try:
            assessment = services.assess(report, by=request.user, **form.values())
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Assessed: SUSAR, report due by %(due)s.") % {
                "due": assessment.susar_due} if assessment.susar else _("Assessed: not a SUSAR."))
            return redirect("sae_detail", slug, report.pk)
    return _page(request, trial, report, assess_form=form, status=400)


def sae_susar_submitted(request, slug: str, sae_id: int):
    """The safety officer records the SUSAR's expedited report to the authorities."""
    trial = _trial(request, slug, Perm.ASSESS_SAFETY)
    report = selectors.report_for(request.user, trial, sae_id)
    if request.method != "POST":
        return redirect("sae_detail", slug, report.pk)
    form = SusarSubmissionForm(request.POST)
    if form.is_valid():
        try:
            services.record_susar_submission(report, by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Submission of the SUSAR recorded."))
            return redirect("sae_detail", slug, report.pk)
    return _page(request, trial, report, susar_form=form, status=400)


def sae_unblind(request, slug: str, sae_id: int):
    trial = _trial(request, slug, Perm.SAFETY_UNBLIND)
    report = selectors.report_for(request.user, trial, sae_id)
    form = UnblindForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            safety_unblind(report, by=request.user, request=request,
                           reason=form.cleaned_data["reason"],
                           password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.warning(request, _("Participant unblinded for pharmacovigilance. The arm "
                                        "is shown to you alone; the study team is not told."))
            return redirect("sae_detail", slug, report.pk)
    return render(request, "safety/unblind.html", {"trial": trial, "report": report,
                                                    "form": form},
                  status=400 if form.errors else 200)


def sae_pdf(request, slug: str, sae_id: int, number: int):
    trial = _trial(request, slug)
    report = selectors.report_for(request.user, trial, sae_id)
    version = report.versions.filter(number=number, status=VersionStatus.SIGNED).first()
    if version is None:
        raise Http404("No such signed version.")
    response = HttpResponse(pdf.cioms_pdf(version), content_type="application/pdf")
    response["Content-Disposition"] = (f'attachment; filename="{report.number}-'
                                       f'{version.number}.pdf"')
    return response


def sae_listing(request, slug: str):
    trial = _trial(request, slug)
    response = HttpResponse(safety_listing.listing_csv(request.user, trial),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{trial.slug}-sae-listing.csv"'
    return response
