"""The user admin, audited: accounts created, changed (active, staff, superuser, groups) and
passwords set by an administrator are written to the audit log."""
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from core import audit

User = get_user_model()

AUDITED_FIELDS = ["username", "email", "is_active", "is_staff", "is_superuser", "groups",
                  "user_permissions"]

admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        name = obj.get_username()
        if not change:
            audit.record("account.created", f"account {name} created by "
                         f"{request.user.get_username()}", actor=request.user, obj=obj)
            return
        changed = [f for f in form.changed_data if f in AUDITED_FIELDS]
        if changed:
            audit.record("account.changed", f"account {name} changed: {', '.join(changed)}",
                         actor=request.user, obj=obj,
                         detail={f: str(form.cleaned_data.get(f)) for f in changed
                                 if f not in ("groups", "user_permissions")})

    def user_change_password(self, request, id, form_url=""):
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = self.get_object(request, id)
            audit.record("auth.password_changed", f"password of {user.get_username()} set by "
                         f"{request.user.get_username()} (admin)", actor=request.user, obj=user)
        return response
