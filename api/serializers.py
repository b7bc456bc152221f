"""One serializer per representation. Output serializers read objects the selectors already
loaded (no query of their own); input serializers only check shapes and types; the services
judge the rest (dates, transitions, permissions at the site) and their refusals become 400s
naming the field (``api.errors``).

Blinding: the arm appears in exactly one place, ``AllocationSerializer.arm``, and only when
``trials.policy.can_see_arm`` says so; everything else a blinded role may read carries no arm.
"""
from __future__ import annotations

from django.urls import reverse
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core import limits
from crfs.models import CRFRecord, DataQuery, QueryMessage
from crfs.selectors import signature_views
from patients.models import (ConsentRecord, Participant, ScreeningLogEntry, Visit, VisitState,
                             Withdrawal, WithdrawalLevel)
from reports.models import ReportRequest, ReportStatus
from reports.services import KINDS as REPORT_KINDS
from randomisation.kitlist import MAX_KITS
from safety.models import SAEReport, SAEVersion, SponsorAssessment
from safety.services import content_digest as sae_content_digest
from supply.models import (Excursion, Kit, KitAssignment, KitList, KitRelease, ReceiptOutcome,
                           ReleaseKind, ResupplyRequest, Shipment, ShipmentKit)
from supply.selectors import ACCOUNTABILITY_COLUMNS, accountability_row
from trials import policy
from trials.models import Arm, Site, Trial


# --------------------------------------------------------------------------- trials and sites


class ArmSerializer(serializers.ModelSerializer):
    class Meta:
        model = Arm
        fields = ["code", "label", "description", "ratio"]


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["code", "name", "city", "country", "active"]


class TrialSerializer(serializers.ModelSerializer):
    is_blinded = serializers.BooleanField(read_only=True)
    arms = serializers.SerializerMethodField(
        help_text="The arms; null for a role blinded in this trial.")

    class Meta:
        model = Trial
        fields = ["slug", "short_title", "title", "registry_id", "phase", "masking",
                  "is_blinded", "target_enrolment", "arms"]

    @extend_schema_field(ArmSerializer(many=True, allow_null=True))
    def get_arms(self, trial: Trial):
        if policy.is_blinded_for(self.context["request"].user, trial):
            return None
        return ArmSerializer(trial.arms.all(), many=True).data


# --------------------------------------------------------------------------- participants


class ParticipantSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    randomised = serializers.BooleanField(source="is_randomised", read_only=True)

    class Meta:
        model = Participant
        fields = ["study_id", "site", "status", "randomised", "screened_on", "consent_date",
                  "consent_version", "created_at"]
        read_only_fields = fields


class ScreeningSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64, help_text="The code of one of your sites.")
    screened_on = serializers.DateField(required=False,
                                        help_text="The screening date; today when omitted.")


class ScreeningLogEntrySerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", max_length=64,
                                 help_text="The code of one of your sites.")
    reason = serializers.CharField(max_length=64,
                                   help_text="A code of the protocol's reasons for non-inclusion.")
    note = serializers.CharField(required=False, allow_blank=True,
                                 validators=[limits.SCREENING_NOTE],
                                 help_text="Free text without any identifier.")

    class Meta:
        model = ScreeningLogEntry
        fields = ["id", "site", "screened_on", "reason", "note", "created_at"]
        read_only_fields = ["id", "created_at"]


class ConsentSerializer(serializers.Serializer):
    consent_date = serializers.DateField()
    consent_version = serializers.CharField(max_length=32, allow_blank=True)
    taken_by = serializers.CharField(max_length=120, required=False, allow_blank=True,
                                     help_text="Who took the consent; you when omitted.")
    answers = serializers.DictField(child=serializers.BooleanField(), required=False,
                                    help_text="Each optional item's answer, by its code.")
    corrects = serializers.IntegerField(required=False, help_text=(
        "The id of the consent record this one corrects (with ``reason``)."))
    reason = serializers.CharField(required=False, allow_blank=True, validators=[limits.REASON])


class ConsentRecordSerializer(serializers.ModelSerializer):
    protocol_version = serializers.CharField(source="protocol_label", read_only=True)
    corrects = serializers.IntegerField(source="corrects_id", read_only=True, allow_null=True)

    class Meta:
        model = ConsentRecord
        fields = ["id", "kind", "version", "consent_date", "taken_by", "answers",
                  "protocol_version", "corrects", "reason", "recorded_at"]
        read_only_fields = fields


