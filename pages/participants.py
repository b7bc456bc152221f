"""Participant pages: the list, screening, the participant's page, consent, the visit worklist
and a participant's visit timeline with the coordinator's visit actions and, in a trial with
product supply, each dispensing visit's kit. Thin: reads from the selectors of ``patients``,
``crfs``, ``scheduling``, ``supply`` and ``randomisation``, changes through their services,
permissions from ``trials.policy``."""
import dataclasses

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from core import limits
from core.dates import shown_date
from core.forms import LimitedText, attach_errors
from crfs import selectors as crf_selectors
from crfs import eligibility, screening
from crfs import services as crf_services
from crfs.form_states import missing_forms
from crfs.models import UNRESOLVED, CRFRecord, CRFStatus
from patients import screening as screening_log
from patients import locks as casebook_locks
from patients import selectors, services
from patients.consent import (consent_in_force, consent_versions, current_amendment,
                              reconsent_from, withdrawal_rules)
from patients.forms import (ConsentForm, RescreenForm, ScreeningForm, ScreeningLogForm,
                            UnscheduledVisitForm, VisitActionForm, WithdrawalForm)
from patients.models import Status, Visit, VisitState, VisitStatus
from patients.selectors import get_trial_and_participant_for
from randomisation import services as randomisation
from randomisation.selectors import allocation_of, allocation_view, to_randomise
from reports import services as reports
from scheduling import services as scheduling
from scheduling import selectors as schedule
from supply import selectors as supply
from supply.models import KitStatus, ReleaseKind
from supply.services import settings_of
from trials import policy
from trials.policy import Perm
from trials.selectors import get_trial_for


def participant_list(request, slug: str):
    trial = get_trial_for(request.user, slug)
    participants = selectors.participants_for(request.user, trial)
    return render(request, "patients/participant_list.html", {
        "trial": trial, "participants": participants,
        "can_screen": policy.sites_for(request.user, trial, Perm.SCREEN).exists()})


def participant_detail(request, slug: str, study_id: str):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    user, site = request.user, participant.site
    allocation = allocation_of(participant)
    record = eligibility.record_with_signatures(participant)
    can_screen = policy.has_perm(user, Perm.SCREEN, trial, site)
    timeline = schedule.timeline(participant) if allocation else None
    forms = crf_selectors.participant_forms(participant)
    return render(request, "patients/participant_detail.html", {
        "trial": trial, "participant": participant,
        "timeline": timeline, "forms": forms,
        "missing_forms": (missing_forms(timeline.visits, forms.records, timeline.today,
                                        definition=participant.definition)
                          if timeline else []),
        "eligibility": eligibility.evaluate(participant, record),
        "confirmation_required": eligibility.confirmation_required(participant),
        "confirmation": eligibility.confirmation(record),
        "ready_state": eligibility.ready_state(participant, record),
        "can_confirm": policy.has_perm(user, Perm.CONFIRM_ELIGIBILITY, trial, site),
        "screen_failed": participant.status == Status.SCREEN_FAILED,
        "episodes": screening.episodes(participant),
        "can_rescreen": (can_screen and participant.status == Status.SCREEN_FAILED
                         and screening.rescreening_allowed(participant)),
        "rescreen_form": RescreenForm(),
        "in_error": getattr(allocation, "in_error", None) if allocation else None,
        "emergency": getattr(allocation, "emergency", None) if allocation else None,
        "allocation": allocation_view(user, allocation) if allocation else None,
        "can_screen": can_screen,
        "can_enter": policy.has_perm(user, Perm.ENTER_CRF, trial, site),
        "can_randomise": policy.has_perm(user, Perm.RANDOMISE, trial, site),
        "consent": selectors.consent_overview(participant),
        # Kit numbers, visits and how each assignment ended: never an arm.
        "kits": (list(supply.participant_kits(participant))
                 if allocation and settings_of(trial) is not None else None),
        "can_request_casebook": reports.may_request_casebook(user, participant),
        "data_state": casebook_locks.shown_state(participant),
        "can_lock_data": policy.has_perm(user, Perm.LOCK_DATA, trial, site),
    })


