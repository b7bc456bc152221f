import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
# ``gettext`` in the views (the request's language is active), ``gettext_lazy`` for what is
# built once at import (form labels).
from django.utils.translation import gettext as _, gettext_lazy, pgettext
from django.views.decorators.http import require_POST

from core import limits
from core.forms import DateInput, LimitedText, attach_errors
from patients.selectors import get_participant_for, get_trial_and_participant_for
from trials import policy
from trials.policy import Perm
from trials.selectors import get_trial_for

from supply.models import KitList
from supply.services import settings_of

from . import kitlist, pdf, selectors, services
from .models import AllocationList, Purpose


def _participant(request, slug, study_id, perm: Perm):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, perm, trial, participant.site):
        raise PermissionDenied
    return trial, participant


def _allocation(participant):
    allocation = selectors.allocation_of(participant)
    if allocation is None:
        raise Http404("Not randomised.")
    return allocation


def _strata_labels(trial, strata: dict[str, str]) -> list[tuple[str, str]]:
    labels = {f["code"]: (f["label"], {lvl["code"]: lvl["label"] for lvl in f["levels"]})
              for f in trial.definition.get("stratification_factors", [])}
    out = []
    for factor, level in strata.items():
        if factor == "site":
            out.append((_("Site"), level))
        else:
            name, levels = labels[factor]
            out.append((name, levels.get(level, level)))
    return out


def randomise(request, slug: str, study_id: str):
    """Confirm the strata, then randomise. GET shows what will be used, with a fresh key for
    this request; POST commits. A POST repeated with the same key (a retry after a lost
    answer) is answered as the first one was: the participant's allocation, with the kit."""
    trial, participant = _participant(request, slug, study_id, Perm.RANDOMISE)
    key = request.POST.get("key", "") if request.method == "POST" else ""
    if participant.is_randomised and not key:
        return redirect("allocation_detail", slug, study_id)
    if request.method == "POST":
        confirmed = {k[len("stratum_"):]: v for k, v in request.POST.items()
                     if k.startswith("stratum_")}
        try:
            services.randomise(participant, by=request.user, confirmed_strata=confirmed,
                               key=key)
        except ValidationError as exc:
            return _randomise_page(request, trial, participant, exc.messages,
                                   status=409 if getattr(exc, "code", None)
                                   in services.KEY_CONFLICTS else 400)
        messages.success(request, _("Participant randomised."))
        return redirect("allocation_detail", slug, study_id)
    try:
        services.check_can_randomise(participant)
        strata = services.participant_strata(participant)
        if services.active_list(trial) is None:
            raise services.RandomisationError(
                _("No active allocation list: the statistician must seal one."))
    except ValidationError as exc:
        return _randomise_page(request, trial, participant, exc.messages)
    return _randomise_page(request, trial, participant, None, strata=strata)


def _randomise_page(request, trial, participant, problem, *, strata=None, status=200):
    return render(request, "randomisation/randomise.html", {
        "trial": trial, "participant": participant, "strata": strata,
        "strata_labels": _strata_labels(trial, strata) if strata else [],
        "key": uuid.uuid4().hex if strata else "",
        "problem": problem}, status=status)


def allocation_detail(request, slug: str, study_id: str):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    allocation = _allocation(participant)
    view = selectors.allocation_view(request.user, allocation)
    return render(request, "randomisation/allocation_detail.html", {
        "trial": trial, "participant": participant, "view": view,
        "dispenses_kits": settings_of(trial) is not None,
        "strata_labels": _strata_labels(trial, allocation.strata),
        "can_unblind": (trial.is_blinded and not view.arm_visible and policy.has_perm(
            request.user, Perm.EMERGENCY_UNBLIND, trial, participant.site)),
        "can_correct": policy.has_perm(request.user, Perm.RANDOMISE, trial, participant.site),
        "corrections": allocation.corrections.select_related("corrected_by"),
        "in_error": getattr(allocation, "in_error", None),
        "emergency": getattr(allocation, "emergency", None),
        "can_record_error": policy.has_perm(request.user, Perm.RECORD_RANDOMISED_IN_ERROR, trial,
                                            participant.site),
    })


def certificate(request, slug: str, study_id: str):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    allocation = _allocation(participant)
    content = pdf.certificate(selectors.allocation_view(request.user, allocation))
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="randomisation-{study_id}.pdf"'
    return response


class UnblindForm(forms.Form):
    reason = LimitedText(limit=limits.REASON, label=gettext_lazy("Medical reason"))
    password = forms.CharField(widget=forms.PasswordInput,
                               label=gettext_lazy("Your password, again"))