class ConsentHistorySerializer(serializers.Serializer):
    protocol_version = serializers.CharField(source="protocol_label")
    current_protocol_version = serializers.CharField(source="current_label")
    reconsent_to = serializers.CharField(allow_null=True, help_text=(
        "The consent form version the participant must re-consent to; null when none."))
    records = ConsentRecordSerializer(many=True)


class WithdrawalSerializer(serializers.ModelSerializer):
    class Meta:
        model = Withdrawal
        fields = ["level", "withdrawn_on", "reason", "recorded_at"]
        read_only_fields = fields


class WithdrawalInputSerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=WithdrawalLevel.choices, help_text=(
        "treatment: stops study treatment only; visits: stops visits, vital-status follow-up "
        "allowed; consent: withdraws consent to further data collection."))
    withdrawn_on = serializers.DateField()
    reason = serializers.CharField(allow_blank=True, validators=[limits.REASON])


class ReconsentSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    protocol_version = serializers.CharField(source="protocol_label", read_only=True)

    class Meta:
        model = Participant
        fields = ["study_id", "site", "status", "consent_date", "consent_version",
                  "protocol_version"]
        read_only_fields = fields


class CriterionSerializer(serializers.Serializer):
    code = serializers.CharField()
    kind = serializers.CharField()
    text = serializers.CharField()


class EligibilitySerializer(serializers.Serializer):
    complete = serializers.BooleanField()
    met = serializers.BooleanField()
    eligible = serializers.BooleanField()
    unanswered = serializers.ListField(child=serializers.CharField())
    failed = CriterionSerializer(many=True)
    confirmation_required = serializers.BooleanField(
        help_text="Whether the protocol asks an investigator to confirm eligibility before "
                  "randomisation.")
    confirmed = serializers.BooleanField(
        help_text="An investigator's confirmation stands on the eligibility form as it is now.")
    confirmed_by = serializers.CharField(allow_null=True,
                                         help_text="The investigator's printed name.")
    confirmed_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(
        choices=["incomplete", "not_eligible", "awaiting_confirmation", "ready"],
        help_text="Where the participant stands before randomisation.")


# --------------------------------------------------------------------------- randomisation


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(allow_blank=True, validators=[limits.REASON])


class RandomisedInErrorSerializer(serializers.Serializer):
    study_id = serializers.CharField(source="allocation.participant.study_id", read_only=True)
    reason = serializers.CharField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)


class RandomiseSerializer(serializers.Serializer):
    strata = serializers.DictField(
        child=serializers.CharField(max_length=255), required=False,
        help_text="The strata you confirm (factor → level); if the recorded data say "
                  "otherwise, nothing is allocated.")
    key = serializers.CharField(
        required=False, allow_blank=True, max_length=64,
        help_text="This request's idempotency key, if not sent as the Idempotency-Key header.")


class AllocationSerializer(serializers.Serializer):
    """What one user may see of one allocation (``randomisation.selectors.AllocationView``)."""

    study_id = serializers.CharField(source="allocation.participant.study_id")
    randomised_at = serializers.DateTimeField(source="allocation.randomised_at")
    strata = serializers.DictField(source="allocation.strata", child=serializers.CharField())
    kit_code = serializers.CharField(source="allocation.kit_code",
                                     help_text="The kit to dispense; empty in open trials.")
    arm = serializers.SerializerMethodField(
        help_text="The arm; null for a role blinded in this trial.")

    @extend_schema_field(ArmSerializer(allow_null=True))
    def get_arm(self, view):
        return ArmSerializer(view.allocation.arm).data if view.arm_visible else None


# --------------------------------------------------------------------------- visits


class VisitSerializer(serializers.ModelSerializer):
    study_id = serializers.CharField(source="participant.study_id", read_only=True)
    site = serializers.CharField(source="participant.site.code", read_only=True)
    state = serializers.SerializerMethodField(
        help_text="The status, with 'planned' split by today's date: planned, open, overdue.")
    crfs = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Visit
        fields = ["id", "study_id", "site", "code", "label", "title", "occurrence",
                  "unscheduled", "anchor_code", "anchor_date", "target_date", "window_opens",
                  "window_closes", "status", "state", "done_on", "status_reason", "crfs"]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=VisitState.choices))
    def get_state(self, visit: Visit) -> str:
        return visit.state(self.context["today"])


