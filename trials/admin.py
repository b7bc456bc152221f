from django.contrib import admin
from simple_history.admin import SimpleHistoryAdmin

from core import audit
from core.admin import ReadOnlyAdmin

from .models import Arm, Membership, ProtocolVersion, Site, Trial


@admin.register(Trial)
class TrialAdmin(ReadOnlyAdmin):
    list_display = ["short_title", "slug", "phase", "masking", "target_enrolment",
                    "current_version"]


@admin.register(ProtocolVersion)
class ProtocolVersionAdmin(ReadOnlyAdmin):
    list_display = ["trial", "number", "label", "loaded_at", "loaded_by", "digest"]
    list_filter = ["trial"]
    exclude = ["definition"]
    readonly_fields = ["definition_pretty"]

    @admin.display(description="definition")
    def definition_pretty(self, obj):
        import json

        from django.utils.html import format_html

        return format_html("<pre>{}</pre>", json.dumps(obj.definition, indent=2,
                                                      ensure_ascii=False))


@admin.register(Site)
class SiteAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "city", "trial", "placeholder", "active"]
    list_filter = ["trial"]


@admin.register(Arm)
class ArmAdmin(ReadOnlyAdmin):
    # Arms are shown only to superusers: the admin is closed to every other role.
    list_display = ["code", "label", "trial", "ratio"]


@admin.register(Membership)
class MembershipAdmin(SimpleHistoryAdmin):
    list_display = ["user", "trial", "site", "role", "active", "created_at"]
    list_filter = ["trial", "role", "active"]
    search_fields = ["user__username"]
    autocomplete_fields = ["user"]

    def has_delete_permission(self, request, obj=None):
        # Deactivate instead: the history of who held which role must stay.
        return False

    def save_model(self, request, obj, form, change):
        """Every membership created, changed or deactivated is written to the audit log."""
        super().save_model(request, obj, form, change)
        scope = obj.site.code if obj.site_id else "all sites"
        what = f"{obj.user.get_username()} as {obj.role} in {obj.trial.slug} ({scope})"
        if not change:
            action = "membership.created"
        elif "active" in form.changed_data and not obj.active:
            action = "membership.deactivated"
        elif form.changed_data:
            action = "membership.changed"
        else:
            return
        audit.record(action, f"{action.split('.')[1]}: {what}", actor=request.user,
                     trial=obj.trial, obj=obj, site=obj.site,
                     detail={"changed": form.changed_data})
