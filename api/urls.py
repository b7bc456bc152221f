"""The API's routes, under /api/v1/, its schema and docs, and the page for one's own token.

Each API route has its row in ``tests/test_permission_matrix.py`` and appears in the schema
(``tests/api/test_schema.py`` checks both).
"""
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import tokens, views

TRIAL = "trials/<slug:slug>/"
PARTICIPANT = TRIAL + "participants/<str:study_id>/"
RECORD = PARTICIPANT + "crfs/<int:record_id>/"
QUERY = TRIAL + "queries/<int:query_id>/"
REPORT = TRIAL + "reports/<int:report_id>/"
SUPPLY = TRIAL + "supply/"
SUPPLY_SITE = SUPPLY + "sites/<str:site_code>/"
SHIPMENT = SUPPLY + "shipments/<int:shipment_number>/"
KIT_LIST = SUPPLY + "kit-lists/<int:list_number>/"

v1 = [
    path("trials/", views.TrialList.as_view(), name="api_trials"),
    path(TRIAL, views.TrialDetail.as_view(), name="api_trial"),
    path(TRIAL + "sites/", views.SiteList.as_view(), name="api_sites"),
    path(TRIAL + "participants/", views.ParticipantList.as_view(), name="api_participants"),
    path(TRIAL + "screening-log/", views.ScreeningLog.as_view(), name="api_screening_log"),
    path(PARTICIPANT, views.ParticipantDetail.as_view(), name="api_participant"),
    path(PARTICIPANT + "consent/", views.Consent.as_view(), name="api_consent"),
    path(PARTICIPANT + "withdrawals/", views.Withdrawals.as_view(), name="api_withdrawals"),
    path(TRIAL + "reconsent/", views.ReconsentWorklist.as_view(), name="api_reconsent"),
    path(PARTICIPANT + "eligibility/", views.Eligibility.as_view(), name="api_eligibility"),
    path(PARTICIPANT + "randomise/", views.Randomise.as_view(), name="api_randomise"),
    path(PARTICIPANT + "rescreen/", views.Rescreen.as_view(), name="api_rescreen"),
    path(PARTICIPANT + "randomised-in-error/", views.RandomisedInError.as_view(),
         name="api_randomised_in_error"),
    path(PARTICIPANT + "allocation/", views.AllocationDetail.as_view(), name="api_allocation"),
    path(TRIAL + "visits/", views.TrialVisits.as_view(), name="api_trial_visits"),
    path(TRIAL + "matrix/", views.SubjectMatrix.as_view(), name="api_subject_matrix"),
    path(PARTICIPANT + "visits/", views.ParticipantVisits.as_view(), name="api_visits"),
    path(PARTICIPANT + "visits/<int:visit_id>/", views.VisitDetail.as_view(), name="api_visit"),
    path(PARTICIPANT + "crfs/", views.CRFList.as_view(), name="api_crfs"),
    path(RECORD, views.CRFDetail.as_view(), name="api_crf"),
    path(RECORD + "queries/", views.RecordQueries.as_view(), name="api_record_queries"),
    path(RECORD + "verifications/", views.RecordVerifications.as_view(),
         name="api_record_verifications"),
    path(TRIAL + "queries/", views.TrialQueries.as_view(), name="api_queries"),
    path(TRIAL + "monitoring-visits/", views.MonitoringVisits.as_view(),
         name="api_monitoring_visits"),
    path(TRIAL + "monitoring-visits/report/", views.MonitoringReport.as_view(),
         name="api_monitoring_report"),
    path(QUERY, views.QueryDetail.as_view(), name="api_query"),
    path(QUERY + "answer/", views.QueryAnswer.as_view(), name="api_query_answer"),
    path(QUERY + "close/", views.QueryClose.as_view(), name="api_query_close"),
    path(QUERY + "reopen/", views.QueryReopen.as_view(), name="api_query_reopen"),
    path(TRIAL + "reports/", views.ReportList.as_view(), name="api_reports"),
    path(REPORT, views.ReportDetail.as_view(), name="api_report"),
    path(REPORT + "download/", views.ReportDownload.as_view(), name="api_report_download"),
    path(TRIAL + "exports/csv/", views.ExportAllCRFs.as_view(), name="api_export_zip"),
    path(TRIAL + "exports/csv/<slug:crf_code>/", views.ExportCRF.as_view(),
         name="api_export_csv"),
    path(TRIAL + "exports/odm/", views.ExportODM.as_view(), name="api_export_odm"),
    path(TRIAL + "sae-reports/", views.SAEReportList.as_view(), name="api_sae_reports"),
    path(TRIAL + "sae-reports/<int:sae_id>/", views.SAEReportDetail.as_view(),
         name="api_sae_report"),
    path(TRIAL + "audit-log/", views.AuditLog.as_view(), name="api_audit_log"),
    # Investigational product supply (docs/supply.md): kit numbers for all, arms for the
    # unblinded only.
    path(SUPPLY + "stock/", views.SupplyStock.as_view(), name="api_supply_stock"),
    path(SUPPLY_SITE + "kits/", views.SiteKits.as_view(), name="api_site_kits"),
    path(SUPPLY_SITE + "kit-records/", views.SiteKitRecords.as_view(),
         name="api_site_kit_records"),
    path(SUPPLY_SITE + "accountability/", views.SiteAccountability.as_view(),
         name="api_site_accountability"),
    path(SUPPLY + "shipments/", views.Shipments.as_view(), name="api_shipments"),
    path(SHIPMENT, views.ShipmentDetail.as_view(), name="api_shipment"),
    path(SHIPMENT + "receipt/", views.ShipmentReceipt.as_view(), name="api_shipment_receipt"),
    path(SUPPLY + "excursions/", views.Excursions.as_view(), name="api_excursions"),
    path(SUPPLY + "excursions/<int:excursion_id>/decision/", views.ExcursionDecision.as_view(),
         name="api_excursion_decision"),
    path(SUPPLY + "resupply-requests/", views.ResupplyRequests.as_view(),
         name="api_resupply_requests"),
    path(PARTICIPANT + "kits/", views.ParticipantKits.as_view(), name="api_participant_kits"),
    path(PARTICIPANT + "kits/<int:assignment_id>/replace/", views.ReplaceKit.as_view(),
         name="api_replace_kit"),
    path(SUPPLY + "kit-lists/", views.KitLists.as_view(), name="api_kit_lists"),
    path(SUPPLY + "kit-lists/import/", views.KitListImport.as_view(), name="api_kit_list_import"),
    path(KIT_LIST + "seal/", views.KitListSeal.as_view(), name="api_kit_list_seal"),
    path(KIT_LIST + "verify/", views.KitListVerify.as_view(), name="api_kit_list_verify"),
]


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI, from the project's static files; its init script is a file of its own
    (``?script``), so no inline script is needed. A page: anonymous visitors go to login."""

    @classmethod
    def as_view(cls, **initkwargs):
        view = super().as_view(**initkwargs)
        view.login_required = True  # DRF exempts its views; this one is a page
        return view


urlpatterns = [
    path("api/v1/", include(v1)),
    # The schema, for a session or a token (401 without): it holds no data, the API is private.
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", DocsView.as_view(url_name="api_schema"),
         name="api_docs"),
    path("profile/api-token/", tokens.api_token, name="api_token"),
]
