"""CRF pages: enter and read a CRF, sign, lock and unlock it, raise and answer its queries, read
its history and print it. Thin: permissions come from ``trials.policy``, reads from
``crfs.selectors``, every change from ``crfs.services`` (a save or a correction through
``scheduling.services``, which re-plans the visits after it).

Every participant is fetched through ``patients.selectors.get_trial_and_participant_for`` (the
site check of ``patients.selectors``), so a CRF or query of another site answers 404 whatever
the URL. A failed action re-renders the CRF page with its form bound and the error next to the
field, status 400.
"""
from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from core import limits
from core.dates import shown_instant
from core.forms import LimitedText, attach_errors
from crfs import checks, eligibility, pdf, selectors, services, trail, verification
from crfs.forms import build_crf_form, form_to_data
from crfs.models import CRFRecord, CRFStatus, DataQuery, QueryStatus, SignatureMeaning
from patients.models import Visit
from patients.selectors import get_trial_and_participant_for
from safety import selectors as safety_selectors
from scheduling import services as scheduling
from supply.selectors import visit_kit
from supply.services import settings_of
from trials import policy
from trials.models import definition_of
from trials.policy import Perm


def _field_name(path: str) -> str:
    """A stored-data path (``events[1].end_date``) as the form field's name
    (``events-1-end_date``)."""
    return path.replace("[", "-").replace("].", "-")


def record_url(record: CRFRecord, study_id: str, slug: str) -> str:
    if record.visit_id:
        return reverse("visit_crf_edit", args=[slug, study_id, record.visit_id, record.crf_code])
    return reverse("crf_edit", args=[slug, study_id, record.crf_code])


# --------------------------------------------------------------------------- small forms


class SignForm(forms.Form):
    meaning = forms.ChoiceField(choices=[(m.value, m.label) for m in services.SIGN_MEANINGS],
                                widget=forms.RadioSelect,
                                label=_("Meaning of your signature"))
    password = forms.CharField(label=_("Your password, again"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}))
    version = forms.IntegerField(widget=forms.HiddenInput)


class ReasonForm(forms.Form):
    reason = LimitedText(limit=limits.REASON, rows=2, label=_("Reason"),
                         error_messages={"required": _("Give the reason.")})


