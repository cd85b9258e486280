"""Pre-graded image upload: the page and POST /api/pregraded/upload, with the direct-upload checks, the images marked
pre-graded (badge), a verification record and grading tasks for each, EXIF stripped, and who may upload and import."""

import io

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from accounts.models import Role
from grading.models import GradingTask
from jobs.models import Job, JobItem
from pregraded.models import PregradedVerification
from tests.images import exif_with, jpeg_bytes
from uploads.models import Image

IDENTIFIER = "Patient Jane Doe"


def _jpeg(name: str, seed: int, **kwargs) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, jpeg_bytes(width=96, height=96, seed=seed, **kwargs), content_type="image/jpeg")


@pytest.fixture
def api_upload(api_client, run_jobs):
    def post(user, fields, files):
        api_client.force_authenticate(user)
        with run_jobs():
            return api_client.post("/api/pregraded/upload", {**fields, "files": list(files)}, format="multipart")

    return post


def test_api_upload_marks_images_pregraded_with_label_verification_and_tasks(api_upload, uploader, upload_fields):
    response = api_upload(
        uploader,
        {**upload_fields, "dataset_label": "  EyePACS sample\x07 2024 "},
        [_jpeg("A.jpg", 1, exif=exif_with(1)), _jpeg("b.jpg", 2)],
    )
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.kind == "pregraded_upload" and job.status == "done"
    images = {i.original_name: i for i in Image.objects.all()}
    assert set(images) == {"A.jpg", "b.jpg"}
    for image in images.values():
        assert image.is_pregraded and image.source == "pregraded"
        assert image.dataset_label == "EyePACS sample 2024"  # control characters dropped, spaces trimmed
        assert PregradedVerification.objects.get(image=image).status == "awaiting_grades"
        slots = set(GradingTask.objects.filter(image=image).values_list("slot", flat=True))
        assert "primary" in slots
        with storages["default"].open(image.file.name) as fh:
            stored = fh.read()
        assert IDENTIFIER.encode() not in stored
        assert not dict(PILImage.open(io.BytesIO(stored)).getexif())


def test_same_validation_and_duplicate_handling_as_direct_uploads(api_upload, uploader, upload_fields):
    first = api_upload(uploader, upload_fields, [_jpeg("one.jpg", 7)])
    assert Job.objects.get(pk=first.json()["job_id"]).status == "done"
    gif = SimpleUploadedFile("x.jpg", b"GIF89a" + b"\x00" * 64, content_type="image/jpeg")
    second = api_upload(uploader, upload_fields, [_jpeg("again.jpg", 7), gif])
    items = {i.filename: i for i in JobItem.objects.filter(job_id=second.json()["job_id"])}
    assert items["again.jpg"].status == "error" and items["again.jpg"].error == "Duplicate file"
    assert items["x.jpg"].status == "error" and items["x.jpg"].error.startswith("Invalid file type: image/gif")
    assert Image.objects.count() == 1 and PregradedVerification.objects.count() == 1
    too_long = api_upload(uploader, {**upload_fields, "dataset_label": "x" * 121}, [_jpeg("c.jpg", 8)])
    assert too_long.status_code == 400
    assert too_long.json()["detail"] == "The dataset label is too long (max 120 characters)."
    missing = api_upload(uploader, {**upload_fields, "camera": ""}, [_jpeg("d.jpg", 9)])
    assert missing.status_code == 400 and "All fields are required" in missing.json()["detail"]


@pytest.mark.parametrize(
    "role, may_upload, may_import",
    [
        (Role.ADMIN, True, True),
        (Role.DATA_MANAGER, True, True),
        (Role.UPLOADER, True, False),
        (Role.RESIDENT, False, False),
        (Role.OPHTHALMOLOGIST, False, False),
    ],
)
def test_who_may_upload_and_who_may_import(
    role, may_upload, may_import, make_user, lab_unit, upload_fields, api_upload, client
):
    user = make_user(role, lab_units=[lab_unit])
    response = api_upload(user, upload_fields, [_jpeg("r.jpg", 3)])
    assert response.status_code == (202 if may_upload else 403), response.content
    client.force_login(user)
    assert client.get("/pregraded/upload").status_code == 200
    page = client.get("/pregraded/grades")
    assert page.status_code == (200 if may_import else 403)
    if not may_import:
        assert "only data managers and administrators import grades" in page.content.decode()
    assert client.get("/pregraded/grades/template/ai.xlsx").status_code == (200 if may_import else 403)
    menu = client.get("/").content.decode()  # Direct Uploads → Pre-Graded Upload / Pre-Graded Grades
    assert ('href="/pregraded/upload"' in menu) == may_upload
    assert ('href="/pregraded/grades"' in menu) == may_import


def test_lab_unit_outside_the_uploaders_scope(api_upload, make_user, lab_unit, other_lab_unit, upload_fields):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit])
    fields = {**upload_fields, "hospital": str(other_lab_unit.hospital_id), "lab_unit": str(other_lab_unit.pk)}
    response = api_upload(user, fields, [_jpeg("o.jpg", 4)])
    assert response.status_code == 403
    assert response.json()["detail"] == "You don't have access to the selected lab unit"
    assert not Image.objects.exists() and not Job.objects.exists()


def test_upload_page_form_creates_pregraded_images_and_lists_them_with_the_badge(
    client, uploader, upload_fields, run_jobs
):
    client.force_login(uploader)
    form = client.get("/pregraded/upload")
    body = form.content.decode()
    assert 'name="dataset_label"' in body and "badge-pregraded" in body
    with run_jobs():
        response = client.post(
            "/pregraded/upload", {**upload_fields, "dataset_label": "batch 7", "files": [_jpeg("page.jpg", 5)]}
        )
    assert response.status_code == 302 and "/processing" in response["Location"]
    image = Image.objects.get()
    assert image.is_pregraded and image.dataset_label == "batch 7"
    results = client.get(response["Location"].replace("/processing/", "/results/")).content.decode()
    assert "page.jpg" in results and '<span class="badge badge-pregraded">Pre-graded</span>' in results
    assert PregradedVerification.objects.filter(image=image).exists()
    regular = Image.objects.create(
        **{
            f.name: getattr(image, f.name)
            for f in Image._meta.concrete_fields
            if f.name not in ("id", "md5", "is_pregraded", "source", "original_name")
        },
        md5="0" * 32,
        is_pregraded=False,
        source="direct",
        original_name="regular.jpg",
    )
    dashboard = client.get("/images/").content.decode()
    assert dashboard.count('<span class="badge badge-pregraded"') == 1
    assert "page.jpg" in dashboard and regular.original_name in dashboard
    image_page = client.get(f"/images/{image.pk}").content.decode()
    assert "badge-pregraded" in image_page and "Awaiting grades" in image_page


def test_a_data_manager_verifies_a_pregraded_image(client, make_user, lab_unit, pregraded_image, uploader):
    image = pregraded_image("v.jpg")
    PregradedVerification.objects.create(image=image)
    client.force_login(uploader)
    client.post(f"/pregraded/images/{image.pk}/verify")
    assert PregradedVerification.objects.get(image=image).status == "awaiting_grades"
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    client.force_login(manager)
    response = client.post(f"/pregraded/images/{image.pk}/verify", {"next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == f"/images/{image.pk}"
    record = PregradedVerification.objects.get(image=image)
    assert record.status == "verified" and record.verified_by == manager
