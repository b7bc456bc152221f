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
]
