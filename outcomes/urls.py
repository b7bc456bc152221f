from django.urls import path

from . import views

urlpatterns = [
    path("trials/<slug:slug>/outcomes/", views.trial_outcomes, name="trial_outcomes"),
]
