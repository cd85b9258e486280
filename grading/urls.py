from django.urls import include, path

from grading import views

app_name = "grading"

urlpatterns = [
    path("grading/", views.queue, name="queue"),
    path("grading/next/<str:disease>", views.next_task, name="next"),
    path("grading/skipped/clear", views.skips_clear, name="skips-clear"),
    path("grading/tasks/<int:task_id>", views.task_page, name="task"),
    path("grading/images/<uuid:image_id>", views.image_grades_page, name="image-grades"),
    path("grading/discrepancies", views.discrepancies, name="discrepancies"),
    path("grading/progress", views.progress, name="progress"),
    path("quality/", include("grading.quality.urls")),
]
