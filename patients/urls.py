from django.urls import path

from . import views

urlpatterns = [
    path("trials/<slug:slug>/participants/", views.participant_list, name="participant_list"),
    path("trials/<slug:slug>/participants/new/", views.screen_participant,
         name="screen_participant"),
    path("trials/<slug:slug>/participants/<str:study_id>/", views.participant_detail,
         name="participant_detail"),
    path("trials/<slug:slug>/participants/<str:study_id>/consent/", views.record_consent,
         name="record_consent"),
    path("trials/<slug:slug>/visits/", views.visit_worklist, name="visit_worklist"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/", views.visit_timeline,
         name="visit_timeline"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/unscheduled/",
         views.add_unscheduled_visit, name="add_unscheduled_visit"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/<int:visit_id>/",
         views.update_visit, name="update_visit"),
]
