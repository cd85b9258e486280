from django.urls import path

from pregraded import views

app_name = "pregraded"

urlpatterns = [
    path("pregraded/upload", views.upload, name="upload"),
    path("pregraded/grades", views.grades, name="grades"),
    path("pregraded/grades/template/<str:grader_type>.xlsx", views.grade_template, name="grade-template"),
    path("pregraded/grades/<uuid:import_id>", views.grade_import_page, name="import"),
    path("pregraded/grades/<uuid:import_id>/mapping", views.grade_import_mapping, name="import-mapping"),
    path("pregraded/grades/<uuid:import_id>/cancel", views.grade_import_cancel, name="import-cancel"),
    path("pregraded/grades/<uuid:import_id>/failed-rows.csv", views.grade_import_failures, name="import-failures"),
    path("pregraded/ai-models", views.ai_models, name="ai-models"),
    path("pregraded/images/<uuid:image_id>/verify", views.verify, name="verify"),
]
