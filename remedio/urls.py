from django.urls import path

from remedio import views

app_name = "remedio"

urlpatterns = [
    path("upload_files", views.upload_files, name="upload"),
    path("encounters/", views.encounter_list, name="encounters"),
    path("encounters/<int:encounter_id>/", views.encounter_verify, name="verify"),
    path("encounters/<int:encounter_id>/undo", views.encounter_undo, name="undo"),
    path("encounters/<int:encounter_id>/reports/<int:report_id>.pdf", views.report_pdf, name="report-pdf"),
    path("encounters/images/<uuid:image_id>/original", views.image_original, name="image-original"),
]
