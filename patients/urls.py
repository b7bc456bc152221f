from django.urls import path

from . import views

urlpatterns = [
    path("trials/<slug:slug>/participants/", views.participant_list, name="participant_list"),
    path("trials/<slug:slug>/participants/<str:study_id>/", views.participant_detail,
         name="participant_detail"),
]