def screen_participant(request, slug: str):
    trial = get_trial_for(request.user, slug)
    sites = policy.sites_for(request.user, trial, Perm.SCREEN).filter(active=True)
    if not sites.exists():
        raise Http404("You cannot screen participants in this trial.")
    form = ScreeningForm(request.POST or None, sites=sites)
    if request.method == "POST" and form.is_valid():
        participant = services.register_participant(
            trial, form.cleaned_data["site"], by=request.user,
            screened_on=form.cleaned_data["screened_on"])
        messages.success(request, _("Participant %(id)s registered.") % {"id": participant.study_id})
        return redirect("participant_detail", slug, participant.study_id)
    return render(request, "patients/screen.html", {"trial": trial, "form": form},
                  status=400 if form.errors else 200)


def _consent_form(participant, overview, data=None) -> ConsentForm:
    """The consent form: the protocol's versions (the newest first), and the record in effect,
    which a correction may replace."""
    versions = consent_versions(participant.trial.definition)
    in_force = consent_in_force(participant.trial.definition)
    return ConsentForm(data, versions=list(reversed(versions)), initial={
        "consent_version": overview.reconsent_to or in_force or ""},
        corrects=[(r.pk, f"{r.version} — {shown_date(r.consent_date)} ({r.get_kind_display()})")
                  for r in [overview.in_effect] if r is not None])


def record_consent(request, slug: str, study_id: str):
    """Record a first consent, a re-consent to an amendment's form, or a correction."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, Perm.SCREEN, trial, participant.site):
        raise PermissionDenied
    overview = selectors.consent_overview(participant)
    form = _consent_form(participant, overview, request.POST or None)
    if request.method == "POST" and form.is_valid():
        corrects = form.cleaned_data.get("corrects")
        try:
            scheduling.record_consent_and_replan(
                participant, by=request.user, consent_date=form.cleaned_data["consent_date"],
                version=form.cleaned_data["consent_version"],
                taken_by=form.cleaned_data["taken_by"], answers=form.answers(),
                corrects=next((r for r in overview.records if r.pk == corrects), None)
                if corrects else None, reason=form.cleaned_data.get("reason", ""))
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Consent recorded."))
            return redirect("participant_detail", slug, study_id)
    return render(request, "patients/consent.html",
                  {"trial": trial, "participant": participant, "form": form,
                   "consent": overview},
                  status=400 if form.errors else 200)


class ConfirmEligibilityForm(forms.Form):
    password = forms.CharField(label=_("Your password, again"), strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete":
                                                                 "current-password"}))
    version = forms.IntegerField(widget=forms.HiddenInput)


def confirm_eligibility(request, slug: str, study_id: str):
    """The investigator reads the eligibility form as it will be confirmed and types their
    password again: the e-signature that lets the coordinator randomise
    (``crfs.services.confirm_eligibility``)."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, Perm.CONFIRM_ELIGIBILITY, trial, participant.site):
        raise PermissionDenied
    page = crf_selectors.crf_page(participant, eligibility.ELIGIBILITY_CRF, None)
    record = page.record
    form = ConfirmEligibilityForm(request.POST if request.method == "POST" else None,
                                  initial={"version": page.version})
    if request.method == "POST" and form.is_valid():
        try:
            crf_services.confirm_eligibility(
                participant, by=request.user, request=request,
                password=form.cleaned_data["password"], version=form.cleaned_data["version"])
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Eligibility of %(id)s confirmed.") % {
                "id": participant.study_id})
            return redirect("participant_detail", slug, study_id)
    return render(request, "patients/confirm_eligibility.html", {
        "trial": trial, "participant": participant, "record": record, "form": form,
        "definition": page.definition,
        "answers": crf_selectors.answers(page.definition, record.data if record else None),
        "eligibility": eligibility.evaluate(participant, record),
        "confirmation": eligibility.confirmation(record),
        "printed_name": request.user.get_full_name() or request.user.get_username(),
    }, status=400 if form.errors else 200)


def record_withdrawal(request, slug: str, study_id: str):
    """Record a withdrawal at one of its levels (coordinator)."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, Perm.SCREEN, trial, participant.site):
        raise PermissionDenied
    form = WithdrawalForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            scheduling.record_withdrawal_and_replan(participant, by=request.user,
                                                    **form.cleaned_data)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Withdrawal recorded."))
            return redirect("participant_detail", slug, study_id)
    return render(request, "patients/withdrawal.html",
                  {"trial": trial, "participant": participant, "form": form,
                   "consent": selectors.consent_overview(participant),
                   "rules": withdrawal_rules(participant.definition)},
                  status=400 if form.errors else 200)


def reconsent_worklist(request, slug: str):
    """The participants of the user's sites who must re-consent to the current amendment."""
    trial = get_trial_for(request.user, slug)
    definition = trial.definition
    return render(request, "patients/reconsent_worklist.html", {
        "trial": trial, "participants": selectors.reconsent_worklist(request.user, trial),
        "amendment": current_amendment(definition), "reconsent_from": reconsent_from(definition),
        "can_screen": policy.sites_for(request.user, trial, Perm.SCREEN).exists()})


