"""The REST API: what the browser can do, for programs. Thin, like the pages.

Each view names the permission of each HTTP method (``perms``) and what it applies to
(``scope()``); ``api.permissions.PolicyPermission`` asks ``trials.policy``. Objects are looked up
through the selectors (``trials.selectors.get_trial_for``, ``patients.selectors.
get_participant_for``): what the user may not see is a 404, as on the pages. Every change goes
through the services the pages call; their ``ValidationError`` becomes a 400 naming the field
(``api.errors``).

To add an endpoint: a view class here (perms, scope, serializer), a line in ``api/urls.py``,
and its row in ``tests/test_permission_matrix.py`` (the test fails until it has one).
"""
from __future__ import annotations

from contextlib import contextmanager
from urllib.parse import quote, urlencode

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404, HttpResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject, cached_property
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers as drf, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from crfs import form_states, monitoring, verification
from crfs import services as crfs
from crfs import eligibility
from crfs import screening as crf_screening
from crfs.models import CRFRecord, MonitoringVisit, QueryStatus
from patients import screening as screening_log, services as participants
from patients.models import Status, Visit, VisitState
from patients import selectors as participant_selectors
from patients.selectors import get_participant_for
from randomisation import kitlist, selectors as allocations, services as randomisation
from reports import audit_log, downloads, matrix, services as reports
from safety import selectors as safety_selectors
from scheduling import services as scheduling
from supply import selectors as supply_selectors, services as supply
from supply.models import KitStatus, ResupplyRequest
from trials import policy
from trials.models import Trial, crf_of, definition_of
from trials.policy import Perm
from trials.selectors import get_trial_for

from . import crf_input, selectors, serializers as s
from .errors import as_drf
from .permissions import PolicyPermission


class APIView(generics.GenericAPIView):
    """The base of every API view: DRF authenticates (token or session), the policy decides."""

    permission_classes = [PolicyPermission]
    perms: dict[str, Perm | None] = {"GET": None}

    # DRF marks its views ``login_required = False``: it authenticates API calls itself (a
    # token is not a session), answering 401 where LoginRequiredMiddleware would redirect.

    def scope(self):
        return None, None

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "today": timezone.localdate()}


class TrialView(APIView):
    perms = {"GET": Perm.VIEW_TRIAL}

    @cached_property
    def trial(self) -> Trial:
        return get_trial_for(self.request.user, self.kwargs["slug"])

    def scope(self):
        return self.trial, None


class ParticipantView(TrialView):
    perms = {"GET": Perm.VIEW_PARTICIPANTS}

    @cached_property
    def participant(self):
        return get_participant_for(self.request.user, self.trial, self.kwargs["study_id"])

    def scope(self):
        return self.trial, self.participant.site


def _refuse_empty(serializer_class, request) -> None:
    """A filter given with no value (``?site=``) is refused, not read as "no filter": a client
    that meant to filter and sent nothing would otherwise get every row."""
    empty = {name: [_("Empty: give a value, or leave the parameter out.")]
             for name in serializer_class().fields
             if any(not value.strip() for value in request.query_params.getlist(name))}
    if empty:
        raise drf.ValidationError(empty)


def _filters(serializer_class, request, *, trial=None) -> dict:
    """The list's query-string filters, checked: a bad value is a 400 naming the parameter (an
    empty one too); with ``trial``, a ``site`` must be one of the reader's sites there."""
    _refuse_empty(serializer_class, request)
    checked = serializer_class(data=request.query_params)
    checked.is_valid(raise_exception=True)
    given = {k: v for k, v in checked.validated_data.items() if v not in (None, "")}
    if trial is not None and "site" in given and not policy.sites_for(
            request.user, trial).filter(code=given["site"]).exists():
        raise drf.ValidationError({"site": [_("Not one of your sites in this trial.")]})
    return given


# --------------------------------------------------------------------------- trials and sites


class TrialList(APIView, generics.ListAPIView):
    """The trials you take part in."""

    serializer_class = s.TrialSerializer
    pagination_class = None

    def get_queryset(self):
        return policy.trials_for(self.request.user).prefetch_related("arms").order_by(
            "short_title")


class TrialDetail(TrialView, generics.RetrieveAPIView):
    serializer_class = s.TrialSerializer

    def get_object(self):
        return self.trial


class SiteList(TrialView, generics.ListAPIView):
    """The trial's sites (every role of the trial sees the list; participants are per site)."""

    serializer_class = s.SiteSerializer
    pagination_class = None

    def get_queryset(self):
        return self.trial.sites.order_by("code")


# --------------------------------------------------------------------------- participants


class ParticipantFilters(drf.Serializer):
    status = drf.ChoiceField(choices=Status.choices, required=False)
    site = drf.CharField(required=False, max_length=64, help_text="A site code.")


