from django.urls import path

from . import views

PARTICIPANT = "trials/<slug:slug>/participants/<str:study_id>/"
RECORD = PARTICIPANT + "crfs/<int:record_id>/"
QUERY = PARTICIPANT + "queries/<int:query_id>/"
EXPORTS = "trials/<slug:slug>/exports/"

urlpatterns = [
    path(PARTICIPANT + "crf/<slug:crf_code>/", views.crf_edit, name="crf_edit"),
    path(PARTICIPANT + "visits/<int:visit_id>/crf/<slug:crf_code>/", views.crf_edit,
         name="visit_crf_edit"),
    path(RECORD + "sign/", views.crf_sign, name="crf_sign"),
    path(RECORD + "lock/", views.crf_lock, name="crf_lock"),
    path(RECORD + "unlock/", views.crf_unlock, name="crf_unlock"),
    path(RECORD + "history/", views.crf_history, name="crf_history"),
    path(RECORD + "pdf/", views.crf_pdf, name="crf_pdf"),
    path(RECORD + "queries/", views.query_raise, name="query_raise"),
    path(QUERY + "answer/", views.query_action, {"action": "answer"}, name="query_answer"),
    path(QUERY + "close/", views.query_action, {"action": "close"}, name="query_close"),
    path("trials/<slug:slug>/outcomes/", views.trial_outcomes, name="trial_outcomes"),
    path("trials/<slug:slug>/outcomes/report.pdf", views.trial_outcomes_pdf,
         name="trial_outcomes_pdf"),
    path(QUERY + "reopen/", views.query_action, {"action": "reopen"}, name="query_reopen"),
    path(EXPORTS, views.export_list, name="export_list"),
    path(EXPORTS + "odm.xml", views.export_odm, name="export_odm"),
    path(EXPORTS + "all-crfs-<str:form>.zip", views.export_all_csv, name="export_all_csv"),
    path(EXPORTS + "<str:crf_code>/<str:form>.csv", views.export_crf_csv, name="export_crf_csv"),
]

from . import report_views  # noqa: E402  (the Reports page, see outcomes/report_views.py)

REPORTS = "trials/<slug:slug>/reports/"
urlpatterns += [
    path(REPORTS, report_views.report_list, name="report_list"),
    path(REPORTS + "request/", report_views.report_request, name="report_request"),
    path(REPORTS + "<int:report_id>/status/", report_views.report_status, name="report_status"),
    path(REPORTS + "<int:report_id>/download/", report_views.report_download,
         name="report_download"),
]
