from django.urls import path

from . import views

urlpatterns = [
    path("trials/<slug:slug>/unblind/", views.unblind_trial, name="unblind_trial"),
]
