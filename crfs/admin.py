"""CRFs, their history, signatures and queries in the Django admin: shown, never added, changed
or deleted. The audit trail cannot be edited through any screen (nor, on PostgreSQL, by any
SQL: see migration outcomes.0004)."""
from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import CRFRecord, CRFSignature, DataQuery, QueryMessage


@admin.register(CRFRecord)
class CRFRecordAdmin(ReadOnlyAdmin):
    list_display = ["participant", "crf_code", "visit", "status", "updated_at", "updated_by"]
    list_filter = ["status", "crf_code"]
    search_fields = ["participant__study_id"]


@admin.register(CRFRecord.history.model)
class CRFRecordHistoryAdmin(ReadOnlyAdmin):
    list_display = ["history_id", "id", "crf_code", "status", "history_date", "history_user",
                    "history_change_reason"]
    list_filter = ["status", "crf_code"]


@admin.register(CRFSignature)
class CRFSignatureAdmin(ReadOnlyAdmin):
    list_display = ["record", "printed_name", "signed_at", "meaning", "voided_at"]


@admin.register(DataQuery)
class DataQueryAdmin(ReadOnlyAdmin):
    list_display = ["pk", "record", "field_path", "status", "raised_at", "raised_by"]
    list_filter = ["status"]


@admin.register(QueryMessage)
class QueryMessageAdmin(ReadOnlyAdmin):
    list_display = ["query", "kind", "author", "at"]
