from django.urls import path

from . import views

P = "trials/<slug:slug>/participants/<str:study_id>/"
urlpatterns = [
    path(P + "randomise/", views.randomise, name="randomise"),
    path(P + "allocation/", views.allocation_detail, name="allocation_detail"),
    path(P + "allocation/certificate.pdf", views.certificate, name="allocation_certificate"),
    path(P + "allocation/unblind/", views.emergency_unblind, name="emergency_unblind"),
    path(P + "allocation/correct-stratum/", views.correct_stratum, name="correct_stratum"),
    path(P + "allocation/randomised-in-error/", views.record_randomised_in_error,
         name="record_randomised_in_error"),
    path("trials/<slug:slug>/allocation-lists/", views.allocation_lists, name="allocation_lists"),
    path("trials/<slug:slug>/allocation-lists/emergency/", views.emergency_allocations,
         name="emergency_allocations"),
    path("trials/<slug:slug>/go-live/", views.go_live, name="trial_go_live"),
    path("trials/<slug:slug>/kit-lists/", views.kit_lists, name="kit_lists"),
    path("trials/<slug:slug>/allocation-lists/balance/", views.balance, name="allocation_balance"),
]
