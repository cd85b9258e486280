"""API routes of this app, mounted under /api/ in the \"api\" namespace by config/urls.py."""

from django.urls import path

from remedio import api

urlpatterns = [
    path("zip/upload", api.ZipUploadApi.as_view(), name="zip-upload"),
    path("encounters/", api.EncounterListApi.as_view(), name="encounters"),
    path("encounters/<int:encounter_id>", api.EncounterDetailApi.as_view(), name="encounter"),
    path("encounters/<int:encounter_id>/verify", api.EncounterVerifyApi.as_view(), name="encounter-verify"),
    path("encounters/<int:encounter_id>/undo", api.EncounterUndoApi.as_view(), name="encounter-undo"),
]
