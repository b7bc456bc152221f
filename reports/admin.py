from django.contrib import admin

from core.admin import ReadOnlyAdmin

from .models import ReportRequest


@admin.register(ReportRequest)
class ReportRequestAdmin(ReadOnlyAdmin):
    """Who asked for which report, when, and how its build went (the PDF itself is downloaded
    from the trial's Reports page, which checks the reader's rights)."""

    list_display = ["pk", "trial", "kind", "requested_by", "requested_at", "status", "attempts",
                    "size"]
    list_filter = ["status", "kind", "trial"]
    exclude = ["content"]