def emergency_unblind(request, slug: str, study_id: str):
    trial, participant = _participant(request, slug, study_id, Perm.EMERGENCY_UNBLIND)
    allocation = _allocation(participant)
    form = UnblindForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.emergency_unblind(allocation, by=request.user, request=request,
                                       reason=form.cleaned_data["reason"],
                                       password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.warning(request, _("Participant unblinded. The sponsor and the statistician "
                                        "have been notified."))
            return redirect("allocation_detail", slug, study_id)
    return render(request, "randomisation/unblind.html",
                  {"trial": trial, "participant": participant, "form": form},
                  status=400 if form.errors else 200)


class CorrectionForm(forms.Form):
    factor = forms.ChoiceField(label=gettext_lazy("Factor"))
    correct_level = forms.CharField(label=gettext_lazy("Correct level"))
    reason = LimitedText(limit=limits.REASON, label=gettext_lazy("Reason"))

    def __init__(self, *args, factors, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["factor"].choices = [(code, code) for code in factors]


@require_POST
def correct_stratum(request, slug: str, study_id: str):
    trial, participant = _participant(request, slug, study_id, Perm.RANDOMISE)
    allocation = _allocation(participant)
    form = CorrectionForm(request.POST, factors=list(allocation.strata))
    if form.is_valid():
        try:
            services.correct_stratum(allocation, by=request.user, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Correction recorded; the allocation stands."))
    else:
        messages.error(request, " ".join(
            # Translators: a form field's label, then its errors.
            _("%(field)s: %(errors)s") % {
                "field": form.fields[k].label if k in form.fields else k, "errors": ", ".join(v)}
            for k, v in form.errors.items()))
    return redirect("allocation_detail", slug, study_id)


@require_POST
def record_randomised_in_error(request, slug: str, study_id: str):
    """The data manager or the site's coordinator records that this randomisation was in
    error; the allocation stands (intention to treat)."""
    _trial, participant = _participant(request, slug, study_id, Perm.RECORD_RANDOMISED_IN_ERROR)
    allocation = _allocation(participant)
    try:
        services.record_randomised_in_error(allocation, by=request.user,
                                            reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("allocation_detail", slug, study_id)
    messages.success(request, _("Recorded as randomised in error; the allocation stands and "
                                "the participant stays in the intention-to-treat population."))
    return redirect("allocation_detail", slug, study_id)


# ---------------------------------------------------------------- statistician only


class EmergencyAllocationForm(forms.Form):
    participant = forms.CharField(max_length=32, label=gettext_lazy("Participant (study ID)"))
    slot_number = forms.IntegerField(min_value=1, max_value=1000000,
                                     label=gettext_lazy("Envelope (slot number)"))
    made_at = forms.DateTimeField(
        label=gettext_lazy("Opened on (date and time, the trial's time zone)"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"])
    made_by = forms.CharField(max_length=200, label=gettext_lazy("Opened by (name, role)"))
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}),
                             label=gettext_lazy("Reason the envelope was used"))
    password = forms.CharField(widget=forms.PasswordInput,
                               label=gettext_lazy("Your password, again"))


def emergency_allocations(request, slug: str):
    """Record afterwards an allocation made from the sealed envelopes while the system was
    down, and list those recorded. The unblinded statistician only: 404 for everyone else."""
    trial = get_trial_for(request.user, slug)
    if not policy.has_perm(request.user, Perm.RECORD_EMERGENCY_ALLOCATION, trial):
        raise Http404("No such page.")
    form = EmergencyAllocationForm(request.POST or None)
    envelope = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            participant = get_participant_for(request.user, trial, data["participant"])
        except Http404:
            form.add_error("participant", _("No participant %(id)s in this trial.") % {
                "id": data["participant"]})
        else:
            envelope = services.next_envelope(participant)
            try:
                services.record_emergency_allocation(
                    participant, by=request.user, request=request,
                    slot_number=data["slot_number"], made_at=data["made_at"],
                    made_by=data["made_by"], reason=data["reason"], password=data["password"])
            except ValidationError as exc:
                attach_errors(form, exc)
            else:
                messages.warning(request, _(
                    "Emergency allocation of %(id)s recorded (slot #%(n)s).") % {
                    "id": participant.study_id, "n": data["slot_number"]})
                return redirect("allocation_detail", slug, participant.study_id)
    return render(request, "randomisation/emergency.html", {
        "trial": trial, "form": form, "envelope": envelope,
        "recorded": selectors.emergency_allocations_for(trial)},
        status=400 if form.errors else 200)


def _purpose_field():
    # Not given (an older form, a script): the trial's current mode's (``services._purpose``).
    return forms.ChoiceField(choices=Purpose.choices, required=False,
                             label=gettext_lazy("Purpose"),
                             help_text=gettext_lazy("A test list serves the trial only while it "
                                                    "is in test mode, a live list only once it "
                                                    "is live."))


class GenerateForm(forms.Form):
    purpose = _purpose_field()
    seed = forms.CharField(required=False, max_length=128, label=gettext_lazy("Seed"),
                           help_text=gettext_lazy("Leave empty for a fresh random seed; it is "
                                                  "recorded."))
    slots_per_stratum = forms.IntegerField(min_value=1, max_value=100000,
                                           label=gettext_lazy("Slots per stratum"))


class ImportForm(forms.Form):
    purpose = _purpose_field()
    file = forms.FileField(label=gettext_lazy("CSV file (stratum, sequence, arm, kit_code)"))
    note = LimitedText(limit=limits.NOTE, required=False, label=gettext_lazy("Note"),
                       widget=forms.TextInput)


def allocation_lists(request, slug: str):
    trial = get_trial_for(request.user, slug)
    selectors.require_statistician(request.user, trial)
    rnd = trial.definition["randomisation"]
    purpose = services.mode_purpose(trial)
    generate_form = GenerateForm(initial={"slots_per_stratum": rnd.get("slots_per_stratum", 50),
                                          "purpose": purpose})
    import_form = ImportForm(initial={"purpose": purpose})
    import_errors = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "generate":
                generate_form = GenerateForm(request.POST)
                if generate_form.is_valid():
                    alist = services.generate_list(trial, by=request.user,
                                                   **generate_form.cleaned_data)
                    messages.success(request, _("Draft list #%(n)s generated.") % {"n": alist.number})
                    return redirect("allocation_lists", slug)
            elif action == "import":
                import_form = ImportForm(request.POST, request.FILES)
                if import_form.is_valid():
                    upload = import_form.cleaned_data["file"]
                    if upload.size > 5 * 1024 * 1024:
                        raise ValidationError(_("The file is larger than 5 MB."))
                    alist = services.import_list(trial, upload.read(), by=request.user,
                                                 note=import_form.cleaned_data["note"],
                                                 purpose=import_form.cleaned_data["purpose"])
                    messages.success(request, _("Draft list #%(n)s imported.") % {"n": alist.number})
                    return redirect("allocation_lists", slug)
            elif action in ("seal", "verify"):
                alist = get_object_or_404(AllocationList, trial=trial,
                                          pk=_int(request.POST.get("list")))
                if action == "seal":
                    alist = services.seal_and_activate(alist, by=request.user)
                    messages.success(request, _("List #%(n)s sealed: SHA-256 %(d)s") % {
                        "n": alist.number, "d": alist.digest})
                else:
                    result = services.verify_list(alist)
                    if result.seal_ok:
                        messages.success(request, _("List #%(n)s matches its seal %(d)s.") % {
                            "n": alist.number, "d": result.stored})
                    else:
                        messages.error(request, _("List #%(n)s does NOT match its seal: stored "
                                                  "%(s)s, computed %(c)s.") % {
                            "n": alist.number,
                            "s": result.stored or pgettext("no stored seal", "none"),
                            "c": result.computed})
                    if result.problems:
                        # The problems are the command's English text (study IDs, slots).
                        messages.error(request, _(
                            "Allocations that do not match their slots in list #%(n)s: "
                            "%(problems)s") % {"n": alist.number, "problems": "; ".join(
                                str(p) for p in result.problems)})
                    elif result.seal_ok:
                        messages.success(request, _(
                            "Every allocation of list #%(n)s matches its slot.") % {
                            "n": alist.number})
                return redirect("allocation_lists", slug)
            else:
                messages.error(request, _("Unknown action."))
        except services.ListImportError as exc:
            import_errors = exc.rows
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    lists = list(selectors.lists_for(trial))
    for alist in lists:
        alist.strata_rows = list(selectors.strata_of(alist))
    return render(request, "randomisation/lists.html", {
        "trial": trial, "lists": lists, "generate_form": generate_form,
        "import_form": import_form, "import_errors": import_errors,
        "method": rnd["method"], "dispenses_kits": settings_of(trial) is not None},
        status=400 if import_errors else 200)


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise Http404("No such list.")


class KitListGenerateForm(forms.Form):
    kits = forms.IntegerField(min_value=1, max_value=kitlist.MAX_KITS,
                              label=gettext_lazy("Number of kits"))
    lot_size = forms.IntegerField(min_value=1, max_value=kitlist.MAX_KITS,
                                  label=gettext_lazy("Kits per lot"),
                                  help_text=gettext_lazy("Every lot holds every arm in the "
                                                         "ratio and has one expiry date."))
    expires_on = forms.DateField(label=gettext_lazy("Expiry date"),
                                 widget=DateInput())
    seed = forms.CharField(required=False, max_length=128, label=gettext_lazy("Seed"),
                           help_text=gettext_lazy("Leave empty for a fresh random seed; it is "
                                                  "recorded."))


class KitListImportForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file (kit_number, arm, lot, expires_on)"))


def kit_lists(request, slug: str):
    """The trial's kit lists: which arm each kit number holds, generated from a recorded seed
    or imported, sealed and verified like the allocation lists. The unblinded statistician
    only (404 for everyone else); a trial without product supply says so."""
    trial = get_trial_for(request.user, slug)
    selectors.require_statistician(request.user, trial)
    if settings_of(trial) is None:
        if request.method == "POST":
            messages.error(request, _("%(trial)s dispenses no kits (its protocol declares no "
                                      "product supply).") % {"trial": trial.short_title})
        return render(request, "randomisation/kit_lists.html",
                      {"trial": trial, "no_supply": True})
    generate_form, import_form = KitListGenerateForm(), KitListImportForm()
    import_errors = None
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "generate":
                generate_form = KitListGenerateForm(request.POST)
                if generate_form.is_valid():
                    made = kitlist.generate(trial, by=request.user, **generate_form.cleaned_data)
                    messages.success(request, _("Draft kit list #%(n)s generated.") % {
                        "n": made.number})
                    return redirect("kit_lists", slug)
            elif action == "import":
                import_form = KitListImportForm(request.POST, request.FILES)
                if import_form.is_valid():
                    upload = import_form.cleaned_data["file"]
                    if upload.size > 5 * 1024 * 1024:
                        raise ValidationError(_("The file is larger than 5 MB."))
                    try:
                        text = upload.read().decode("utf-8")
                    except UnicodeDecodeError:
                        raise ValidationError(_("The file is not UTF-8 text (save the table "
                                                "as CSV UTF-8)."))
                    made = kitlist.import_list(trial, text, by=request.user)
                    messages.success(request, _("Draft kit list #%(n)s imported.") % {
                        "n": made.number})
                    return redirect("kit_lists", slug)
            elif action in ("seal", "verify"):
                chosen = get_object_or_404(KitList, trial=trial,
                                           pk=_int(request.POST.get("list")))
                if action == "seal":
                    chosen = kitlist.seal(chosen, by=request.user)
                    messages.success(request, _("Kit list #%(n)s sealed: SHA-256 %(d)s") % {
                        "n": chosen.number, "d": chosen.digest})
                elif not chosen.digest:
                    messages.error(request, _("Kit list #%(n)s is a draft: it has no seal to "
                                              "verify against.") % {"n": chosen.number})
                elif kitlist.verify(chosen):
                    messages.success(request, _("Kit list #%(n)s matches its seal %(d)s.") % {
                        "n": chosen.number, "d": chosen.digest})
                else:
                    messages.error(request, _("Kit list #%(n)s does NOT match its seal: "
                                              "stored %(s)s, computed %(c)s.") % {
                        "n": chosen.number, "s": chosen.digest, "c": kitlist.digest(chosen)})
                return redirect("kit_lists", slug)
            else:
                messages.error(request, _("Unknown action."))
        except kitlist.KitListImportError as exc:
            import_errors = exc.rows
        except ValidationError as exc:
            if action in ("generate", "import"):
                attach_errors(generate_form if action == "generate" else import_form, exc)
            else:
                messages.error(request, " ".join(exc.messages))
    return render(request, "randomisation/kit_lists.html", {
        "trial": trial, "lists": selectors.kit_lists_for(trial),
        "generate_form": generate_form, "import_form": import_form,
        "import_errors": import_errors},
        status=400 if import_errors or generate_form.errors or import_form.errors else 200)


def balance(request, slug: str):
    trial = get_trial_for(request.user, slug)
    selectors.require_statistician(request.user, trial)
    arms, rows, totals, largest = selectors.balance_report(trial)
    return render(request, "randomisation/balance.html", {
        "trial": trial, "arms": arms, "rows": rows, "totals": totals, "largest": largest})


class GoLiveForm(forms.Form):
    password = forms.CharField(widget=forms.PasswordInput,
                               label=gettext_lazy("Your password, again"))


def go_live(request, slug: str):
    """End the trial's test mode (irreversible): the statistician or the data manager, with
    their password again; refused without a sealed live list."""
    trial = get_trial_for(request.user, slug)
    if not policy.has_perm(request.user, Perm.GO_LIVE, trial):
        raise PermissionDenied
    form = GoLiveForm(request.POST or None)
    if request.method == "POST" and trial.is_test_mode and form.is_valid():
        try:
            services.go_live(trial, by=request.user, request=request,
                             password=form.cleaned_data["password"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("%(trial)s is live: participants registered from now "
                                        "on count, and are randomised from the live list "
                                        "only.") % {"trial": trial.short_title})
            return redirect("trial_detail", slug)
    return render(request, "randomisation/go_live.html", {
        "trial": trial, "form": form,
        "live_list": services.active_list(trial, Purpose.LIVE),
        "test_participants": trial.participants.filter(test=True).count()},
        status=400 if form.errors else 200)