class VisitActionSerializer(serializers.Serializer):
    ACTIONS = ["done", "missed", "not_applicable", "reopen"]
    action = serializers.ChoiceField(choices=ACTIONS)
    done_on = serializers.DateField(required=False, allow_null=True,
                                    help_text="The date the visit took place (action 'done').")
    reason = serializers.CharField(required=False, allow_blank=True, validators=[limits.REASON])

    def validate(self, data):
        if data["action"] == "done" and not data.get("done_on"):
            raise serializers.ValidationError({"done_on": "Give the date the visit took place."})
        return data


class UnscheduledVisitSerializer(serializers.Serializer):
    on = serializers.DateField()
    reason = serializers.CharField(validators=[limits.REASON])
    crfs = serializers.ListField(child=serializers.CharField(max_length=64), required=False,
                                 default=list, max_length=50)


# --------------------------------------------------------------------------- CRFs


class SignatureSerializer(serializers.Serializer):
    """One signature and whether it still holds — decided as the CRF page and its PDF decide
    (``crfs.selectors.signature_views``): voided, or the data changed after signing (the
    content no longer matches the signed SHA-256, whatever changed it), it is not valid."""

    meaning = serializers.CharField(source="signature.meaning")
    signed_by = serializers.CharField(source="signature.printed_name",
                                      help_text="The signer's printed name.")
    signed_at = serializers.DateTimeField(source="signature.signed_at")
    status = serializers.SerializerMethodField(help_text="signed, or voided.")
    valid = serializers.BooleanField(help_text="True only while the signature stands on the "
                                     "record's current content.")
    reason = serializers.SerializerMethodField(help_text="Why it is not valid; null when valid.")

    @extend_schema_field(serializers.ChoiceField(choices=["signed", "voided"]))
    def get_status(self, view) -> str:
        return "voided" if view.state == "voided" else "signed"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reason(self, view) -> str | None:
        if view.state == "voided":
            return str(_("Voided on %(when)s: %(why)s")) % {
                "when": view.signature.voided_at.isoformat(),
                "why": view.signature.void_reason}
        if view.state == "invalid":
            return str(_("The data changed after signing: the record no longer matches the "
                         "signed content (SHA-256 %(digest)s).")) % {
                "digest": view.signature.digest}
        return None


class CRFRecordSerializer(serializers.ModelSerializer):
    study_id = serializers.CharField(source="participant.study_id", read_only=True)
    visit = serializers.IntegerField(source="visit_id", read_only=True, allow_null=True)
    data = serializers.JSONField(read_only=True, help_text="The answers, as stored: one key "
                                 "per field of the CRF definition (groups: lists of rows).")
    unresolved_queries = serializers.IntegerField(read_only=True, source="unresolved")
    signature = serializers.SerializerMethodField(
        help_text="The latest signature standing (else the latest one) and whether it is "
                  "valid; null when the record was never signed.")
    signatures = serializers.SerializerMethodField(help_text="Every signature, oldest first.")

    class Meta:
        model = CRFRecord
        fields = ["id", "study_id", "crf_code", "visit", "status", "ever_completed", "data",
                  "unresolved_queries", "created_at", "updated_at", "locked_at", "signature",
                  "signatures"]
        read_only_fields = fields

    def _views(self, record):
        # ``signature_list``: prefetched by ``api.selectors.crf_records`` (no query per row).
        return signature_views(record, record.signature_list)

    @extend_schema_field(SignatureSerializer(allow_null=True))
    def get_signature(self, record):
        views = self._views(record)
        standing = [v for v in views if v.state != "voided"] or views
        return SignatureSerializer(standing[-1]).data if standing else None

    @extend_schema_field(SignatureSerializer(many=True))
    def get_signatures(self, record):
        return SignatureSerializer(self._views(record), many=True).data


class CRFCreateSerializer(serializers.Serializer):
    crf_code = serializers.CharField(max_length=64)
    visit = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                     max_value=2**62, help_text="The visit's id; omit for forms "
                                     "outside visits (eligibility, events).")
    data = serializers.DictField(help_text="The answers: field code → value (dates "
                                 "YYYY-MM-DD, decimals as strings, yes/no as booleans, choices "
                                 "by code, groups as lists of rows).")
    complete = serializers.BooleanField(default=False,
                                        help_text="Mark complete: every required answer given.")


class CRFUpdateSerializer(serializers.Serializer):
    data = serializers.DictField()
    complete = serializers.BooleanField(default=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="",
                                   validators=[limits.REASON],
                                   help_text="Required once the CRF was completed.")