@require_POST
def rescreen(request, slug: str, study_id: str):
    """Screen a screen failure again (a new screening episode), where the protocol allows."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, Perm.SCREEN, trial, participant.site):
        raise PermissionDenied
    form = RescreenForm(request.POST)
    if form.is_valid():
        try:
            episode = screening.rescreen(participant, by=request.user,
                                         reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, _("Screening episode %(n)s closed and kept; the "
                                        "eligibility form is open again for episode %(next)s.")
                             % {"n": episode.number, "next": episode.number + 1})
    else:
        messages.error(request, " ".join(" ".join(v) for v in form.errors.values()))
    return redirect("participant_detail", slug, study_id)


def screening_log_page(request, slug: str):
    """The screening log: site staff of a site enter and list its entries; the sponsor and
    the data manager read every site's."""
    trial = get_trial_for(request.user, slug, Perm.VIEW_SCREENING_LOG)
    sites = policy.sites_for(request.user, trial, Perm.SCREEN).filter(active=True)
    reasons = screening_log.non_inclusion_reasons(trial)
    form = None
    if sites.exists():
        form = ScreeningLogForm(request.POST or None, sites=sites, reasons=reasons)
        if request.method == "POST" and form.is_valid():
            try:
                screening_log.record_screening_log_entry(trial, by=request.user,
                                                         **form.cleaned_data)
            except ValidationError as exc:
                attach_errors(form, exc)
            else:
                messages.success(request, _("Screening log entry recorded."))
                return redirect("screening_log", slug)
    elif request.method == "POST":
        raise PermissionDenied
    labels = {r["code"]: r["label"] for r in reasons}
    entries = [(e, labels.get(e.reason, e.reason))
               for e in screening_log.screening_log_for(request.user, trial)[:500]]
    return render(request, "patients/screening_log.html", {
        "trial": trial, "form": form, "entries": entries, "reasons": reasons},
        status=400 if form is not None and form.errors else 200)


# --------------------------------------------------------------------------- visits


def visit_worklist(request, slug: str):
    """Overdue, open and upcoming visits of the user's sites; ``?site=CODE`` narrows to one."""
    trial = get_trial_for(request.user, slug)
    sites = list(policy.sites_for(request.user, trial).filter(active=True))
    site = None
    if request.GET.get("site"):
        site = next((s for s in sites if s.code == request.GET["site"]), None)
        if site is None:
            raise Http404("No such site among yours.")
    user = request.user
    return render(request, "patients/visit_worklist.html", {
        "trial": trial, "sites": sites, "site": site,
        "worklist": selectors.worklist(user, trial, site=site, pages={
            key: _page_number(request.GET.get(f"{key}_page"))
            for key in ("overdue", "open", "upcoming")}),
        "queries": crf_selectors.query_worklist(user, trial, site=site),
        # Screened, not yet randomised: for those who randomise or confirm eligibility.
        "to_randomise": (to_randomise(user, trial, site=site)
                         if policy.has_perm(user, Perm.RANDOMISE, trial)
                         or policy.has_perm(user, Perm.CONFIRM_ELIGIBILITY, trial) else None),
        "list_queries": (policy.has_perm(user, Perm.RAISE_QUERY, trial)
                         or policy.has_perm(user, Perm.ANSWER_QUERY, trial))})


def _page_number(value) -> int:
    """A page number from the query string; anything else is page 1 (never an error page)."""
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return 1


def visit_timeline(request, slug: str, study_id: str):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    return _timeline_page(request, trial, participant)


class ReplaceKitForm(forms.Form):
    kind = forms.ChoiceField(label=_("What happened to the kit"), widget=forms.RadioSelect,
                             choices=[(ReleaseKind.DAMAGED.value, _("Damaged")),
                                      (ReleaseKind.LOST.value, _("Lost"))],
                             error_messages={"required": _("Say whether the kit is damaged "
                                                           "or lost.")})
    reason = LimitedText(limit=limits.REASON, rows=2, label=_("Reason"),
                         error_messages={"required": _("Give the reason.")})


