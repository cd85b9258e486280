from django.urls import path

from jobs import views

app_name = "jobs"

urlpatterns = [
    path("direct/upload/processing/<uuid:job_id>", views.processing, name="processing"),
    path("direct/upload/results/<uuid:job_id>", views.results, name="results"),
    path("jobs", views.recent, name="recent"),
]
