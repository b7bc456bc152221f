from django.urls import path

from . import crfs, home, participants, safety

PARTICIPANT = "trials/<slug:slug>/participants/<str:study_id>/"
RECORD = PARTICIPANT + "crfs/<int:record_id>/"
QUERY = PARTICIPANT + "queries/<int:query_id>/"
SAE = "trials/<slug:slug>/safety/<int:sae_id>/"

urlpatterns = [
    path("", home.home, name="home"),
    path("health/", home.health, name="health"),
    path("trials/<slug:slug>/", home.trial_detail, name="trial_detail"),
    path("trials/<slug:slug>/participants/", participants.participant_list, name="participant_list"),
    path("trials/<slug:slug>/participants/new/", participants.screen_participant,
         name="screen_participant"),
    path("trials/<slug:slug>/participants/<str:study_id>/", participants.participant_detail,
         name="participant_detail"),
    path("trials/<slug:slug>/participants/<str:study_id>/consent/", participants.record_consent,
         name="record_consent"),
    path(PARTICIPANT + "eligibility/confirm/", participants.confirm_eligibility,
         name="confirm_eligibility"),
    path(PARTICIPANT + "withdrawal/", participants.record_withdrawal, name="record_withdrawal"),
    path("trials/<slug:slug>/reconsent/", participants.reconsent_worklist,
         name="reconsent_worklist"),
    path("trials/<slug:slug>/participants/<str:study_id>/rescreen/", participants.rescreen,
         name="rescreen"),
    path("trials/<slug:slug>/screening-log/", participants.screening_log_page,
         name="screening_log"),
    path("trials/<slug:slug>/visits/", participants.visit_worklist, name="visit_worklist"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/", participants.visit_timeline,
         name="visit_timeline"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/unscheduled/",
         participants.add_unscheduled_visit, name="add_unscheduled_visit"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/<int:visit_id>/",
         participants.update_visit, name="update_visit"),
    path(PARTICIPANT + "crf/<slug:crf_code>/", crfs.crf_edit, name="crf_edit"),
    path(PARTICIPANT + "visits/<int:visit_id>/crf/<slug:crf_code>/", crfs.crf_edit,
         name="visit_crf_edit"),
    path(RECORD + "sign/", crfs.crf_sign, name="crf_sign"),
    path(RECORD + "lock/", crfs.crf_lock, name="crf_lock"),
    path(RECORD + "unlock/", crfs.crf_unlock, name="crf_unlock"),
    path(RECORD + "history/", crfs.crf_history, name="crf_history"),
    path(RECORD + "pdf/", crfs.crf_pdf, name="crf_pdf"),
    path(RECORD + "queries/", crfs.query_raise, name="query_raise"),
    path(QUERY + "answer/", crfs.query_action, {"action": "answer"}, name="query_answer"),
    path(QUERY + "close/", crfs.query_action, {"action": "close"}, name="query_close"),
    path(QUERY + "reopen/", crfs.query_action, {"action": "reopen"}, name="query_reopen"),
    path("trials/<slug:slug>/safety/", safety.sae_list, name="sae_list"),
    path("trials/<slug:slug>/safety/listing.csv", safety.sae_listing, name="sae_listing"),
    path(SAE, safety.sae_detail, name="sae_detail"),
    path(SAE + "draft/", safety.sae_save_draft, name="sae_save_draft"),
    path(SAE + "sign/", safety.sae_sign, name="sae_sign"),
    path(SAE + "follow-up/", safety.sae_follow_up, name="sae_follow_up"),
    path(SAE + "assess/", safety.sae_assess, name="sae_assess"),
    path(SAE + "susar-submitted/", safety.sae_susar_submitted, name="sae_susar_submitted"),
    path(SAE + "unblind/", safety.sae_unblind, name="sae_unblind"),
    path(SAE + "versions/<int:number>/pdf/", safety.sae_pdf, name="sae_pdf"),
]