@dataclasses.dataclass
class VisitKit:
    """The kit part of one dispensing visit's row on the timeline."""

    current: object | None = None   # the current KitAssignment, with its kit
    assignable: bool = False        # the next dispensing visit without a kit: "Assign kit"
    errors: list[str] = dataclasses.field(default_factory=list)
    form: ReplaceKitForm | None = None

    @property
    def replaceable(self) -> bool:
        return self.current is not None and self.current.kit.status == KitStatus.ASSIGNED


def _visit_kits(participant, visits, settings: dict | None) -> dict[int, VisitKit]:
    """Visit id -> its kit, for the dispensing visits (one query: the participant's kits).
    "Assign kit" is offered at the first planned dispensing visit that never had a kit; a
    kit is assigned one visit at a time, as the stock is counted in coming visits."""
    if settings is None:
        return {}
    dispensing = set(settings["dispensing"]["visits"])
    ever, current = set(), {}
    for assignment in supply.participant_kits(participant):
        ever.add(assignment.visit_id)
        if not hasattr(assignment, "release"):
            current[assignment.visit_id] = assignment
    kits = {v.pk: VisitKit(current=current.get(v.pk)) for v in visits if v.code in dispensing}
    following = next((v for v in visits if v.code in dispensing and v.pk not in ever
                      and v.status == VisitStatus.PLANNED), None)
    if following is not None:
        kits[following.pk].assignable = True
    return kits


def _timeline_page(request, trial, participant, *,
                   failed: tuple[int, VisitActionForm] | None = None,
                   kit_failure: tuple[int, list[str], ReplaceKitForm | None] | None = None,
                   unscheduled_form: UnscheduledVisitForm | None = None, status: int = 200):
    can_schedule = policy.has_perm(request.user, Perm.SCHEDULE_VISITS, trial, participant.site)
    timeline = schedule.timeline(participant)
    crf_labels = {c["code"]: c["label"] for c in participant.definition["crfs"]}
    states = dict(VisitState.choices)
    statuses = dict(CRFStatus.choices)
    # Each form entered at a visit: its status and how many of its queries are unresolved.
    entered = {(visit_id, code): (statuses[status], queries) for visit_id, code, status, queries
               in CRFRecord.objects.filter(participant=participant, visit__isnull=False)
               .annotate(unresolved=Count("queries", filter=Q(queries__status__in=UNRESOLVED)))
               .values_list("visit_id", "crf_code", "status", "unresolved")}
    settings = settings_of(trial)
    kits = _visit_kits(participant, timeline.visits, settings)
    if kit_failure is not None:
        # Next to the visit's row, even a visit that dispenses no kit (what the refusal says).
        failed_kit = kits.setdefault(kit_failure[0], VisitKit())
        failed_kit.errors, failed_kit.form = kit_failure[1], kit_failure[2]
    rows = []
    for visit in timeline.visits:
        state = visit.state(timeline.today)
        rows.append({"visit": visit, "state": state, "state_label": states[state],
                     "crfs": [(code, crf_labels.get(code, code),
                               *entered.get((visit.pk, code), ("", 0)))
                              for code in visit.crfs],
                     "form": failed[1] if failed and failed[0] == visit.pk else None,
                     "kit": kits.get(visit.pk)})
    return render(request, "patients/visit_timeline.html", {
        "trial": trial, "participant": participant, "timeline": timeline, "rows": rows,
        "dispenses_kits": settings is not None,
        "can_dispense": policy.has_perm(request.user, Perm.DISPENSE, trial, participant.site),
        "can_schedule": can_schedule and timeline.randomised_on is not None,
        "can_enter": policy.has_perm(request.user, Perm.ENTER_CRF, trial, participant.site),
        "unscheduled_form": unscheduled_form or _unscheduled_form(participant),
    }, status=status)


def _unscheduled_form(participant, data=None) -> UnscheduledVisitForm:
    crfs = participant.definition["crfs"]
    return UnscheduledVisitForm(data, crf_choices=[(c["code"], c["label"]) for c in crfs
                                                   if c["code"] != eligibility.ELIGIBILITY_CRF])


