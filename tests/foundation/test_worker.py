"""End to end with a real Celery worker process (Redis in CI, the file broker on a bare machine)."""

import pytest
from django.conf import settings
from django.core.files.storage import storages

from jobs.models import Job
from tests.conftest import wait_for
from tests.foundation.conftest import GIF_BYTES, jpeg, upload_file
from uploads.models import Image

pytestmark = pytest.mark.worker


def test_a_real_worker_processes_an_upload(celery_worker_process, api_client, uploader, upload_fields):
    api_client.force_authenticate(uploader)
    files = [jpeg("one.jpg", seed=301), upload_file("two.gif", GIF_BYTES), jpeg("three.jpg", seed=302)]
    response = api_client.post("/api/direct/upload", {**upload_fields, "files": files}, format="multipart")
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    status_url = response.json()["status_url"]

    def finished():
        doc = api_client.get(status_url).json()
        return doc if doc["status"] in ("done", "error") else None

    doc = wait_for(finished, timeout=90, message=f"job {job_id} to finish on {settings.CELERY_BROKER_URL}")
    assert doc["status"] == "error" and doc["error"] == "One or more files failed"
    assert [(i["filename"], i["status"]) for i in doc["items"]] == [
        ("one.jpg", "completed"),
        ("two.gif", "error"),
        ("three.jpg", "completed"),
    ]
    assert doc["started_at"] and doc["finished_at"]
    job = Job.objects.get(pk=job_id)
    # Processed by the worker process, not inline: every processed item was claimed once, by it.
    assert all(item.attempts == 1 for item in job.items.filter(status="completed"))
    assert Image.objects.filter(job_item__job=job).count() == 2
    staged = [item.staged_name for item in job.items.exclude(staged_name="")]
    assert len(staged) == 2 and not any(storages["staging"].exists(name) for name in staged)
    assert celery_worker_process.poll() is None  # still running: nothing crashed it
