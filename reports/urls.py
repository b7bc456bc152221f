from django.urls import path

from . import views

REPORTS = "trials/<slug:slug>/reports/"
EXPORTS = "trials/<slug:slug>/exports/"

urlpatterns = [
    path(REPORTS, views.report_list, name="report_list"),
    path(REPORTS + "request/", views.report_request, name="report_request"),
    path(REPORTS + "<int:report_id>/status/", views.report_status, name="report_status"),
    path(REPORTS + "<int:report_id>/download/", views.report_download, name="report_download"),
    path("trials/<slug:slug>/outcomes/report.pdf", views.trial_outcomes_pdf,
         name="trial_outcomes_pdf"),
    path("trials/<slug:slug>/participants/<str:study_id>/casebook/", views.casebook_request,
         name="casebook_request"),
    path("trials/<slug:slug>/blank-crfs/", views.blank_crf_list, name="blank_crf_list"),
    path("trials/<slug:slug>/blank-crfs/v<int:version>/<str:variant>/<str:crf_code>.pdf",
         views.blank_crf_pdf, name="blank_crf_pdf"),
    path(EXPORTS, views.export_list, name="export_list"),
    path(EXPORTS + "odm.xml", views.export_odm, name="export_odm"),
    path(EXPORTS + "all-crfs-<str:form>.zip", views.export_all_csv, name="export_all_csv"),
    path(EXPORTS + "<str:crf_code>/<str:form>.csv", views.export_crf_csv, name="export_crf_csv"),
]