@require_POST
def update_visit(request, slug: str, study_id: str, visit_id: int):
    """Done on a date, not done, not applicable, or planned again: one coordinator action."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    visit = get_object_or_404(Visit, pk=visit_id, participant=participant)
    if not policy.has_perm(request.user, Perm.SCHEDULE_VISITS, trial, participant.site):
        raise PermissionDenied
    form = VisitActionForm(request.POST)
    if form.is_valid():
        action, reason = form.cleaned_data["action"], form.cleaned_data["reason"]
        try:
            if action == "done":
                scheduling.record_visit_done(visit, done_on=form.cleaned_data["done_on"],
                                             by=request.user, reason=reason)
            elif action == "missed":
                scheduling.mark_visit_missed(visit, by=request.user, reason=reason)
            elif action == "not_applicable":
                scheduling.mark_visit_not_applicable(visit, by=request.user, reason=reason)
            else:
                scheduling.reopen_visit(visit, by=request.user, reason=reason)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            done = {"done": _("%(visit)s recorded as done on %(date)s."),
                    "missed": _("%(visit)s recorded as not done."),
                    "not_applicable": _("%(visit)s marked not applicable."),
                    "reopen": _("%(visit)s planned again.")}[action]
            messages.success(request, done % {"visit": visit.title,
                                              "date": form.cleaned_data["done_on"]})
            return redirect(reverse("visit_timeline", args=[slug, study_id]) + f"#visit-{visit.pk}")
    return _timeline_page(request, trial, participant, failed=(visit.pk, form), status=400)


@require_POST
def add_unscheduled_visit(request, slug: str, study_id: str):
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    if not policy.has_perm(request.user, Perm.SCHEDULE_VISITS, trial, participant.site):
        raise PermissionDenied
    form = _unscheduled_form(participant, request.POST)
    if form.is_valid():
        try:
            visit = scheduling.add_unscheduled_visit(
                participant, on=form.cleaned_data["on"], reason=form.cleaned_data["reason"],
                crfs=form.cleaned_data["crfs"], by=request.user)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("%(visit)s added.") % {"visit": visit.title})
            return redirect(reverse("visit_timeline", args=[slug, study_id]) + f"#visit-{visit.pk}")
    return _timeline_page(request, trial, participant, unscheduled_form=form, status=400)


# --------------------------------------------------------------------------- dispensing


def _dispensing_visit(request, slug: str, study_id: str, visit_id: int):
    """The participant and visit of a kit action: 404 for another site's participant, a visit
    not theirs, or a trial without product supply; 403 without ``Perm.DISPENSE``."""
    trial, participant = get_trial_and_participant_for(request.user, slug, study_id)
    visit = get_object_or_404(Visit, pk=visit_id, participant=participant)
    if settings_of(trial) is None:
        raise Http404("This trial dispenses no kits.")
    if not policy.has_perm(request.user, Perm.DISPENSE, trial, participant.site):
        raise PermissionDenied
    return trial, participant, visit


def _after_kit_action(slug: str, study_id: str, visit) -> str:
    return reverse("visit_timeline", args=[slug, study_id]) + f"#visit-{visit.pk}"


@require_POST
def assign_kit(request, slug: str, study_id: str, visit_id: int):
    """Assign the participant's kit for this dispensing visit, from the site's stock of their
    arm (``randomisation.services.assign_kit``: the arm is read there, never from the page)."""
    trial, participant, visit = _dispensing_visit(request, slug, study_id, visit_id)
    try:
        assignment = randomisation.assign_kit(visit, by=request.user)
    except ValidationError as exc:
        return _timeline_page(request, trial, participant,
                              kit_failure=(visit.pk, exc.messages, None), status=400)
    messages.success(request, _("Kit to give at %(visit)s: %(kit)s.") % {
        "visit": visit.title, "kit": assignment.kit.number})
    return redirect(_after_kit_action(slug, study_id, visit))


@require_POST
def replace_kit(request, slug: str, study_id: str, visit_id: int):
    """A replacement for the visit's kit, damaged or lost, with the reason."""
    trial, participant, visit = _dispensing_visit(request, slug, study_id, visit_id)
    form = ReplaceKitForm(request.POST)
    if form.is_valid():
        current = supply.visit_kit(visit)
        try:
            if current is None:
                raise ValidationError(_("No kit is assigned at %(visit)s: there is nothing "
                                        "to replace.") % {"visit": visit.title})
            assignment = randomisation.replace_kit(current, by=request.user,
                                                   **form.cleaned_data)
        except ValidationError as exc:
            attach_errors(form, exc)
        else:
            messages.success(request, _("Kit %(old)s replaced: give kit %(kit)s at "
                                        "%(visit)s.") % {"old": current.kit.number,
                                                         "kit": assignment.kit.number,
                                                         "visit": visit.title})
            return redirect(_after_kit_action(slug, study_id, visit))
    return _timeline_page(request, trial, participant,
                          kit_failure=(visit.pk, list(form.non_field_errors()), form),
                          status=400)
