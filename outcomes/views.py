from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext_lazy as _

from patients.models import Visit
from patients.selectors import get_participant_for
from trials import policy
from trials.models import crf_of
from trials.policy import Perm
from trials.selectors import get_trial_for

from . import services
from .forms import build_crf_form, form_to_data
from .models import CRFRecord


def _field_name(path: str) -> str:
    """A stored-data path (``events[1].end_date``) as the form field's name (``events-1-end_date``)."""
    return path.replace("[", "-").replace("].", "-")


def crf_edit(request, slug: str, study_id: str, crf_code: str, visit_id: int | None = None):
    """Enter or change one CRF of a participant: at a visit, or outside visits (eligibility,
    events such as progression or death)."""
    trial = get_trial_for(request.user, slug)
    participant = get_participant_for(request.user, trial, study_id)
    visit = None
    if visit_id is not None:
        visit = Visit.objects.filter(participant=participant, pk=visit_id).first()
        if visit is None or crf_code not in (visit.crfs or []):
            raise Http404("No such form at this visit.")
    if not policy.has_perm(request.user, Perm.ENTER_CRF, trial, participant.site):
        raise PermissionDenied
    record = CRFRecord.objects.filter(participant=participant, crf_code=crf_code,
                                      visit=visit).first()
    definition = crf_of(record.protocol_version_id if record else participant.protocol_version_id,
                        crf_code)
    if definition is None:
        raise Http404("No such CRF in this protocol.")
    stored = record.data if record else {}
    complete = request.POST.get("action") == "complete"
    form = build_crf_form(definition, mode="complete" if complete else "draft",
                          data=request.POST or None, initial=stored)
    if request.method == "POST" and form.is_valid():
        try:
            record = services.save_crf(participant, crf_code, form_to_data(form),
                                       by=request.user, complete=complete, record=record,
                                       visit=visit, reason=request.POST.get("reason", ""))
        except ValidationError as exc:
            # Errors about one answer (e.g. a surgery date before randomisation) go next to it.
            errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
            for name, messages_ in errors.items():
                name = _field_name(name) if name else None
                form.add_error(name if name in form.fields else None, messages_)
        else:
            for warning in record.warnings:
                messages.warning(request, warning.message)
            messages.success(request, _("%(crf)s saved (%(status)s).") % {
                "crf": definition["label"], "status": record.get_status_display()})
            return redirect("participant_detail", slug, study_id)
    return render(request, "outcomes/crf_edit.html", {
        "trial": trial, "participant": participant, "definition": definition, "form": form,
        "record": record, "visit": visit}, status=400 if form.errors else 200)
