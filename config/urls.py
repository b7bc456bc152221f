from django.contrib import admin
from django.urls import include, path

from accounts.views import set_profile_language

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("profile/language/", set_profile_language, name="set_profile_language"),
    path("", include("trials.urls")),
    path("", include("randomisation.urls")),
    path("", include("outcomes.urls")),
    path("", include("reports.urls")),
    path("", include("pages.urls")),
    path("", include("api.urls")),
]

handler404 = "api.errors.page_not_found"  # JSON under /api/, the usual page elsewhere
