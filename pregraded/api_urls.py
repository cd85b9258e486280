"""API routes of this app, mounted under /api/ in the \"api\" namespace by config/urls.py."""

from django.urls import path

from pregraded import api

urlpatterns = [
    path("pregraded/upload", api.PregradedUploadApi.as_view(), name="pregraded-upload"),
    path("pregraded/grades", api.GradeImportsApi.as_view(), name="pregraded-grades"),
    path("pregraded/grades/template", api.GradeTemplateApi.as_view(), name="pregraded-grade-template"),
    path("pregraded/grades/<uuid:import_id>", api.GradeImportApi.as_view(), name="pregraded-grade-import"),
    path(
        "pregraded/grades/<uuid:import_id>/mapping",
        api.GradeImportMappingApi.as_view(),
        name="pregraded-grade-import-mapping",
    ),
    path(
        "pregraded/grades/<uuid:import_id>/cancel",
        api.GradeImportCancelApi.as_view(),
        name="pregraded-grade-import-cancel",
    ),
    path("pregraded/ai-models", api.AIModelsApi.as_view(), name="pregraded-ai-models"),
]