class ParticipantList(TrialView, generics.ListCreateAPIView):
    """Participants of your sites; POST registers one at screening (coordinator)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.SCREEN}
    serializer_class = s.ParticipantSerializer

    def get_queryset(self):
        return selectors.participants(self.request.user, self.trial,
                                      **_filters(ParticipantFilters, self.request,
                                                 trial=self.trial))

    @extend_schema(parameters=[ParticipantFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=s.ScreeningSerializer, responses={201: s.ParticipantSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ScreeningSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        site = (policy.sites_for(request.user, self.trial, Perm.SCREEN)
                .filter(active=True, code=given.validated_data["site"]).first())
        if site is None:
            raise drf.ValidationError({"site": [_("Not a recruiting site where you may screen "
                                                  "participants.")]})
        participant = participants.register_participant(
            self.trial, site, by=request.user,
            screened_on=given.validated_data.get("screened_on"))
        return Response(s.ParticipantSerializer(participant).data, status=status.HTTP_201_CREATED)


class ParticipantDetail(ParticipantView, generics.RetrieveAPIView):
    serializer_class = s.ParticipantSerializer

    def get_object(self):
        return self.participant


class Consent(ParticipantView):
    """The participant's consent history (GET); POST records a first consent, a re-consent to
    a newer form version (moving the participant to the current protocol version when it is
    the form in force), or, with ``corrects`` and ``reason``, a correction (coordinator)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.SCREEN}
    serializer_class = s.ConsentHistorySerializer

    def get(self, request, *args, **kwargs):
        return Response(s.ConsentHistorySerializer(
            participant_selectors.consent_overview(self.participant)).data)

    @extend_schema(request=s.ConsentSerializer, responses={200: s.ParticipantSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ConsentSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        corrects = None
        if data.get("corrects") is not None:
            corrects = self.participant.consents.filter(pk=data["corrects"]).first()
            if corrects is None:
                raise drf.ValidationError({"corrects": [_("No such consent record of this "
                                                          "participant.")]})
        participant = scheduling.record_consent_and_replan(
            self.participant, by=request.user, consent_date=data["consent_date"],
            version=data["consent_version"], taken_by=data.get("taken_by", ""),
            answers=data.get("answers"), corrects=corrects, reason=data.get("reason", ""))
        return Response(s.ParticipantSerializer(participant).data)


class Withdrawals(ParticipantView):
    """The participant's withdrawals (GET); POST records one at a level (coordinator): its
    visits end as the level says."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.SCREEN}
    serializer_class = s.WithdrawalSerializer
    pagination_class = None  # three levels at most

    @extend_schema(responses={200: s.WithdrawalSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        return Response(s.WithdrawalSerializer(
            self.participant.withdrawals.order_by("withdrawn_on", "pk"), many=True).data)

    @extend_schema(request=s.WithdrawalInputSerializer, responses={201: s.WithdrawalSerializer})
    def post(self, request, *args, **kwargs):
        given = s.WithdrawalInputSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        withdrawal = scheduling.record_withdrawal_and_replan(self.participant, by=request.user,
                                                             **given.validated_data)
        return Response(s.WithdrawalSerializer(withdrawal).data, status=status.HTTP_201_CREATED)


class ReconsentWorklist(TrialView, generics.ListAPIView):
    """Participants of your sites who must re-consent to the current amendment's form."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS}
    serializer_class = s.ReconsentSerializer

    def get_queryset(self):
        return participant_selectors.reconsent_worklist(self.request.user, self.trial)


class Eligibility(ParticipantView):
    """Eligibility as read from the participant's eligibility CRF, and the investigator's
    confirmation where the protocol asks for it. The confirmation itself is given on the
    participant's page (password typed again in a two-factor session), as CRF signatures are:
    the API has no signing endpoint."""

    serializer_class = s.EligibilitySerializer

    def get(self, request, *args, **kwargs):
        record = eligibility.record_with_signatures(self.participant)
        result = eligibility.evaluate(self.participant, record)
        confirmation = eligibility.confirmation(record)
        return Response(s.EligibilitySerializer({
            "complete": result.complete, "met": result.met, "eligible": result.eligible,
            "unanswered": result.unanswered, "failed": result.failed,
            "confirmation_required": eligibility.confirmation_required(self.participant),
            "confirmed": confirmation is not None,
            "confirmed_by": confirmation.printed_name if confirmation else None,
            "confirmed_at": confirmation.signed_at if confirmation else None,
            "state": eligibility.ready_state(self.participant, record)}).data)


class ScreeningLog(TrialView, generics.ListCreateAPIView):
    """The screening log: people assessed and not registered (no identifiers). Site staff
    keep their site's (POST: ``Perm.SCREEN``); the sponsor and the data manager read all."""

    perms = {"GET": Perm.VIEW_SCREENING_LOG, "POST": Perm.SCREEN}
    serializer_class = s.ScreeningLogEntrySerializer

    def get_queryset(self):
        return screening_log.screening_log_for(self.request.user, self.trial)

    @extend_schema(request=s.ScreeningLogEntrySerializer,
                   responses={201: s.ScreeningLogEntrySerializer})
    def post(self, request, *args, **kwargs):
        given = s.ScreeningLogEntrySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        site = self.trial.sites.filter(code=given.validated_data["site"]["code"]).first()
        if site is None:
            raise drf.ValidationError({"site": [_("No site %(code)s in this trial.") % {
                "code": given.validated_data["site"]["code"]}]})
        entry = screening_log.record_screening_log_entry(
            self.trial, site=site, by=request.user,
            screened_on=given.validated_data["screened_on"],
            reason=given.validated_data["reason"], note=given.validated_data.get("note", ""))
        return Response(s.ScreeningLogEntrySerializer(entry).data,
                        status=status.HTTP_201_CREATED)


class Rescreen(ParticipantView):
    """Screen a screen failure again, where the protocol allows it (coordinator): the closed
    screening episode is kept, the eligibility form opens again."""

    perms = {"POST": Perm.SCREEN}
    serializer_class = s.ReasonSerializer

    @extend_schema(request=s.ReasonSerializer, responses={200: s.ParticipantSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ReasonSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        crf_screening.rescreen(self.participant, by=request.user,
                               reason=given.validated_data["reason"])
        self.participant.refresh_from_db()
        return Response(s.ParticipantSerializer(self.participant).data)


# --------------------------------------------------------------------------- randomisation


class RandomisedInError(ParticipantView):
    """Record that the participant was randomised in error (data manager, the site's
    coordinator). The allocation stands: intention to treat."""

    perms = {"POST": Perm.RECORD_RANDOMISED_IN_ERROR}
    serializer_class = s.ReasonSerializer

    @extend_schema(request=s.ReasonSerializer, responses={201: s.RandomisedInErrorSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ReasonSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        allocation = allocations.allocation_of(self.participant)
        if allocation is None:
            raise drf.ValidationError({"study_id": [_("%(id)s is not randomised.") % {
                "id": self.participant.study_id}]})
        flag = randomisation.record_randomised_in_error(
            allocation, by=request.user, reason=given.validated_data["reason"])
        return Response(s.RandomisedInErrorSerializer(flag).data,
                        status=status.HTTP_201_CREATED)


class Randomise(ParticipantView):
    """Randomise the participant (coordinator). Blinded roles get the kit, never the arm.

    Idempotent with a key: send an ``Idempotency-Key`` header (or a ``key`` field; one
    randomisation request, one key, e.g. a UUID). A retry with the same key by the same user
    answers the allocation already made, with the same status and body (and the header
    ``Idempotent-Replayed: true``); the same key for another participant, or another user's
    key, is refused (409). A 503 whose ``outcome`` is ``unknown`` means the connection was lost
    during the COMMIT: retry with the same key to learn the outcome, never without it."""

    perms = {"POST": Perm.RANDOMISE}
    serializer_class = s.RandomiseSerializer

    @extend_schema(request=s.RandomiseSerializer, parameters=[OpenApiParameter(
        "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
        description="One key per randomisation request (1 to 64 printable characters, e.g. a "
                    "UUID): a retry with it answers the allocation already made.")],
        responses={201: s.AllocationSerializer, 400: OpenApiTypes.OBJECT,
                   409: OpenApiTypes.OBJECT})
    def post(self, request, *args, **kwargs):
        given = s.RandomiseSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        header = request.headers.get("Idempotency-Key", "")
        field = given.validated_data.get("key", "")
        if header and field and header.strip() != field.strip():
            raise drf.ValidationError({"key": [_(
                "The Idempotency-Key header and the key field differ: send one key.")]})
        try:
            allocation = randomisation.randomise(
                self.participant, by=request.user, key=header or field,
                confirmed_strata=given.validated_data.get("strata"))
        except randomisation.RandomisationError as exc:
            if getattr(exc, "code", None) in randomisation.KEY_CONFLICTS:
                return Response({"key": exc.messages}, status=status.HTTP_409_CONFLICT)
            raise
        replayed = allocation.replayed
        allocation = allocations.allocation_of(allocation.participant)
        response = Response(s.AllocationSerializer(
            allocations.allocation_view(request.user, allocation)).data,
            status=status.HTTP_201_CREATED)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class AllocationDetail(ParticipantView):
    serializer_class = s.AllocationSerializer

    def get(self, request, *args, **kwargs):
        allocation = allocations.allocation_of(self.participant)
        if allocation is None:
            raise Http404(_("Not randomised."))
        allocation.participant = self.participant
        return Response(s.AllocationSerializer(
            allocations.allocation_view(request.user, allocation)).data)


# --------------------------------------------------------------------------- visits


class VisitFilters(drf.Serializer):
    site = drf.CharField(required=False, max_length=64, help_text="A site code.")
    state = drf.ChoiceField(choices=VisitState.choices, required=False)
    due_after = drf.DateField(required=False, help_text="Window closes on or after this date.")
    due_before = drf.DateField(required=False,
                               help_text="Window closes on or before this date.")


class TrialVisits(TrialView, generics.ListAPIView):
    """Visits of your sites, by closing date of their window: the worklist, filterable."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS}
    serializer_class = s.VisitSerializer

    def get_queryset(self):
        return selectors.visits(self.request.user, self.trial,
                                **_filters(VisitFilters, self.request, trial=self.trial))

    @extend_schema(parameters=[VisitFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ParticipantVisits(ParticipantView, generics.ListCreateAPIView):
    """The participant's visit schedule; POST adds an unscheduled visit (coordinator)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.SCHEDULE_VISITS}
    serializer_class = s.VisitSerializer

    def get_queryset(self):
        return selectors.participant_visits(self.participant)

    @extend_schema(request=s.UnscheduledVisitSerializer, responses={201: s.VisitSerializer})
    def post(self, request, *args, **kwargs):
        given = s.UnscheduledVisitSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        visit = scheduling.add_unscheduled_visit(self.participant, by=request.user,
                                                 **given.validated_data)
        return Response(self.get_serializer(visit).data, status=status.HTTP_201_CREATED)


class VisitDetail(ParticipantView, generics.RetrieveAPIView):
    """One visit; POST records what happened: done on a date, missed, not applicable, reopened."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.SCHEDULE_VISITS}
    serializer_class = s.VisitSerializer

    def get_object(self):
        visit = (Visit.objects.select_related("participant__site")
                 .filter(participant=self.participant, pk=self.kwargs["visit_id"]).first())
        if visit is None:
            raise Http404(_("No such visit of this participant."))
        return visit

    @extend_schema(request=s.VisitActionSerializer, responses={200: s.VisitSerializer},
                   operation_id="trials_participants_visits_record")
    def post(self, request, *args, **kwargs):
        visit = self.get_object()
        given = s.VisitActionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        action, reason = given.validated_data["action"], given.validated_data.get("reason", "")
        if action == "done":
            visit = scheduling.record_visit_done(visit, done_on=given.validated_data["done_on"],
                                                 by=request.user, reason=reason)
        elif action == "missed":
            visit = scheduling.mark_visit_missed(visit, by=request.user, reason=reason)
        elif action == "not_applicable":
            visit = scheduling.mark_visit_not_applicable(visit, by=request.user, reason=reason)
        else:
            visit = scheduling.reopen_visit(visit, by=request.user, reason=reason)
        return Response(self.get_serializer(self.get_object()).data)


# --------------------------------------------------------------------------- CRFs


def _crf_errors(exc: ValidationError):
    """``save_crf``'s refusal: answers' paths under ``data``, the reason and the rest apart."""
    if not hasattr(exc, "error_dict"):
        return as_drf(exc)
    errors, answers = {}, {}
    for name, messages in exc.message_dict.items():
        if name == "__all__":
            errors["detail"] = messages
        elif name in ("reason", "complete", "crf_code", "visit"):
            errors[name] = messages
        else:
            answers[name] = messages
    if answers:
        errors["data"] = answers
    return drf.ValidationError(errors)


def _save(participant, crf_code: str, given: dict, *, by, record=None, visit=None):
    definition = (record.definition if record is not None
                  else crf_of(participant.protocol_version_id, crf_code))
    try:
        version_id = record.protocol_version_id if record else participant.protocol_version_id
        answers = crf_input.clean_answers(
            definition, given["data"], complete=given["complete"],
            stored=record.data if record else None,
            derivable=eligibility.derivable(definition_of(version_id), crf_code))
        return scheduling.save_crf_and_replan(participant, crf_code, answers, by=by,
                                              complete=given["complete"],
                                              reason=given.get("reason", ""), record=record,
                                              visit=visit)
    except ValidationError as exc:
        raise _crf_errors(exc)


class CRFList(ParticipantView, generics.ListCreateAPIView):
    """The participant's CRF records; POST enters a new one (investigator, coordinator)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.ENTER_CRF}
    serializer_class = s.CRFRecordSerializer

    def get_queryset(self):
        return selectors.crf_records(self.participant)

    @extend_schema(request=s.CRFCreateSerializer, responses={201: s.CRFRecordSerializer})
    def post(self, request, *args, **kwargs):
        given = s.CRFCreateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        participant, code = self.participant, given.validated_data["crf_code"]
        visit = None
        if given.validated_data.get("visit") is not None:
            visit = Visit.objects.filter(participant=participant,
                                         pk=given.validated_data["visit"]).first()
            if visit is None:
                raise drf.ValidationError({"visit": [_("This CRF is not expected at that "
                                                       "visit of this participant.")]})
        try:  # the CRF is in the protocol, expected there, not entered yet
            crfs.check_new_record(participant, code, visit)
        except ValidationError as exc:
            raise _crf_errors(exc)
        with transaction.atomic():
            record = _save(participant, code, given.validated_data, by=request.user,
                           visit=visit)
        return Response(self.get_serializer(selectors.crf_records(participant)
                                            .get(pk=record.pk)).data,
                        status=status.HTTP_201_CREATED)


class CRFDetail(ParticipantView, generics.RetrieveAPIView):
    """One CRF record; PUT changes its answers (a reason once it was completed)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "PUT": Perm.ENTER_CRF}
    serializer_class = s.CRFRecordSerializer

    def get_object(self):
        record = selectors.crf_records(self.participant).filter(pk=self.kwargs["record_id"]).first()
        if record is None:
            raise Http404(_("No such CRF record of this participant."))
        record.participant = self.participant
        return record

    @extend_schema(request=s.CRFUpdateSerializer, responses={200: s.CRFRecordSerializer})
    def put(self, request, *args, **kwargs):
        record = self.get_object()
        given = s.CRFUpdateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        _save(self.participant, record.crf_code, given.validated_data, by=request.user,
              record=record, visit=record.visit)
        return Response(self.get_serializer(self.get_object()).data)


# --------------------------------------------------------------------------- data queries


class QueryFilters(drf.Serializer):
    status = drf.ChoiceField(choices=QueryStatus.choices, required=False)
    site = drf.CharField(required=False, max_length=64, help_text="A site code.")
    study_id = drf.CharField(required=False, max_length=32)


class MatrixFilters(drf.Serializer):
    site = drf.CharField(required=False, max_length=64, help_text="A site code.")
    status = drf.ChoiceField(choices=Status.choices, required=False,
                             help_text="The participant's status.")
    visit = drf.CharField(required=False, max_length=64,
                          help_text="A visit template's code: its occurrences only.")
    state = drf.ChoiceField(choices=form_states.FILTER_STATES, required=False,
                            help_text="Participants with at least one form in this state "
                                      "('query': with an open or answered query).")
    study_id = drf.CharField(required=False, max_length=32, help_text="Part of a study ID.")
    after = drf.CharField(required=False, max_length=32,
                          help_text="The page after this study ID (``next`` gives it).")
    before = drf.CharField(required=False, max_length=32,
                           help_text="The page before this study ID (``previous`` gives it).")
    page_size = drf.IntegerField(required=False, min_value=1, max_value=matrix.MAX_PAGE_SIZE)
    visit_page = drf.IntegerField(required=False, min_value=1, max_value=10_000,
                                  help_text=f"Visits come {matrix.VISITS_PER_PAGE} at a time.")


class SubjectMatrix(TrialView):
    """The subject matrix: participants of your sites, each with the state of every form
    expected at their visits (and the event forms), a page of participants by study ID."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS}
    serializer_class = s.SubjectMatrixSerializer
    pagination_class = None

    @extend_schema(parameters=[MatrixFilters], responses=s.SubjectMatrixSerializer)
    def get(self, request, *args, **kwargs):
        given = _filters(MatrixFilters, request)
        errors = {}
        site = None
        if "site" in given:
            site = policy.sites_for(request.user, self.trial).filter(code=given["site"]).first()
            if site is None:
                errors["site"] = [_("Not one of your sites in this trial.")]
        codes = {code for code, _label in matrix.visit_choices(request.user, self.trial)}
        if "visit" in given and given["visit"] not in codes:
            errors["visit"] = [_("No such visit in this protocol.")]
        if errors:
            raise drf.ValidationError(errors)
        filters = matrix.Filters(site=site, status=given.get("status", ""),
                                 visit=given.get("visit", ""), state=given.get("state", ""),
                                 search=given.get("study_id", "").strip())
        page = matrix.subject_matrix(
            request.user, self.trial, filters, after=given.get("after", ""),
            before=given.get("before", ""),
            per_page=given.get("page_size", matrix.PAGE_SIZE),
            visit_page=given.get("visit_page", 1))
        base = reverse("api_participants", args=[self.trial.slug])
        for row in page.rows:
            for cell in row.cells:
                if cell.record_id:
                    cell.url = request.build_absolute_uri(
                        f"{base}{quote(row.study_id, safe='')}/crfs/{cell.record_id}/")

        def link(**edge) -> str | None:
            query = {k: v for k, v in request.query_params.items()
                     if k not in ("after", "before")}
            return request.build_absolute_uri("?" + urlencode({**query, **edge}))

        body = {"count": page.total,
                "next": link(after=page.last_key) if page.has_next else None,
                "previous": link(before=page.first_key) if page.has_previous else None,
                "visit_page": page.visit_page, "visit_pages": page.visit_pages,
                "columns": page.columns, "results": page.rows}
        return Response(s.SubjectMatrixSerializer(
            body, context={"show_arms": page.show_arms}).data)


class TrialQueries(TrialView, generics.ListAPIView):
    """Data queries of your sites, oldest first."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS}
    serializer_class = s.DataQuerySerializer

    def get_queryset(self):
        return selectors.queries(self.request.user, self.trial,
                                 **_filters(QueryFilters, self.request, trial=self.trial))

    @extend_schema(parameters=[QueryFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class RecordQueries(ParticipantView, generics.ListCreateAPIView):
    """The queries of one CRF record; POST raises one on an answer (data manager)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.RAISE_QUERY}
    serializer_class = s.DataQuerySerializer

    @cached_property
    def record(self) -> CRFRecord:
        record = CRFRecord.objects.filter(participant=self.participant,
                                          pk=self.kwargs["record_id"]).first()
        if record is None:
            raise Http404(_("No such CRF record of this participant."))
        return record

    def scope(self):
        return self.trial, self.record.participant.site

    def get_queryset(self):
        return selectors.queries(self.request.user, self.trial).filter(record=self.record)

    @extend_schema(request=s.RaiseQuerySerializer, responses={201: s.DataQueryDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = s.RaiseQuerySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        query = crfs.raise_query(self.record, by=request.user, **given.validated_data)
        return Response(s.DataQueryDetailSerializer(
            selectors.query_with_thread(request.user, self.trial, query.pk)).data,
            status=status.HTTP_201_CREATED)


class QueryView(TrialView):
    serializer_class = s.DataQueryDetailSerializer

    @cached_property
    def query(self):
        query = selectors.query_with_thread(self.request.user, self.trial, self.kwargs["query_id"])
        if query is None:
            raise Http404(_("No such query."))
        return query

    def scope(self):
        return self.trial, self.query.record.participant.site

    def reply(self):
        del self.query  # read it again, with the message just written
        return Response(s.DataQueryDetailSerializer(self.query).data)


class QueryDetail(QueryView, generics.RetrieveAPIView):
    """One query with its conversation."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS}

    def get_object(self):
        return self.query


class QueryAnswer(QueryView):
    """The site answers, optionally correcting the answer questioned (a new version of the CRF,
    the answer being the reason for the change)."""

    perms = {"POST": Perm.ANSWER_QUERY}

    class Input(drf.Serializer):
        text = drf.CharField(max_length=4000)
        correction = drf.DictField(required=False, help_text="The CRF's answers, corrected "
                                   "(as `data` of a CRF record).")
        complete = drf.BooleanField(default=True)

    @extend_schema(request=Input, responses={200: s.DataQueryDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = self.Input(data=request.data)
        given.is_valid(raise_exception=True)
        correction = given.validated_data.get("correction")
        if correction is not None:
            record = self.query.record
            try:
                correction = crf_input.clean_answers(
                    record.definition, correction, complete=given.validated_data["complete"],
                    stored=record.data)
            except ValidationError as exc:
                raise drf.ValidationError({"correction": exc.message_dict})
        scheduling.answer_query_and_replan(self.query, by=request.user,
                                           text=given.validated_data["text"],
                                           correction=correction,
                                           complete=given.validated_data["complete"])
        return self.reply()


class QueryClose(QueryView):
    """The data manager closes the query."""

    perms = {"POST": Perm.RAISE_QUERY}

    @extend_schema(request=s.QueryTextSerializer, responses={200: s.DataQueryDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = s.QueryTextSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        crfs.close_query(self.query, by=request.user, text=given.validated_data["text"])
        return self.reply()


class QueryReopen(QueryView):
    """The data manager re-opens the query, saying why."""

    perms = {"POST": Perm.RAISE_QUERY}

    @extend_schema(request=s.QueryTextSerializer, responses={200: s.DataQueryDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = s.QueryTextSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        crfs.reopen_query(self.query, by=request.user, text=given.validated_data["text"])
        return self.reply()


# --------------------------------------------------------------------------- monitoring


class DownloadNegotiation(DefaultContentNegotiation):
    """A download answers its own media type (PDF, CSV, ZIP, XML) whatever ``Accept`` asks; its
    errors are JSON, as everywhere in the API."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class RecordVerifications(ParticipantView):
    """The source data verification marks of one CRF record (in force and removed, oldest
    first); POST marks ``paths`` (none: the whole form) verified against the source (the
    monitor of the participant's site)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.VERIFY_SOURCE}
    serializer_class = s.SourceVerificationSerializer
    pagination_class = None

    @cached_property
    def record(self) -> CRFRecord:
        record = CRFRecord.objects.filter(participant=self.participant,
                                          pk=self.kwargs["record_id"]).first()
        if record is None:
            raise Http404(_("No such CRF record of this participant."))
        record.participant = self.participant
        return record

    def scope(self):
        return self.trial, self.record.participant.site

    def marks(self):
        return list(self.record.verifications.select_related("verified_by", "voided_by")
                    .order_by("verified_at", "pk"))

    @extend_schema(responses={200: s.SourceVerificationSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        return Response(s.SourceVerificationSerializer(self.marks(), many=True).data)

    @extend_schema(request=s.VerifySerializer,
                   responses={201: s.SourceVerificationSerializer(many=True)})
    def post(self, request, *args, **kwargs):
        given = s.VerifySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        paths = given.validated_data.get("paths") or None
        try:
            verification.verify(self.record, by=request.user, paths=paths)
        except ValidationError as exc:
            if hasattr(exc, "error_dict") and "field_path" in exc.error_dict:
                raise drf.ValidationError({"paths": exc.message_dict["field_path"]})
            raise
        return Response(s.SourceVerificationSerializer(self.marks(), many=True).data,
                        status=status.HTTP_201_CREATED)


def _readable_site(user, trial, code: str):
    """The site ``code`` of ``trial`` if ``user`` may read its monitoring, else 404."""
    site = trial.sites.filter(code=code).first()
    if site is None or not monitoring.may_read(user, site):
        raise Http404(_("No such site."))
    return site


class MonitoringVisits(TrialView, generics.ListCreateAPIView):
    """Monitoring visits to your sites, newest first; POST records one (the monitor of the
    site: ``site`` code, ``visited_on``, ``findings``)."""

    perms = {"GET": Perm.VIEW_REPORTS, "POST": Perm.VERIFY_SOURCE}
    serializer_class = s.MonitoringVisitSerializer

    def get_queryset(self):
        user = self.request.user
        readable = (policy.sites_for(user, self.trial, Perm.VERIFY_SOURCE)
                    | policy.sites_for(user, self.trial, Perm.VIEW_REPORTS))
        return (MonitoringVisit.objects.filter(trial=self.trial, site__in=readable)
                .select_related("site", "monitor").order_by("-visited_on", "-pk"))

    @extend_schema(request=s.MonitoringVisitSerializer,
                   responses={201: s.MonitoringVisitSerializer})
    def post(self, request, *args, **kwargs):
        given = s.MonitoringVisitSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        site = _readable_site(request.user, self.trial, given.validated_data["site"])
        visit = monitoring.record_visit(site, by=request.user,
                                        visited_on=given.validated_data["visited_on"],
                                        findings=given.validated_data["findings"])
        return Response(s.MonitoringVisitSerializer(visit).data,
                        status=status.HTTP_201_CREATED)


class MonitoringReport(TrialView):
    """The monitoring visit report of a site for a period (PDF): visits and findings, what was
    verified against the source and which marks were removed, queries raised."""

    perms = {"GET": Perm.VIEW_REPORTS}
    content_negotiation_class = DownloadNegotiation

    @extend_schema(parameters=[s.MonitoringReportFilters],
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        _refuse_empty(s.MonitoringReportFilters, request)
        given = s.MonitoringReportFilters(data=request.query_params)
        given.is_valid(raise_exception=True)
        site = _readable_site(request.user, self.trial, given.validated_data["site"])
        data = monitoring.report(site, given.validated_data["start"],
                                 given.validated_data["end"])
        response = HttpResponse(monitoring.pdf(data), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="monitoring-{site.code}-{data.start:%Y%m%d}-'
            f'{data.end:%Y%m%d}.pdf"')
        return response


# --------------------------------------------------------------------------- reports


class ReportView(TrialView):
    perms = {"GET": Perm.VIEW_REPORTS, "POST": Perm.VIEW_REPORTS}
    serializer_class = s.ReportRequestSerializer

    def get_serializer_context(self):
        # The reader's rights decide each download link; computed once, when first needed.
        rights = SimpleLazyObject(lambda: reports.Rights.of(self.request.user, self.trial))
        return {**super().get_serializer_context(), "rights": rights}


class ReportList(ReportView, generics.ListCreateAPIView):
    """The trial's reports, newest first, each with its download once built, if you may
    download it; POST requests one (``kind``), built in the background: poll it by its id.
    A casebook (``kind`` casebook) is of one participant: give their study ID
    (``participant``); another site's participant is 404, as one that does not exist."""

    def get_queryset(self):
        return reports.reports_for(self.request.user, self.trial).order_by("-requested_at",
                                                                           "-pk")

    @extend_schema(request=s.ReportKindSerializer, responses={202: s.ReportRequestSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ReportKindSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        study_id = given.validated_data.get("participant")
        participant = (get_participant_for(request.user, self.trial, study_id)
                       if study_id is not None else None)
        report = reports.request_report(self.trial, given.validated_data["kind"],
                                         by=request.user, participant=participant)
        report = reports.report_of(self.trial, report.pk, request.user)  # built already?
        url = reverse("api_report", args=[self.trial.slug, report.pk])
        return Response(self.get_serializer(report).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": request.build_absolute_uri(url)})


class ReportDetail(ReportView, generics.RetrieveAPIView):
    """One report of the trial, to poll: status, percent done, the step, its download."""

    def get_object(self):
        return reports.report_of(self.trial, self.kwargs["report_id"], self.request.user)


class ReportDownload(ReportView):
    """The PDF, once built: 404 before; 403 if it was built with rights you do not have (a
    report showing arms, for a blinded reader; one covering sites you may not see)."""

    content_negotiation_class = DownloadNegotiation

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return reports.download(request.user, self.trial, self.kwargs["report_id"])


# --------------------------------------------------------------------------- safety


class SAEView(TrialView):
    perms = {"GET": Perm.VIEW_SAFETY}
    serializer_class = s.SAEReportSerializer


class SAEReportList(SAEView, generics.ListAPIView):
    """The trial's SAE reports at your sites, newest awareness first: the 24-hour clock
    (``due_at``, ``hours_late``), the signed versions and the sponsor's assessment. No arm."""

    def get_queryset(self):
        return safety_selectors.reports_for(self.request.user, self.trial).prefetch_related(
            "versions")


class SAEReportDetail(SAEView, generics.RetrieveAPIView):
    """One SAE report (404 for a report of a site you may not see)."""

    def get_object(self):
        return safety_selectors.report_for(self.request.user, self.trial, self.kwargs["sae_id"])


# --------------------------------------------------------------------------- exports


class ExportView(TrialView):
    """Exports stream the very files of the Exports page, audited the same way
    (``reports.downloads``): pseudonymised, your sites only, no arm for a blinded role."""

    perms = {"GET": Perm.EXPORT_DATA}
    content_negotiation_class = DownloadNegotiation

    def form(self) -> str:
        return _filters(s.ExportFormSerializer, self.request)["form"]


class ExportCRF(ExportView):
    """One CRF's records as CSV (UTF-8 with BOM), ``?form=long`` (default) or ``wide``."""

    @extend_schema(parameters=[s.ExportFormSerializer], operation_id="trials_exports_csv_crf",
                   responses={(200, "text/csv"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return downloads.crf_csv(request.user, self.trial, self.kwargs["crf_code"], self.form())


class ExportAllCRFs(ExportView):
    """Every CRF's CSV in one ZIP archive, ``?form=long`` (default) or ``wide``."""

    @extend_schema(parameters=[s.ExportFormSerializer], operation_id="trials_exports_csv_all",
                   responses={(200, "application/zip"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return downloads.all_crfs_zip(request.user, self.trial, self.form())


class ExportODM(ExportView):
    """The whole trial as one CDISC ODM 1.3.2 XML file (clinical data with its audit trail)."""

    @extend_schema(operation_id="trials_exports_odm",
                   responses={(200, "application/xml"): OpenApiTypes.BINARY})
    def get(self, request, *args, **kwargs):
        return downloads.odm_xml(request.user, self.trial)


# --------------------------------------------------------------------------- the audit log


class AuditLog(TrialView, generics.ListAPIView):
    """The trial's audit log as you may read it (``Perm.VIEW_AUDIT``), newest first, with the
    filters of the audit log page: your sites' entries (and the trial-wide ones if you read
    the whole trial); for a blinded reader arms are masked in messages and ``detail`` is null."""

    perms = {"GET": Perm.VIEW_AUDIT}
    serializer_class = s.AuditEntrySerializer

    @cached_property
    def reader(self) -> audit_log.Reader:
        return audit_log.Reader(self.request.user, self.trial)

    def get_queryset(self):
        _refuse_empty(s.AuditLogFilters, self.request)
        filters = audit_log.parse_filters(self.request.user, self.trial,
                                          self.request.query_params)
        return audit_log.audit_log_for(self.request.user, self.trial, filters)

    @extend_schema(parameters=[s.AuditLogFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --------------------------------------------------------------------------- supply (kits)


def supply_trial(user, slug: str) -> Trial:
    trial = get_trial_for(user, slug)
    if supply.settings_of(trial) is None:
        raise Http404(_("%(trial)s dispenses no kits (its protocol declares no product "
                        "supply).") % {"trial": trial.short_title})
    return trial


class SupplyView(TrialView):
    """A trial that dispenses kits: any other (the rectal trial, open label, no product) is a
    404 saying so. Its sites' supply, as ``Perm.VIEW_SUPPLY`` allows (site-scoped roles: their
    site; another site's objects are 404)."""

    perms = {"GET": Perm.VIEW_SUPPLY}

    @cached_property
    def trial(self) -> Trial:
        return supply_trial(self.request.user, self.kwargs["slug"])

    def supply_site(self, code: str, *, field: str | None = None):
        """One of the user's supply sites, by code: 404 in the URL, 400 in a body (``field``)."""
        site = None
        if "\x00" not in code:  # no site code has one, and PostgreSQL refuses it in a query
            site = supply_selectors.supply_sites(self.request.user, self.trial).filter(
                code=code).first()
        if site is None:
            message = _("No site %(code)s among the sites whose supply you see.") % {
                "code": code}
            if field:
                raise drf.ValidationError({field: [message]})
            raise Http404(message)
        site.trial = self.trial
        return site


class SiteSupplyView(SupplyView):
    """A route naming one site (``site_code``)."""

    @cached_property
    def site(self):
        return self.supply_site(self.kwargs["site_code"])

    def scope(self):
        return self.trial, self.site


@contextmanager
def supply_refusals(fields: dict[str, str] | None = None):
    """A supply service's refusal as the API's answer: a message about the request as a whole
    goes under the field ``fields`` names for its code (``{"bad_receipt": "kits"}``), else
    ``detail``; "not allowed" is a 403, "this trial has no kits" a 404."""
    try:
        yield
    except supply.SupplyError as exc:
        if exc.code == "forbidden":
            raise PermissionDenied(exc.messages[0])
        if exc.code == "no_supply":
            raise Http404(exc.messages[0])
        field = (fields or {}).get(exc.code)
        if field and not hasattr(exc, "error_dict"):
            raise drf.ValidationError({field: exc.messages})
        raise


class SupplyStock(SupplyView):
    """Stock per site you see: counts whatever the arm (kit numbers are on the kits' list);
    ``by_arm`` only for the roles unblinded to the kits' arms, null for everyone else."""

    serializer_class = s.SiteStockSerializer
    pagination_class = None

    @extend_schema(responses={200: s.SiteStockSerializer(many=True)})
    def get(self, request, *args, **kwargs):
        sites = supply_selectors.supply_sites(request.user, self.trial)
        context = self.get_serializer_context()
        if policy.can_see_kit_arms(request.user, self.trial):
            context["by_arm"] = supply_selectors.stock_by_arm(sites)
            context["arms"] = [a.code for a in self.trial.arms.order_by("position")]
        return Response(s.SiteStockSerializer(supply_selectors.site_stock(sites), many=True,
                                              context=context).data)


class KitFilters(drf.Serializer):
    status = drf.ChoiceField(choices=KitStatus.choices, required=False)


class SiteKits(SiteSupplyView, generics.ListAPIView):
    """The kits at one site, by number: lot, expiry and state, never the arm."""

    serializer_class = s.KitSerializer

    def get_queryset(self):
        kits = supply_selectors.kits_at(self.site)
        return kits.filter(**_filters(KitFilters, self.request))

    @extend_schema(parameters=[KitFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class Shipments(SupplyView, generics.ListCreateAPIView):
    """Shipments to the sites you see, newest first; POST dispatches one from the depot
    (supply manager): kits of each arm, listed by number only."""

    perms = {"GET": Perm.VIEW_SUPPLY, "POST": Perm.MANAGE_SUPPLY}
    serializer_class = s.ShipmentSerializer

    def get_queryset(self):
        return supply_selectors.shipments(self.request.user, self.trial)

    @extend_schema(request=s.DispatchSerializer, responses={201: s.ShipmentDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = s.DispatchSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        site = self.supply_site(data["site"], field="site")
        resupply_request = None
        if data.get("request") is not None:
            resupply_request = ResupplyRequest.objects.filter(
                trial=self.trial, pk=data["request"]).first()
            if resupply_request is None:
                raise drf.ValidationError({"request": [_("No such resupply request in this "
                                                         "trial.")]})
        with supply_refusals({"bad_quantities": "quantities", "empty_shipment": "quantities",
                              "depot_short": "quantities", "bad_depot": "depot",
                              "bad_request": "request"}):
            shipment = supply.dispatch_shipment(
                self.trial, site=site, quantities=data["quantities"], by=request.user,
                depot=data.get("depot"), request=resupply_request, note=data["note"])
        return Response(s.ShipmentDetailSerializer(self._detail(shipment.number)).data,
                        status=status.HTTP_201_CREATED)

    def _detail(self, number: int):
        return (supply_selectors.shipments(self.request.user, self.trial)
                .prefetch_related("items__kit").get(number=number))


class ShipmentView(SupplyView):
    serializer_class = s.ShipmentDetailSerializer

    @cached_property
    def shipment(self):
        shipment = (supply_selectors.shipments(self.request.user, self.trial)
                    .prefetch_related("items__kit")
                    .filter(number=self.kwargs["shipment_number"]).first())
        if shipment is None:
            raise Http404(_("No such shipment to your sites."))
        return shipment

    def scope(self):
        return self.trial, self.shipment.site


class ShipmentDetail(ShipmentView, generics.RetrieveAPIView):
    """One shipment and its kits (numbers, lots, expiry, what the site found on receipt)."""

    def get_object(self):
        return self.shipment


class ShipmentReceipt(ShipmentView):
    """The site confirms what arrived (coordinator): each kit received, damaged or missing;
    kits not named are received. A kit not in the shipment refuses the whole receipt."""

    perms = {"POST": Perm.RECEIVE_SUPPLY}

    @extend_schema(request=s.ReceiptSerializer, responses={200: s.ShipmentDetailSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ReceiptSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        with supply_refusals({"bad_receipt": "kits"}):
            supply.receive_shipment(self.shipment, by=request.user,
                                    outcomes=given.validated_data["kits"])
        del self.shipment  # read it again, received
        return Response(s.ShipmentDetailSerializer(self.shipment).data)


class Excursions(SupplyView, generics.ListCreateAPIView):
    """Temperature excursions at the sites you see, newest first; POST reports one at your
    site (coordinator): the kits named are quarantined until the supply manager decides."""

    perms = {"GET": Perm.VIEW_SUPPLY, "POST": Perm.RECEIVE_SUPPLY}
    serializer_class = s.ExcursionSerializer

    def get_queryset(self):
        return supply_selectors.excursions(self.request.user, self.trial)

    @extend_schema(request=s.ExcursionReportSerializer, responses={201: s.ExcursionSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ExcursionReportSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        site = self.supply_site(data["site"], field="site")
        if not policy.has_perm(request.user, Perm.RECEIVE_SUPPLY, self.trial, site):
            raise drf.ValidationError({"site": [_("You do not receive the supply of %(site)s.")
                                                % {"site": site.code}]})
        with supply_refusals():
            excursion = supply.report_excursion(site, numbers=data["kits"],
                                                description=data["description"],
                                                by=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=excursion.pk)).data,
                        status=status.HTTP_201_CREATED)


class ExcursionDecision(SupplyView):
    """The supply manager's decision on an excursion: its kits released (usable) or
    destroyed, with the reason."""

    perms = {"POST": Perm.MANAGE_SUPPLY}
    serializer_class = s.ExcursionSerializer

    @cached_property
    def excursion(self):
        excursion = supply_selectors.excursions(self.request.user, self.trial).filter(
            pk=self.kwargs["excursion_id"]).first()
        if excursion is None:
            raise Http404(_("No such excursion at your sites."))
        return excursion

    def scope(self):
        return self.trial, self.excursion.site

    @extend_schema(request=s.ExcursionDecisionSerializer, responses={200: s.ExcursionSerializer})
    def post(self, request, *args, **kwargs):
        given = s.ExcursionDecisionSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        with supply_refusals():
            supply.decide_excursion(self.excursion, by=request.user, **given.validated_data)
        return Response(self.get_serializer(supply_selectors.excursions(
            request.user, self.trial).get(pk=self.excursion.pk)).data)


class SiteKitRecords(SiteSupplyView):
    """Kits returned by the site (``returned``: coordinator) or destroyed (``destroyed``:
    supply manager): all the named kits or none."""

    perms = {"POST": None}  # which of the two, by ``kind`` (below)
    serializer_class = s.KitRecordSerializer
    NEEDS = {"returned": Perm.RECEIVE_SUPPLY, "destroyed": Perm.MANAGE_SUPPLY}

    def _may(self, perm) -> bool:
        return policy.has_perm(self.request.user, perm, self.trial, self.site)

    @extend_schema(request=s.KitRecordSerializer, responses={200: s.KitRecordResultSerializer})
    def post(self, request, *args, **kwargs):
        if not any(self._may(perm) for perm in self.NEEDS.values()):
            raise PermissionDenied
        given = s.KitRecordSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        kind = given.validated_data["kind"]
        if not self._may(self.NEEDS[kind]):
            raise PermissionDenied(_("Your role may not record kits as %(kind)s.") % {
                "kind": kind})
        with supply_refusals():
            n = supply.record_kits(self.site, kind=kind, numbers=given.validated_data["kits"],
                                   reason=given.validated_data["reason"], by=request.user)
        return Response(s.KitRecordResultSerializer(
            {"kind": kind, "site": self.site.code, "kits": n}).data)


class ResupplyRequests(SupplyView, generics.ListAPIView):
    """Open resupply requests of the sites you see, oldest first: kits to send per arm.
    Unblinded: 403 for a role blinded to the kits' arms."""

    serializer_class = s.ResupplyRequestSerializer
    pagination_class = None  # one open request per site at most

    def get_queryset(self):
        if not policy.can_see_kit_arms(self.request.user, self.trial):
            raise PermissionDenied(_("Resupply requests say which arm each site lacks: for "
                                     "the roles unblinded to the kits only."))
        return supply_selectors.open_requests(self.trial).filter(
            site__in=supply_selectors.supply_sites(self.request.user, self.trial))


class SiteAccountability(SiteSupplyView, generics.ListAPIView):
    """The site's accountability log, a page at a time: each kit's events at the site (made,
    shipped, received, assigned, dispensed, returned, destroyed…) with who and when, by kit
    number then time; the columns of its PDF and CSV. Kit numbers, never arms."""

    serializer_class = s.AccountabilitySerializer

    def get_queryset(self):
        return supply_selectors.accountability(
            self.site, **_filters(s.AccountabilityFilters, self.request))

    @extend_schema(parameters=[s.AccountabilityFilters])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class ParticipantKitsView(ParticipantView):
    """A participant's kits: 404 in a trial without kits."""

    @cached_property
    def trial(self) -> Trial:
        return supply_trial(self.request.user, self.kwargs["slug"])


class ParticipantKits(ParticipantKitsView, generics.ListAPIView):
    """The kits assigned to the participant, oldest first, with their visit and how each
    ended; POST assigns the kit to give at a dispensing visit (investigator, coordinator),
    chosen from the site's stock of the participant's arm (never shown)."""

    perms = {"GET": Perm.VIEW_PARTICIPANTS, "POST": Perm.DISPENSE}
    serializer_class = s.KitAssignmentSerializer
    pagination_class = None  # about 13 a year

    def get_queryset(self):
        return supply_selectors.participant_kits(self.participant)

    @extend_schema(request=s.AssignKitSerializer, responses={201: s.KitAssignmentSerializer})
    def post(self, request, *args, **kwargs):
        given = s.AssignKitSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        visit = (Visit.objects.select_related("participant__site", "participant__trial")
                 .filter(participant=self.participant, pk=given.validated_data["visit"]).first())
        if visit is None:
            raise drf.ValidationError({"visit": [_("No such visit of this participant.")]})
        with supply_refusals({"not_a_dispensing_visit": "visit",
                              "visit_not_applicable": "visit"}):
            assignment = randomisation.assign_kit(visit, by=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=assignment.pk)).data,
                        status=status.HTTP_201_CREATED)


class ReplaceKit(ParticipantKitsView):
    """A replacement for a kit damaged or lost (investigator, coordinator), with the reason:
    the old kit leaves the stock, the next suitable one of the participant's arm is assigned."""

    perms = {"POST": Perm.DISPENSE}
    serializer_class = s.KitAssignmentSerializer

    @cached_property
    def assignment(self):
        assignment = supply_selectors.participant_kits(self.participant).filter(
            pk=self.kwargs["assignment_id"]).first()
        if assignment is None:
            raise Http404(_("No such kit assignment of this participant."))
        return assignment

    @extend_schema(request=s.ReplaceKitSerializer, responses={201: s.KitAssignmentSerializer})
    def post(self, request, *args, **kwargs):
        assignment = self.assignment
        given = s.ReplaceKitSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        with supply_refusals():
            new = randomisation.replace_kit(assignment, by=request.user,
                                            **given.validated_data)
        return Response(self.get_serializer(
            supply_selectors.participant_kits(self.participant).get(pk=new.pk)).data,
            status=status.HTTP_201_CREATED)


# Kit lists: the unblinded statistician's (``Perm.MANAGE_ALLOCATION``).


class KitListView(SupplyView):
    perms = {"GET": Perm.MANAGE_ALLOCATION, "POST": Perm.MANAGE_ALLOCATION}
    serializer_class = s.KitListSerializer

    def lists(self):
        return selectors.kit_lists(self.trial)

    @cached_property
    def kit_list(self):
        kit_list = self.lists().filter(number=self.kwargs["list_number"]).first()
        if kit_list is None:
            raise Http404(_("No kit list #%(n)s in this trial.") % {
                "n": self.kwargs["list_number"]})
        kit_list.trial = self.trial
        return kit_list


class KitLists(KitListView, generics.ListCreateAPIView):
    """The trial's kit lists, newest first; POST generates a draft from a seed (recorded: the
    same seed makes the same list)."""

    def get_queryset(self):
        return self.lists()

    @extend_schema(request=s.KitListGenerateSerializer, responses={201: s.KitListSerializer})
    def post(self, request, *args, **kwargs):
        given = s.KitListGenerateSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        kit_list = kitlist.generate(self.trial, by=request.user, **given.validated_data)
        return Response(self.get_serializer(self.lists().get(pk=kit_list.pk)).data,
                        status=status.HTTP_201_CREATED)


class KitListImport(KitListView):
    """A draft kit list from a CSV table; refused whole, every problem with its row."""

    perms = {"POST": Perm.MANAGE_ALLOCATION}

    @extend_schema(request=s.KitListImportSerializer, responses={201: s.KitListSerializer})
    def post(self, request, *args, **kwargs):
        given = s.KitListImportSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        try:
            kit_list = kitlist.import_list(self.trial, given.validated_data["csv"],
                                           by=request.user)
        except kitlist.KitListImportError as exc:
            raise drf.ValidationError({"csv": exc.messages})
        return Response(self.get_serializer(self.lists().get(pk=kit_list.pk)).data,
                        status=status.HTTP_201_CREATED)


class KitListSeal(KitListView):
    """Seal a draft kit list: its SHA-256 stored and logged; its kits are then made (at the
    depot) and may be shipped."""

    perms = {"POST": Perm.MANAGE_ALLOCATION}

    @extend_schema(request=None, responses={200: s.KitListSerializer})
    def post(self, request, *args, **kwargs):
        kitlist.seal(self.kit_list, by=request.user)
        return Response(self.get_serializer(self.lists().get(pk=self.kit_list.pk)).data)


class KitListVerify(KitListView):
    """Whether the sealed list is unchanged: its digest computed again against the one
    stored (false for a draft)."""

    serializer_class = s.KitListVerifySerializer

    def get(self, request, *args, **kwargs):
        kit_list = self.kit_list
        return Response(s.KitListVerifySerializer({
            "number": kit_list.number, "status": kit_list.status, "digest": kit_list.digest,
            "verified": kitlist.verify(kit_list)}).data)