# --------------------------------------------------------------------------- data queries


class QueryMessageSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author.username", read_only=True, allow_null=True,
                                   default=None, help_text="Null for the system.")

    class Meta:
        model = QueryMessage
        fields = ["kind", "author", "at", "text"]
        read_only_fields = fields


class DataQuerySerializer(serializers.ModelSerializer):
    study_id = serializers.CharField(source="record.participant.study_id", read_only=True)
    site = serializers.CharField(source="record.participant.site.code", read_only=True)
    record = serializers.IntegerField(source="record_id", read_only=True)
    crf_code = serializers.CharField(source="record.crf_code", read_only=True)
    automatic = serializers.BooleanField(read_only=True)
    question = serializers.CharField(read_only=True, allow_null=True,
                                     help_text="The first message: what was asked.")

    class Meta:
        model = DataQuery
        fields = ["id", "study_id", "site", "record", "crf_code", "field_path", "status",
                  "check_code", "automatic", "question", "raised_at", "closed_at"]
        read_only_fields = fields


class DataQueryDetailSerializer(DataQuerySerializer):
    messages = QueryMessageSerializer(many=True, read_only=True, source="thread")

    class Meta(DataQuerySerializer.Meta):
        fields = DataQuerySerializer.Meta.fields + ["messages"]
        read_only_fields = fields


class RaiseQuerySerializer(serializers.Serializer):
    field_path = serializers.CharField(max_length=255,
                                       help_text="'weight_kg', 'events[1].grade'…")
    text = serializers.CharField(validators=[limits.QUERY_TEXT])


class QueryTextSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, allow_blank=True, default="",
                                 validators=[limits.QUERY_TEXT])


# --------------------------------------------------------------------------- reports and exports


class ReportRequestSerializer(serializers.ModelSerializer):
    """A requested report: where its build is, and its download once built, if the reader may
    download it (``reports.services.Rights``: a blinded reader never gets a report built with
    arms). ``context["rights"]`` holds the reader's rights, computed once for a list."""

    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    participant = serializers.CharField(source="participant.study_id", read_only=True,
                                        allow_null=True, default=None,
                                        help_text="The participant's study ID (a casebook).")
    progress = serializers.SerializerMethodField(help_text="Percent done (100 once built).")
    download = serializers.SerializerMethodField(
        help_text="The URL of the PDF once built, if you may download it; else null.")

    class Meta:
        model = ReportRequest
        fields = ["id", "kind", "participant", "status", "progress", "step", "error",
                  "requested_by",
                  "requested_at", "finished_at", "size", "download"]
        read_only_fields = fields

    def get_progress(self, report: ReportRequest) -> int:
        return 100 if report.status == ReportStatus.DONE else report.progress

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_download(self, report: ReportRequest) -> str | None:
        if not self.context["rights"].may_download(report):
            return None
        return self.context["request"].build_absolute_uri(
            reverse("api_report_download", args=[report.trial.slug, report.pk]))


class ReportKindSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=list(REPORT_KINDS), help_text="The kind of report: " + ", ".join(REPORT_KINDS),
        error_messages={"invalid_choice": format_lazy(
            _('Unknown kind of report "{{input}}"; choose one of: {choices}.'),
            choices=", ".join(REPORT_KINDS))})
    participant = serializers.CharField(
        required=False, max_length=32,
        help_text="For a casebook: the study ID of its participant (of a site you may see).")


class ExportFormSerializer(serializers.Serializer):
    form = serializers.ChoiceField(
        choices=["long", "wide"], default="long",
        help_text="long: one row per answered value (a group's rows numbered by `repeat`); "
                  "wide: one row per CRF record, one column per field.",
        error_messages={"invalid_choice": _('No export form "{input}": choose long or wide.')})


# --------------------------------------------------------------------------- safety (SAE reports)


class SAEVersionSerializer(serializers.ModelSerializer):
    signed_by = serializers.CharField(source="printed_name", read_only=True)
    signature_valid = serializers.SerializerMethodField(
        help_text="A signed version: whether its content still matches the signed SHA-256 "
                  "(false if it changed after signing); null for a draft.")

    class Meta:
        model = SAEVersion
        fields = ["number", "status", "criteria", "onset_date", "aware_at", "outcome",
                  "death_date", "causality", "narrative", "signed_at", "signed_by", "digest",
                  "signature_valid"]
        read_only_fields = fields

    @extend_schema_field(serializers.BooleanField(allow_null=True))
    def get_signature_valid(self, version) -> bool | None:
        if not version.digest:
            return None
        return version.digest == sae_content_digest(version)


class SponsorAssessmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = SponsorAssessment
        fields = ["causality", "expectedness", "reference", "susar", "susar_due",
                  "assessed_at", "comment"]
        read_only_fields = fields


class SAEReportSerializer(serializers.ModelSerializer):
    """An SAE report as the reader may see it: never an arm (the safety officer sees a SUSAR's
    arm on its page only, after unblinding)."""

    number = serializers.CharField(read_only=True)
    study_id = serializers.CharField(source="participant.study_id", read_only=True)
    site = serializers.CharField(source="participant.site.code", read_only=True)
    due_at = serializers.DateTimeField(read_only=True)
    hours_late = serializers.SerializerMethodField(
        help_text="How late the initial report is or was (hours), null when on time.")
    versions = SAEVersionSerializer(many=True, read_only=True)
    assessment = serializers.SerializerMethodField()

    class Meta:
        model = SAEReport
        fields = ["id", "number", "study_id", "site", "term", "aware_at", "due_at",
                  "reported_at", "hours_late", "versions", "assessment"]
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_hours_late(self, report: SAEReport) -> float | None:
        late = report.late_by()
        return round(late.total_seconds() / 3600, 1) if late else None

    @extend_schema_field(SponsorAssessmentSerializer(allow_null=True))
    def get_assessment(self, report: SAEReport):
        try:
            return SponsorAssessmentSerializer(report.assessment).data
        except SponsorAssessment.DoesNotExist:
            return None


# --------------------------------------------------------------------------- the audit log


class AuditLogFilters(serializers.Serializer):
    """The audit log's filters (checked by ``reports.audit_log.parse_filters``: a bad value is
    a 400 naming the filter)."""

    site = serializers.CharField(required=False, help_text="A site code.")
    participant = serializers.CharField(required=False, help_text="A study ID.")
    user = serializers.CharField(required=False, help_text="The user who did it (user name).")
    kind = serializers.CharField(required=False,
                                 help_text="The entry's action code, e.g. ``crf.signed``.")
    start = serializers.DateField(required=False, help_text="From this day (YYYY-MM-DD).")
    end = serializers.DateField(required=False, help_text="Up to this day included.")


class AuditEntrySerializer(serializers.Serializer):
    """One entry as its reader may see it: arms masked in the message and no ``detail``
    (null) for a blinded reader (the view's ``reader``)."""

    id = serializers.IntegerField()
    at = serializers.DateTimeField()
    kind = serializers.CharField(source="action")
    site = serializers.CharField(source="site.code", default="", allow_null=True)
    study_id = serializers.CharField()
    user = serializers.SerializerMethodField()
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    message = serializers.SerializerMethodField()
    detail = serializers.SerializerMethodField()

    def get_user(self, entry) -> str:
        return entry.actor.get_username() if entry.actor else ""

    def get_message(self, entry) -> str:
        return self.context["view"].reader.message(entry)

    @extend_schema_field({"type": "object", "nullable": True})
    def get_detail(self, entry):
        return self.context["view"].reader.detail(entry)


# --------------------------------------------------------------------------- subject matrix


class MatrixColumnSerializer(serializers.Serializer):
    visit = serializers.CharField(source="visit_code",
                                  help_text="The visit template's code; empty for event forms.")
    occurrence = serializers.IntegerField(help_text="0 for event forms.")
    crf = serializers.CharField(source="crf_code")
    crf_label = serializers.CharField()


class MatrixCellSerializer(serializers.Serializer):
    visit = serializers.CharField(source="column.visit_code")
    occurrence = serializers.IntegerField(source="column.occurrence")
    crf = serializers.CharField(source="column.crf_code")
    state = serializers.ChoiceField(
        choices=["not_started", "missing", "not_done", "draft", "complete", "verified", "signed",
                 "locked"],
        help_text="missing: expected and overdue (the visit done and the form absent, or the "
                  "visit's window closed without the visit being recorded); verified: complete "
                  "and verified against the source.")
    verified = serializers.BooleanField(help_text="Verified against the source (SDV): every "
                                        "answer the monitoring plan asks for has a mark in "
                                        "force (also for a signed or locked form).")
    visit_id = serializers.IntegerField(allow_null=True)
    record_id = serializers.IntegerField(allow_null=True)
    open_queries = serializers.IntegerField()
    url = serializers.CharField(help_text="The form's API address; empty while no record "
                                          "exists (create it with POST to the "
                                          "participant's crfs/).")


