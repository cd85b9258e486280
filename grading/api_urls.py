"""API routes of this app, mounted under /api/ in the \"api\" namespace by config/urls.py."""

from django.urls import path

from grading import api
from grading.quality import api_urls as quality_api_urls

urlpatterns = [
    path("grading/next", api.NextTaskApi.as_view(), name="grading-next"),
    path("grading/tasks/<int:task_id>", api.TaskApi.as_view(), name="grading-task"),
    path("grading/tasks/<int:task_id>/grade", api.GradeApi.as_view(), name="grading-grade"),
    path("grading/tasks/<int:task_id>/skip", api.SkipApi.as_view(), name="grading-skip"),
    path("grading/tasks/<int:task_id>/lease", api.LeaseApi.as_view(), name="grading-lease"),
    path("images/<uuid:image_id>/grades", api.ImageGradesApi.as_view(), name="image-grades"),
    *quality_api_urls.urlpatterns,
]
