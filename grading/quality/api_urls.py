"""Quality API routes, spliced into the "api" namespace by grading/api_urls.py."""

from django.urls import path

from grading.quality import api

urlpatterns = [
    path("quality/agreement", api.AgreementApi.as_view(), name="quality-agreement"),
    path("quality/performance", api.PerformanceApi.as_view(), name="quality-performance"),
    path("quality/monitoring", api.MonitoringApi.as_view(), name="quality-monitoring"),
]
