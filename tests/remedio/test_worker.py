"""ZIP ingestion in a real Celery worker process (Redis in CI): reports read on the worker's reading thread, the
encounter stored, a hostile archive of the same upload refused."""

import pytest
from django.conf import settings

from remedio.models import Encounter, Report
from tests.conftest import wait_for
from tests.remedio import export
from tests.remedio.conftest import zip_file

pytestmark = pytest.mark.worker


def test_a_real_worker_ingests_archives(celery_worker_process, api_client, zip_uploader, zip_fields, tesseract):
    good = export.export_zip([export.EncounterSpec(seed=40), export.EncounterSpec(patient_id="MRN0002", seed=41)])
    api_client.force_authenticate(zip_uploader)
    files = [zip_file(good, "good.zip"), zip_file(export.hostile("symlink"), "symlink.zip")]
    response = api_client.post("/api/zip/upload", {**zip_fields, "files": files}, format="multipart")
    assert response.status_code == 202
    status_url = response.json()["status_url"]

    def finished():
        doc = api_client.get(status_url).json()
        return doc if doc["status"] in ("done", "error") else None

    doc = wait_for(finished, timeout=120, message=f"the ZIP job to finish on {settings.CELERY_BROKER_URL}")
    good_item, bad_item = doc["items"]
    assert good_item["status"] == "completed" and good_item["result"]["encounters_created"] == 2
    assert bad_item["status"] == "error" and "is a symbolic link" in bad_item["error"]
    assert Encounter.objects.count() == 2
    assert set(Report.objects.values_list("extraction", flat=True)) == {"ocr"}  # rasterised reports, read by OCR
    assert Report.objects.filter(status=Report.Status.PARSED).count() == 2
    assert celery_worker_process.poll() is None
