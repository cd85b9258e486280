"""Quality pages, included under /quality/ by grading/urls.py (namespace ``grading:quality``)."""

from django.urls import path

from grading.quality import views

app_name = "quality"

urlpatterns = [
    path("", views.index, name="index"),
    path("agreement", views.agreement_page, name="agreement"),
    path("performance", views.performance_page, name="performance"),
    path("monitoring", views.monitoring_page, name="monitoring"),
    path("<str:kind>/export.<str:fmt>", views.export, name="export"),
    path("report.pdf", views.report, name="report"),
]
