"""The status API, the processing / results / recent-jobs pages, who may see a job or an image, and query counts."""

from datetime import datetime

import pytest
from django.test import Client

from accounts.models import Role
from jobs import services as job_services
from jobs.models import Job
from tests.foundation.conftest import GIF_BYTES, jpeg, upload_file
from uploads.models import Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_job(uploader, upload_fields, api_upload, run_jobs):
    """a.jpg stored, b.gif refused, c.jpg stored."""
    with run_jobs():
        response = api_upload(
            uploader, upload_fields, [jpeg("a.jpg", seed=1), upload_file("b.gif", GIF_BYTES), jpeg("c.jpg", seed=2)]
        )
    return Job.objects.get(pk=response.json()["job_id"])


def test_status_api_shape(uploader, finished_job, api_client):
    api_client.force_authenticate(uploader)
    response = api_client.get(f"/api/upload-jobs/{finished_job.pk}/status")
    assert response.status_code == 200
    doc = response.json()
    # The keys of DESIGN.md's example, and the documented extras.
    assert {"job_id", "kind", "status", "error", "total", "completed", "failed", "pending", "items"} <= set(doc)
    assert doc["job_id"] == str(finished_job.pk) and doc["kind"] == "direct_upload"
    assert (doc["status"], doc["error"]) == ("error", "One or more files failed")
    assert (doc["total"], doc["completed"], doc["failed"], doc["pending"], doc["rejected"]) == (3, 2, 1, 0, 1)
    assert doc["uploader"] == uploader.username
    for key in ("created_at", "started_at", "finished_at"):
        assert datetime.fromisoformat(doc[key]), key
    assert doc["created_at"] <= doc["started_at"] <= doc["finished_at"]
    # Items in the order the files were sent.
    assert [i["filename"] for i in doc["items"]] == ["a.jpg", "b.gif", "c.jpg"]
    first, refused, last = doc["items"]
    assert {"filename", "status", "error", "image_id"} <= set(first)
    assert first["status"] == "completed" and first["error"] is None
    assert Image.objects.filter(pk=first["image_id"], original_name="a.jpg").exists()
    assert refused == {
        **refused,
        "status": "error",
        "error": "Invalid file type: image/gif. Only JPG/PNG allowed.",
        "image_id": None,
    }
    assert last["image_id"] != first["image_id"]


