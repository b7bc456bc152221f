from django.urls import path

from . import views

urlpatterns = [
    path("trials/<slug:slug>/participants/<str:study_id>/crf/<slug:crf_code>/", views.crf_edit,
         name="crf_edit"),
    path("trials/<slug:slug>/participants/<str:study_id>/visits/<int:visit_id>/crf/"
         "<slug:crf_code>/", views.crf_edit, name="visit_crf_edit"),
]