class MatrixRowSerializer(serializers.Serializer):
    """A participant's row; ``arm`` only for users who may see arms (never in a blinded trial
    for a blinded role)."""

    study_id = serializers.CharField()
    site = serializers.CharField(source="site_code")
    status = serializers.CharField()
    arm = serializers.CharField(allow_null=True, required=False)
    cells = serializers.SerializerMethodField()

    @extend_schema_field(MatrixCellSerializer(many=True))
    def get_cells(self, row) -> list:
        return MatrixCellSerializer([c for c in row.cells if c.state], many=True).data

    def to_representation(self, row):
        data = super().to_representation(row)
        if not self.context.get("show_arms"):
            data.pop("arm", None)
        return data


class SubjectMatrixSerializer(serializers.Serializer):
    count = serializers.IntegerField(
        allow_null=True, help_text="Participants matching; null when a visit or state filter "
                                   "is given (not counted: see docs/monitoring.md).")
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    visit_page = serializers.IntegerField()
    visit_pages = serializers.IntegerField()
    columns = MatrixColumnSerializer(many=True)
    results = MatrixRowSerializer(many=True)


# --------------------------------------------------------------------------- supply (kits)
#
# Kits are listed by number, lot, expiry and state; the arm of a kit appears in two places
# only, read by the unblinded (``trials.policy.can_see_kit_arms``): ``SiteStockSerializer.
# by_arm`` (null for everyone else) and ``ResupplyRequestSerializer`` (an endpoint the blinded
# may not call). A shipment or a participant's kits never carry an arm.


class SiteStockSerializer(serializers.Serializer):
    """``supply.selectors.SiteStock``, with the per-arm split when the reader may see it."""

    site = serializers.CharField(source="site.code")
    site_name = serializers.CharField(source="site.name")
    available = serializers.IntegerField(help_text="Received, not quarantined, not expired.")
    expired = serializers.IntegerField(help_text="On the shelf past their expiry date.")
    quarantined = serializers.IntegerField()
    assigned = serializers.IntegerField(help_text="Assigned to a coming visit, not yet given.")
    in_transit = serializers.IntegerField()
    by_arm = serializers.SerializerMethodField(
        help_text="Available kits per arm code; null for a role blinded to the kits' arms.")

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField(),
                                               allow_null=True))
    def get_by_arm(self, stock) -> dict | None:
        by_arm = self.context.get("by_arm")
        if by_arm is None:
            return None
        return {arm: by_arm.get(stock.site.pk, {}).get(arm, 0) for arm in self.context["arms"]}


class KitSerializer(serializers.ModelSerializer):
    """A kit as a site sees it: no arm."""

    class Meta:
        model = Kit
        fields = ["number", "lot", "expires_on", "status"]
        read_only_fields = fields


class ShipmentSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    dispatched_by = serializers.CharField(source="dispatched_by.username", read_only=True)
    received_by = serializers.CharField(source="received_by.username", read_only=True,
                                        allow_null=True, default=None)
    kit_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Shipment
        fields = ["number", "site", "depot", "status", "dispatched_at", "dispatched_by",
                  "received_at", "received_by", "kit_count", "note"]
        read_only_fields = fields


class ShipmentKitSerializer(serializers.ModelSerializer):
    number = serializers.CharField(source="kit.number", read_only=True)
    lot = serializers.CharField(source="kit.lot", read_only=True)
    expires_on = serializers.DateField(source="kit.expires_on", read_only=True)
    outcome = serializers.CharField(read_only=True, help_text=(
        "received, damaged or missing once the site confirmed the receipt; empty before."))

    class Meta:
        model = ShipmentKit
        fields = ["number", "lot", "expires_on", "outcome"]
        read_only_fields = fields


class ShipmentDetailSerializer(ShipmentSerializer):
    kits = ShipmentKitSerializer(many=True, read_only=True, source="items.all")

    class Meta(ShipmentSerializer.Meta):
        fields = ShipmentSerializer.Meta.fields + ["kits"]
        read_only_fields = fields


class DispatchSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64, help_text="The receiving site's code.")
    quantities = serializers.DictField(
        child=serializers.IntegerField(min_value=0, max_value=MAX_KITS),
        help_text="Kits to send per arm code: {arm code: number of kits}.")
    depot = serializers.CharField(max_length=64, required=False,
                                  help_text="The depot's code; the protocol's first when omitted.")
    request = serializers.IntegerField(required=False, min_value=1, max_value=2**62,
                                       help_text="The open resupply request this shipment "
                                                 "answers (it is then closed).")
    note = serializers.CharField(required=False, allow_blank=True, default="",
                                 validators=[limits.NOTE])


class ReceiptSerializer(serializers.Serializer):
    kits = serializers.DictField(
        child=serializers.ChoiceField(choices=ReceiptOutcome.choices), allow_empty=True,
        help_text="Kit number → received, damaged or missing; kits not named are received "
                  "({} when all arrived in good condition).")


class ExcursionSerializer(serializers.ModelSerializer):
    site = serializers.CharField(source="site.code", read_only=True)
    reported_by = serializers.CharField(source="reported_by.username", read_only=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True,
                                       allow_null=True, default=None)
    kit_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Excursion
        fields = ["id", "site", "reported_at", "reported_by", "description", "kit_count",
                  "decision", "decision_reason", "decided_at", "decided_by"]
        read_only_fields = fields


class ExcursionReportSerializer(serializers.Serializer):
    site = serializers.CharField(max_length=64, help_text="Your site's code.")
    kits = serializers.ListField(child=serializers.CharField(max_length=32), max_length=5000,
                                 help_text="The numbers of the kits exposed.")
    description = serializers.CharField(validators=[limits.DESCRIPTION], help_text=(
        "Temperatures, how long, where the kits were."))


class ExcursionDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=["release", "destroy"])
    reason = serializers.CharField(validators=[limits.REASON], help_text=(
        "Stability data, the depot's advice…"))


class KitRecordSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["returned", "destroyed"], help_text=(
        "returned: by the site (coordinator); destroyed: the supply manager."))
    kits = serializers.ListField(child=serializers.CharField(max_length=32), max_length=5000)
    reason = serializers.CharField(required=False, allow_blank=True, default="",
                                   validators=[limits.REASON])


class KitRecordResultSerializer(serializers.Serializer):
    kind = serializers.CharField()
    site = serializers.CharField()
    kits = serializers.IntegerField(help_text="How many kits were recorded.")


class ResupplyRequestSerializer(serializers.ModelSerializer):
    """Unblinded: kits to send per arm code, and each arm's stock and need when raised."""

    site = serializers.CharField(source="site.code", read_only=True)
    quantities = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    detail = serializers.DictField(child=serializers.DictField(
        child=serializers.IntegerField()), read_only=True)

    class Meta:
        model = ResupplyRequest
        fields = ["id", "site", "raised_at", "stock_out", "quantities", "detail",
                  "notified_at"]
        read_only_fields = fields


class KitReleaseSerializer(serializers.ModelSerializer):
    by = serializers.CharField(source="by.username", read_only=True)

    class Meta:
        model = KitRelease
        fields = ["kind", "reason", "at", "by"]
        read_only_fields = fields


class KitAssignmentSerializer(serializers.ModelSerializer):
    """A kit assigned to a participant at a visit (never its arm), and how it ended."""

    kit = serializers.CharField(source="kit.number", read_only=True)
    lot = serializers.CharField(source="kit.lot", read_only=True)
    expires_on = serializers.DateField(source="kit.expires_on", read_only=True)
    kit_status = serializers.CharField(source="kit.status", read_only=True)
    visit = serializers.IntegerField(source="visit_id", read_only=True)
    visit_label = serializers.CharField(source="visit.title", read_only=True)
    assigned_by = serializers.CharField(source="assigned_by.username", read_only=True)
    current = serializers.SerializerMethodField(
        help_text="The visit's kit now (not replaced, not put back in stock).")
    release = serializers.SerializerMethodField()

    class Meta:
        model = KitAssignment
        fields = ["id", "kit", "lot", "expires_on", "kit_status", "visit", "visit_label",
                  "assigned_at", "assigned_by", "reason", "current", "release"]
        read_only_fields = fields

    def get_current(self, assignment) -> bool:
        return not hasattr(assignment, "release")

    @extend_schema_field(KitReleaseSerializer(allow_null=True))
    def get_release(self, assignment):
        if not hasattr(assignment, "release"):
            return None
        return KitReleaseSerializer(assignment.release).data


class AssignKitSerializer(serializers.Serializer):
    visit = serializers.IntegerField(min_value=1, max_value=2**62,
                                     help_text="The dispensing visit's id.")


class ReplaceKitSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[ReleaseKind.DAMAGED, ReleaseKind.LOST])
    reason = serializers.CharField(validators=[limits.REASON])


class AccountabilitySerializer(serializers.Serializer):
    """One kit event of the site's accountability log, with the columns of its PDF and CSV
    (``supply.selectors.ACCOUNTABILITY_COLUMNS``, every value a string as in the CSV)."""

    kit_number = serializers.CharField()
    lot = serializers.CharField()
    expires_on = serializers.CharField()
    event = serializers.CharField()
    at = serializers.CharField()
    by = serializers.CharField()
    shipment = serializers.CharField()
    participant = serializers.CharField(help_text="The study ID, when the event concerns one.")
    visit = serializers.CharField()
    reason = serializers.CharField()
    status_now = serializers.CharField()

    def to_representation(self, event):
        return dict(zip(ACCOUNTABILITY_COLUMNS, accountability_row(event)))


class AccountabilityFilters(serializers.Serializer):
    start = serializers.DateField(required=False, help_text="Events on or after this day.")
    end = serializers.DateField(required=False, help_text="Events on or before this day.")


class KitListSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    sealed_by = serializers.CharField(source="sealed_by.username", read_only=True,
                                      allow_null=True, default=None)
    kit_count = serializers.IntegerField(read_only=True)
    parameters = serializers.JSONField(read_only=True)

    class Meta:
        model = KitList
        fields = ["number", "source", "seed", "parameters", "status", "kit_count",
                  "created_at", "created_by", "sealed_at", "sealed_by", "digest"]
        read_only_fields = fields


class KitListGenerateSerializer(serializers.Serializer):
    kits = serializers.IntegerField(min_value=1, max_value=MAX_KITS)
    lot_size = serializers.IntegerField(min_value=1, max_value=MAX_KITS)
    expires_on = serializers.DateField(help_text="After today.")
    seed = serializers.CharField(max_length=128, required=False, allow_blank=True,
                                 help_text="Recorded; the same seed makes the same list. "
                                           "A new one when omitted.")


class KitListImportSerializer(serializers.Serializer):
    csv = serializers.CharField(max_length=5_000_000, trim_whitespace=False, help_text=(
        "The table, header kit_number,arm,lot,expires_on (ISO dates)."))


class KitListVerifySerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    digest = serializers.CharField(help_text="The SHA-256 stored when sealed.")
    verified = serializers.BooleanField(help_text=(
        "The sealed list is unchanged: its digest, computed again, is the one stored."))


# --------------------------------------------------------------------------- monitoring


class SourceVerificationSerializer(serializers.Serializer):
    """One source data verification mark of a CRF record (``crfs.verification``)."""

    id = serializers.IntegerField()
    field_path = serializers.CharField(help_text="The answer verified; empty: the whole form.")
    verified_at = serializers.DateTimeField()
    verified_by = serializers.CharField(source="verified_by.username")
    in_force = serializers.SerializerMethodField()
    voided_at = serializers.DateTimeField(allow_null=True)
    voided_by = serializers.CharField(source="voided_by.username", allow_null=True,
                                      default=None)
    void_reason = serializers.CharField(help_text="Why the mark was removed: the verified data "
                                        "changed, by whom, and the change's reason.")

    def get_in_force(self, mark) -> bool:
        return mark.voided_at is None


class VerifySerializer(serializers.Serializer):
    paths = serializers.ListField(
        child=serializers.CharField(max_length=255, allow_blank=True), required=False,
        help_text="The answers verified against the source (field codes, `group[0].field`); "
                  "none or empty: the whole form.")


class MonitoringVisitSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    site = serializers.CharField(max_length=20, help_text="The site's code.")
    visited_on = serializers.DateField()
    monitor = serializers.CharField(source="monitor.username", read_only=True)
    findings = serializers.CharField(allow_blank=True, trim_whitespace=False,
                                     validators=[limits.FINDINGS])
    recorded_at = serializers.DateTimeField(read_only=True)

    def to_representation(self, visit):
        data = super().to_representation(visit)
        data["site"] = visit.site.code
        return data


class MonitoringReportFilters(serializers.Serializer):
    site = serializers.CharField(max_length=20, help_text="The site's code.")
    start = serializers.DateField(help_text="The first day of the period (YYYY-MM-DD).")
    end = serializers.DateField(help_text="The last day of the period (YYYY-MM-DD).")