def test_status_of_a_queued_job(uploader, upload_fields, api_upload, api_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = api_upload(uploader, upload_fields, [jpeg("a.jpg")])
    doc = api_client.get(response.json()["status_url"]).json()
    assert (doc["status"], doc["pending"], doc["completed"], doc["started_at"], doc["finished_at"]) == (
        "queued",
        1,
        0,
        None,
        None,
    )
    assert doc["items"][0]["status"] == "queued" and doc["items"][0]["image_id"] is None


def test_processing_page(uploader, finished_job):
    client = Client()
    client.force_login(uploader)
    html = client.get(f"/direct/upload/processing/{finished_job.pk}").content.decode()
    assert str(finished_job.pk) in html
    assert f'data-status-url="/api/upload-jobs/{finished_job.pk}/status"' in html
    assert "Refresh now" in html and "View Results" in html and 'id="progress-bar"' in html
    assert html.count('data-status="completed"') == 2 and html.count('data-status="error"') >= 2
    assert "text-bg-danger" in html and "text-bg-success" in html


def test_results_page_lists_totals_and_each_failure(uploader, finished_job):
    client = Client()
    client.force_login(uploader)
    html = client.get(f"/direct/upload/results/{finished_job.pk}").content.decode()
    assert 'id="total-count">3<' in html
    assert 'id="success-count">2<' in html
    assert 'id="failed-count">1<' in html
    assert "One or more files failed" in html
    assert "b.gif" in html and "Invalid file type: image/gif. Only JPG/PNG allowed." in html
    for image in Image.objects.all():
        assert f"/images/{image.pk}/thumbnail" in html


def test_recent_jobs_lists_the_users_jobs_newest_first_with_rejections(uploader, upload_fields, api_upload, run_jobs):
    with run_jobs():
        api_upload(uploader, upload_fields, [jpeg("a.jpg", seed=1)])
        api_upload(uploader, upload_fields, [upload_file("x.gif", GIF_BYTES), jpeg("b.jpg", seed=2)])
    client = Client()
    client.force_login(uploader)
    html = client.get("/jobs").content.decode()
    newest, oldest = Job.objects.order_by("-created_at")
    assert html.index(str(newest.pk)[:8]) < html.index(str(oldest.pk)[:8])
    assert "Direct upload" in html
    assert f"/direct/upload/results/{newest.pk}" in html
    assert 'class="text-danger fw-semibold">1</span>' in html


def test_recent_jobs_shows_at_most_100(uploader):
    items = [job_services.ItemSpec(filename="x", error="refused")]
    for _ in range(103):
        job_services.job_create(kind="direct_upload", user=uploader, items=items)
    client = Client()
    client.force_login(uploader)
    response = client.get("/jobs")
    assert len(response.context["jobs"]) == 100


# --- access: 404 for what is not yours -----------------------------------------------------------------------------


@pytest.fixture
def stranger(make_user, other_lab_unit):
    return make_user(Role.UPLOADER, Role.DATA_MANAGER, lab_units=[other_lab_unit])


def test_a_job_of_another_lab_unit_is_404_in_pages_and_api(stranger, finished_job, api_client):
    client = Client()
    client.force_login(stranger)
    for path in (f"/direct/upload/processing/{finished_job.pk}", f"/direct/upload/results/{finished_job.pk}"):
        assert client.get(path).status_code == 404, path
    api_client.force_authenticate(stranger)
    response = api_client.get(f"/api/upload-jobs/{finished_job.pk}/status")
    assert response.status_code == 404 and "items" not in response.json()
    assert str(finished_job.pk)[:8] not in client.get("/jobs").content.decode()


def test_an_image_of_another_lab_unit_is_404(stranger, finished_job):
    client = Client()
    client.force_login(stranger)
    for image in Image.objects.all():
        assert client.get(f"/images/{image.pk}/file").status_code == 404
        assert client.get(f"/images/{image.pk}/thumbnail").status_code == 404


def test_the_owner_and_the_lab_units_data_manager_and_admins_see_the_job(
    uploader, make_user, lab_unit, admin_user, finished_job
):
    colleague = make_user(Role.UPLOADER, lab_units=[lab_unit])  # another uploader sees only their own jobs
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    for user, visible in ((uploader, True), (manager, True), (admin_user, True), (colleague, False)):
        client = Client()
        client.force_login(user)
        expected = 200 if visible else 404
        assert client.get(f"/api/upload-jobs/{finished_job.pk}/status").status_code == expected, user
        assert client.get(f"/direct/upload/results/{finished_job.pk}").status_code == expected, user


def test_image_files_are_served_to_users_of_the_lab_unit(uploader, make_user, lab_unit, finished_job):
    grader = make_user(Role.RESIDENT, lab_units=[lab_unit])
    image = Image.objects.get(original_name="a.jpg")
    for user in (uploader, grader):
        client = Client()
        client.force_login(user)
        response = client.get(f"/images/{image.pk}/file")
        assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
        body = b"".join(response.streaming_content)
        assert body[:2] == b"\xff\xd8"
        # No user-given names in what leaves the server: the file is named by the image id.
        assert response["Content-Disposition"] == f'inline; filename="{image.pk}.jpg"'
        thumb = client.get(f"/images/{image.pk}/thumbnail")
        assert thumb.status_code == 200
    assert Client().get(f"/images/{image.pk}/file").status_code == 302  # anonymous → log in


def test_unknown_and_malformed_ids_are_404(uploader, api_client):
    client = Client()
    client.force_login(uploader)
    missing = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/direct/upload/processing/{missing}").status_code == 404
    assert client.get("/direct/upload/processing/not-a-uuid").status_code == 404
    api_client.force_authenticate(uploader)
    assert api_client.get(f"/api/upload-jobs/{missing}/status").status_code == 404


# --- query counts ----------------------------------------------------------------------------------------------------


def make_jobs(user, jobs: int, items: int):
    specs = [job_services.ItemSpec(filename=f"f{n}.jpg", error="refused") for n in range(items)]
    return [job_services.job_create(kind="direct_upload", user=user, items=specs) for _ in range(jobs)]


@pytest.mark.parametrize("items", [1, 20])
def test_status_api_query_count_is_constant(uploader, api_client, django_assert_num_queries, items):
    (job,) = make_jobs(uploader, 1, items)
    api_client.force_authenticate(uploader)
    # roles, lab units, the job with its creator and lab unit, its items
    with django_assert_num_queries(4):
        response = api_client.get(f"/api/upload-jobs/{job.pk}/status")
    assert len(response.json()["items"]) == items


@pytest.mark.parametrize("items", [1, 20])
def test_status_api_query_count_with_a_token(uploader, api_client, django_assert_num_queries, items):
    from rest_framework.authtoken.models import Token

    (job,) = make_jobs(uploader, 1, items)
    token = Token.objects.create(user=uploader)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    # the token with its user, then as above
    with django_assert_num_queries(5):
        assert api_client.get(f"/api/upload-jobs/{job.pk}/status").status_code == 200


@pytest.mark.parametrize("jobs", [1, 20])
def test_recent_jobs_query_count_is_constant(uploader, django_assert_num_queries, jobs):
    make_jobs(uploader, jobs, 3)
    client = Client()
    client.force_login(uploader)
    # session, user, roles, lab units, the jobs with their counts
    with django_assert_num_queries(5):
        response = client.get("/jobs")
    assert len(response.context["jobs"]) == jobs


@pytest.mark.parametrize("items", [1, 20])
def test_processing_and_results_pages_query_count_is_constant(uploader, django_assert_num_queries, items):
    (job,) = make_jobs(uploader, 1, items)
    client = Client()
    client.force_login(uploader)
    with django_assert_num_queries(6):
        client.get(f"/direct/upload/processing/{job.pk}")
    with django_assert_num_queries(6):
        client.get(f"/direct/upload/results/{job.pk}")
