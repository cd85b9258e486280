import pytest

from jobs.models import Job
from uploads.models import Image


def test_api_upload_runs_job(api_client, uploader, upload_fields, jpeg_file, run_jobs):
    api_client.force_authenticate(uploader)
    with run_jobs():
        response = api_client.post(
            "/api/direct/upload", {**upload_fields, "files": [jpeg_file("a.jpg"), jpeg_file("b.jpg")]}, format="multipart"
        )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.status == "done"
    assert Image.objects.count() == 2


@pytest.mark.browser
def test_login_page(page, uploader, login):
    login(uploader)
    page.goto("/direct/upload")
    assert page.locator("h1").inner_text() == "Direct Upload"


@pytest.mark.worker
def test_worker(celery_worker_process, api_client, uploader, upload_fields, jpeg_file):
    from tests.conftest import wait_for

    api_client.force_authenticate(uploader)
    response = api_client.post("/api/direct/upload", {**upload_fields, "files": [jpeg_file("a.jpg")]}, format="multipart")
    job_id = response.json()["job_id"]
    wait_for(lambda: Job.objects.get(pk=job_id).status == "done", timeout=60, message="job done")