class RaiseQueryForm(forms.Form):
    field_path = forms.ChoiceField(label=_("Field"))
    text = LimitedText(limit=limits.QUERY_TEXT, rows=2, label=_("Question"),
                       error_messages={"required": _("Write the question.")})

    def __init__(self, *args, paths: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field_path"].choices = [("", "—")] + paths
        self.fields["field_path"].error_messages["invalid_choice"] = _(
            "This CRF has no such field.")


class VerifyForm(forms.Form):
    """The monitor's source data verification of one completed form: all of it, or the answers
    ticked (prefilled with what the protocol's monitoring plan asks)."""
    scope = forms.ChoiceField(
        label=_("Verified against the source"), widget=forms.RadioSelect,
        choices=[("form", _("The whole form")), ("fields", _("These answers only"))],
        error_messages={"required": _("Choose the whole form or the answers verified.")})
    paths = forms.MultipleChoiceField(label=_("Answers"), required=False,
                                      widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, paths: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["paths"].choices = paths
        self.fields["paths"].error_messages["invalid_choice"] = _(
            "This CRF has no field “%(value)s”.")

    def clean(self):
        data = super().clean()
        if data.get("scope") == "fields" and not data.get("paths"):
            self.add_error("paths", _("Tick the answers you verified against the source."))
        return data

    def chosen(self) -> list[str] | None:
        """The paths to mark: None for the whole form."""
        if self.cleaned_data["scope"] == "form":
            return None
        return self.cleaned_data["paths"]


def verify_form_for(record: CRFRecord, data=None) -> VerifyForm:
    needed = verification.required(record)
    fields_only = [p for p in needed if p != verification.WHOLE_FORM]
    return VerifyForm(data, paths=trail.field_paths(record.definition, record.data),
                      initial={"scope": "fields" if fields_only else "form",
                               "paths": fields_only})


def error_summary(form) -> list[dict]:
    """Each error of a bound CRF form with the anchor of its field, for the summary at the top
    of the form (role="alert", focused: each link leads to its field)."""
    out = []
    for name, errors in form.errors.items():
        if name not in form.fields:  # the form's own errors
            out += [{"href": "", "label": "", "message": e} for e in errors]
            continue
        if name.endswith("-TOTAL"):
            continue
        field = form.fields[name]
        if f"{name}-TOTAL" in form.fields:  # a group's own errors (too few rows…)
            href = f"{name}-group"
        elif "-" in name:  # a cell of a group's row
            href = form[name].id_for_label or f"{name.split('-', 1)[0]}-group"
        else:
            href = form[name].id_for_label or f"{name}-field"
        out += [{"href": href, "label": field.label or name, "message": e} for e in errors]
    return out


def next_form_code(visit: Visit | None, crf_code: str) -> str | None:
    """The form after ``crf_code`` in the visit's list of expected forms, if any."""
    codes = list(visit.crfs or []) if visit is not None else []
    if crf_code in codes and codes.index(crf_code) + 1 < len(codes):
        return codes[codes.index(crf_code) + 1]
    return None


def next_form_url(visit: Visit | None, crf_code: str, study_id: str, slug: str) -> str:
    """After "save and go to the next form": the visit's next form, else the participant's
    page."""
    code = next_form_code(visit, crf_code)
    if code is None:
        return reverse("participant_detail", args=[slug, study_id])
    return reverse("visit_crf_edit", args=[slug, study_id, visit.pk, code])


class QueryTextForm(forms.Form):
    text = LimitedText(limit=limits.QUERY_TEXT, rows=2, required=False, label=_("Message"))


# --------------------------------------------------------------------------- the CRF page


def _visit(participant, visit_id: int | None, crf_code: str) -> Visit | None:
    if visit_id is None:
        return None
    visit = Visit.objects.filter(participant=participant, pk=visit_id).first()
    if visit is None or not services.expected_at(visit, crf_code):
        raise Http404("No such form at this visit.")
    return visit


def crf_edit(request, slug: str, study_id: str, crf_code: str, visit_id: int | None = None):
    """The page of one CRF of a participant, at a visit or outside visits (eligibility, events
    such as progression or death): entered here by the site, read by every role that may see
    the participant (disabled fields), with its signatures, lock and queries."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    visit = _visit(participant, visit_id, crf_code)
    page = selectors.crf_page(participant, crf_code, visit)
    if page.definition is None:
        raise Http404("No such CRF in this protocol.")
    if request.method != "POST":
        return _crf_page(request, trial, page)
    if not policy.has_perm(request.user, Perm.ENTER_CRF, trial, participant.site):
        raise PermissionDenied
    record = page.record
    action = request.POST.get("action")
    complete = action in ("complete", "complete_next")
    version_id = record.protocol_version_id if record else participant.protocol_version_id
    form = build_crf_form(page.definition, mode="complete" if complete else "draft",
                          data=request.POST, initial=record.data if record else {},
                          derivable=eligibility.derivable(definition_of(version_id), crf_code))
    reason = request.POST.get("reason", "")
    query_id = request.POST.get("answers_query", "")
    query = next((q for q in page.unresolved if str(q.pk) == query_id), None)
    reason_errors: list[str] = []
    if query_id and query is None:
        form.add_error(None, _("That query is not open on this CRF."))
    elif query is not None and not policy.has_perm(request.user, Perm.ANSWER_QUERY, trial,
                                                   participant.site):
        raise PermissionDenied
    if form.is_valid():
        try:
            if query is not None:
                record = scheduling.answer_query_and_replan(
                    query, by=request.user, text=reason, correction=form_to_data(form),
                    complete=complete).record
            else:
                record = scheduling.save_crf_and_replan(
                    participant, crf_code, form_to_data(form), by=request.user,
                    complete=complete, record=record, visit=visit, reason=reason)
        except ValidationError as exc:
            # Errors about one answer (e.g. a surgery date before randomisation) go next to it.
            errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
            for name, messages_ in errors.items():
                if name in ("reason", "text"):
                    reason_errors += messages_
                    continue
                name = _field_name(name) if name else None
                form.add_error(name if name in form.fields else None, messages_)
        else:
            for warning in record.warnings:
                messages.warning(request, warning.message)
            messages.success(request, _("%(crf)s saved (%(status)s).") % {
                "crf": page.definition["label"], "status": record.get_status_display()})
            for sae in safety_selectors.unreported_of(record):
                messages.warning(request, _(
                    "SAE report %(number)s (%(term)s) is open: sign it by %(due)s, 24 hours "
                    "after the site became aware.") % {
                    "number": sae.number, "term": sae.term,
                    "due": shown_instant(sae.due_at, zone=False)})
            voided = getattr(record, "sdv_voided", None) or []
            if voided:
                messages.warning(request, _(
                    "These answers were verified against the source and changed: their "
                    "verification was removed, the monitor verifies them again: %(what)s.") % {
                    "what": ", ".join(v.label for v in voided)})
            if query is not None:
                return redirect(record_url(record, study_id, slug) + f"#query-{query.pk}")
            if action == "complete_next":
                return redirect(next_form_url(visit, crf_code, study_id, slug))
            return redirect("participant_detail", slug, study_id)
    return _crf_page(request, trial, page, form=form, reason_errors=reason_errors, status=400)


def _attach_queries(form, page: selectors.CRFPage) -> None:
    """Put each open query next to its field: the partial draws ``item.queries``."""
    by_path = page.queries_by_path()
    for item in form.layout:
        code = item.definition["code"]
        item.queries = by_path.get(code, [])
        if item.is_group:
            for row in item.rows:
                for cell in row.cells:
                    cell.queries = by_path.get(f"{code}[{row.index}].{cell.definition['code']}",
                                               [])


def _attach_checks(form, page: selectors.CRFPage) -> None:
    """The CRF's edit checks for the page to run as the user types (static/js/checks.js), with
    the values they read outside the form (anchors, other forms' answers)."""
    participant, record = page.participant, page.record
    version_id = record.protocol_version_id if record else participant.protocol_version_id
    protocol = definition_of(version_id)
    visit = record.visit if record is not None else page.visit
    refs = selectors.check_references(participant, checks.referenced(page.definition, protocol),
                                      visit=visit)
    form.check_rules = checks.page_rules(page.definition, protocol, refs, timezone.localdate())


def _attach_marks(form, page: selectors.CRFPage) -> None:
    """Put each source verification mark in force next to its answer (``item.mark``)."""
    marks = page.marks_by_path()
    for item in form.layout:
        code = item.definition["code"]
        item.mark = marks.get(code)
        if item.is_group:
            for row in item.rows:
                for cell in row.cells:
                    cell.mark = marks.get(f"{code}[{row.index}].{cell.definition['code']}")


def _attach_kit(form, trial, page: selectors.CRFPage) -> None:
    """On the dispensing form of a dispensing visit (protocol ``supply.dispensing``), the kit
    assigned at the visit next to the kit field (``item.assigned_kit``): what the save checks
    the number against. One query, on that page only."""
    settings = settings_of(trial)
    visit = page.visit
    if (settings is None or visit is None or page.crf_code != settings["dispensing"]["crf"]
            or visit.code not in settings["dispensing"]["visits"]):
        return
    current = visit_kit(visit)
    for item in form.layout:
        if item.definition["code"] == settings["dispensing"]["field"]:
            item.kit_hint = {"number": current.kit.number if current else None}


def _crf_page(request, trial, page: selectors.CRFPage, *, form=None, failed: dict | None = None,
              reason_errors: list[str] | None = None, status: int = 200):
    user, participant, record = request.user, page.participant, page.record
    site = participant.site
    locked = record is not None and record.status == CRFStatus.LOCKED
    can = {
        "enter": policy.has_perm(user, Perm.ENTER_CRF, trial, site) and not locked,
        "sign": (record is not None and record.status == CRFStatus.COMPLETE
                 and policy.has_perm(user, Perm.SIGN_CRF, trial, site)),
        "lock": record is not None and policy.has_perm(user, Perm.LOCK_CRF, trial, site),
        "raise": record is not None and policy.has_perm(user, Perm.RAISE_QUERY, trial, site),
        "answer": policy.has_perm(user, Perm.ANSWER_QUERY, trial, site),
        "verify": (record is not None and record.status != CRFStatus.DRAFT
                   and policy.has_perm(user, Perm.VERIFY_SOURCE, trial, site)),
    }
    if form is None:
        form = build_crf_form(page.definition, initial=record.data if record else {})
    if not can["enter"]:
        for field in form.fields.values():
            field.disabled = True
    _attach_queries(form, page)
    _attach_checks(form, page)
    _attach_kit(form, trial, page)
    _attach_marks(form, page)
    failed = failed or {}
    raise_form = failed.get("raise") or (RaiseQueryForm(
        paths=trail.field_paths(page.definition, record.data)) if can["raise"] else None)
    return render(request, "outcomes/crf_edit.html", {
        "trial": trial, "participant": participant, "definition": page.definition,
        "form": form, "record": record, "visit": page.visit, "page": page, "can": can,
        "failed": failed, "raise_form": raise_form,
        "unlock_form": failed.get("unlock") or ReasonForm(),
        "reason_errors": reason_errors or [],
        "reason_value": request.POST.get("reason", "") if request.method == "POST" else "",
        "statuses": QueryStatus,
        "query_text_limit": limits.QUERY_TEXT.chars,
        "verify_form": failed.get("verify") or (verify_form_for(record) if can["verify"]
                                                else None),
        "whole_form_mark": page.marks_by_path().get(verification.WHOLE_FORM),
        "error_summary": error_summary(form) if form.is_bound else [],
        "next_form": next_form_code(page.visit, page.crf_code),
    }, status=status)



# --------------------------------------------------------------------------- record actions


def _record(request, slug: str, study_id: str, record_id: int):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    record = get_object_or_404(CRFRecord.objects.select_related("visit"), pk=record_id,
                               participant=participant)
    record.participant = participant
    return trial, participant, record


def _page_after_failure(request, trial, record, failed: dict):
    page = selectors.crf_page(record.participant, record.crf_code, record.visit)
    return _crf_page(request, trial, page, failed=failed, status=400)


def crf_sign(request, slug: str, study_id: str, record_id: int):
    """The investigator reads the CRF as it will be signed, chooses the meaning of the signature
    and types their password again."""
    trial, participant, record = _record(request, slug, study_id, record_id)
    if not policy.has_perm(request.user, Perm.SIGN_CRF, trial, participant.site):
        raise PermissionDenied
    page = selectors.crf_page(participant, record.crf_code, record.visit)
    form = SignForm(request.POST if request.method == "POST" else None,
                    initial={"meaning": SignatureMeaning.ACCURATE, "version": page.version})
    if request.method == "POST" and form.is_valid():
        try:
            services.sign_crf(page.record, by=request.user, request=request,
                              password=form.cleaned_data["password"],
                              meaning=form.cleaned_data["meaning"],
                              version=form.cleaned_data["version"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("%(crf)s signed.") % {"crf": page.definition["label"]})
            return redirect(record_url(record, study_id, slug))
    return render(request, "outcomes/crf_sign.html", {
        "trial": trial, "participant": participant, "page": page, "record": page.record,
        "definition": page.definition, "form": form,
        "answers": selectors.answers(page.definition, page.record.data),
        "printed_name": request.user.get_full_name() or request.user.get_username(),
    }, status=400 if form.errors else 200)


@require_POST
def crf_lock(request, slug: str, study_id: str, record_id: int):
    trial, participant, record = _record(request, slug, study_id, record_id)
    if not policy.has_perm(request.user, Perm.LOCK_CRF, trial, participant.site):
        raise PermissionDenied
    try:
        services.lock_crf(record, by=request.user)
    except ValidationError as exc:
        return _page_after_failure(request, trial, record, {"lock": exc.messages})
    messages.success(request, _("CRF locked."))
    return redirect(record_url(record, study_id, slug))


@require_POST
def crf_unlock(request, slug: str, study_id: str, record_id: int):
    trial, participant, record = _record(request, slug, study_id, record_id)
    if not policy.has_perm(request.user, Perm.LOCK_CRF, trial, participant.site):
        raise PermissionDenied
    form = ReasonForm(request.POST)
    if form.is_valid():
        try:
            services.unlock_crf(record, by=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("CRF unlocked."))
            return redirect(record_url(record, study_id, slug))
    return _page_after_failure(request, trial, record, {"unlock": form})


@require_POST
def crf_verify(request, slug: str, study_id: str, record_id: int):
    """The monitor marks the form, or the answers ticked, verified against the source."""
    trial, participant, record = _record(request, slug, study_id, record_id)
    if not policy.has_perm(request.user, Perm.VERIFY_SOURCE, trial, participant.site):
        raise PermissionDenied
    form = verify_form_for(record, request.POST)
    if form.is_valid():
        try:
            done = verification.verify(record, by=request.user, paths=form.chosen())
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {None: exc.messages}
            for name, messages_ in errors.items():
                form.add_error("paths" if name == "field_path" else None, messages_)
        else:
            if done:
                messages.success(request, _("Verified against the source: %(what)s.") % {
                    "what": ", ".join(trail.path_label(record.definition, m.field_path)
                                      if m.field_path else str(_("the whole form"))
                                      for m in done)})
            else:
                messages.info(request, _("These answers were already verified."))
            return redirect(record_url(record, study_id, slug) + "#verification")
    return _page_after_failure(request, trial, record, {"verify": form})


@require_GET
def crf_history(request, slug: str, study_id: str, record_id: int):
    """Every version of the CRF, field by field: who, when, old value, new value, reason."""
    trial, participant, record = _record(request, slug, study_id, record_id)
    page = selectors.crf_page(participant, record.crf_code, record.visit)
    return render(request, "outcomes/crf_history.html", {
        "trial": trial, "participant": participant, "record": page.record, "page": page,
        "definition": page.definition, "versions": selectors.crf_history(page.record)})


@require_GET
def crf_pdf(request, slug: str, study_id: str, record_id: int):
    """The CRF on paper, with its signatures' printed name, date and time and meaning."""
    trial, participant, record = _record(request, slug, study_id, record_id)
    page = selectors.crf_page(participant, record.crf_code, record.visit)
    content = pdf.crf_pdf(page, trial=trial, printed_by=request.user)
    response = HttpResponse(content, content_type="application/pdf")
    name = f"{study_id}-{record.crf_code}" + (f"-visit-{record.visit_id}" if record.visit_id
                                              else "")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


# --------------------------------------------------------------------------- queries


@require_POST
def query_raise(request, slug: str, study_id: str, record_id: int):
    trial, participant, record = _record(request, slug, study_id, record_id)
    if not policy.has_perm(request.user, Perm.RAISE_QUERY, trial, participant.site):
        raise PermissionDenied
    form = RaiseQueryForm(request.POST, paths=trail.field_paths(record.definition, record.data))
    if form.is_valid():
        try:
            query = services.raise_query(record, by=request.user,
                                         field_path=form.cleaned_data["field_path"],
                                         text=form.cleaned_data["text"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Query #%(n)d raised.") % {"n": query.pk})
            return redirect(record_url(record, study_id, slug) + f"#query-{query.pk}")
    return _page_after_failure(request, trial, record, {"raise": form})


QUERY_ACTIONS = {
    # action: (permission, service, success message)
    "answer": (Perm.ANSWER_QUERY, services.answer_query, _("Query #%(n)d answered.")),
    "close": (Perm.RAISE_QUERY, services.close_query, _("Query #%(n)d closed.")),
    "reopen": (Perm.RAISE_QUERY, services.reopen_query, _("Query #%(n)d re-opened.")),
}


@require_POST
def query_action(request, slug: str, study_id: str, query_id: int, action: str):
    """Answer (the site), close or re-open (the data manager) one query, with a message."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    query = get_object_or_404(DataQuery.objects.select_related("record__visit"), pk=query_id,
                              record__participant=participant)
    record = query.record
    record.participant = participant
    perm, service, done = QUERY_ACTIONS[action]
    if not policy.has_perm(request.user, perm, trial, participant.site):
        raise PermissionDenied
    form = QueryTextForm(request.POST)
    form.is_valid()  # a plain optional text: always valid; the service says what is missing
    try:
        service(query, by=request.user, text=form.cleaned_data.get("text", ""))
    except ValidationError as exc:
        attach_errors(form, exc)
        return _page_after_failure(request, trial, record,
                                   {"query": query.pk, "action": action, "form": form})
    messages.success(request, done % {"n": query.pk})
    return redirect(record_url(record, study_id, slug) + f"#query-{query.pk}")
