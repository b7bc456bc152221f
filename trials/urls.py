from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("trials/<slug:slug>/", views.trial_detail, name="trial_detail"),
    path("trials/<slug:slug>/unblind/", views.unblind_trial, name="unblind_trial"),
]
