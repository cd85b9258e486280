"""Direct upload through the page and the API: the happy path, the image record, and every "bad input" case."""

import hashlib
import io
import re

import pytest
from django.core.files.storage import storages
from django.test import Client
from PIL import Image as PILImage

from accounts.models import Role
from common.text import display_filename
from jobs.models import Job, JobItem
from tests.factories import LabUnitFactory
from tests.foundation.conftest import GIF_BYTES, jpeg, png, stored_files, upload_file
from tests.images import jpeg_bytes
from uploads import services
from uploads.models import Image

pytestmark = pytest.mark.django_db


def items_of(job_id) -> list[JobItem]:
    return list(JobItem.objects.filter(job_id=job_id).order_by("position"))


def test_api_upload_stores_every_file_with_its_record(fresh_storages, uploader, upload_fields, api_upload, run_jobs):
    files = [jpeg("left eye.jpg", seed=1), png("right eye.png", seed=2)]
    with run_jobs():
        response = api_upload(uploader, upload_fields, files, HTTP_USER_AGENT="fundus-script/1.0")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] in {"queued", "processing", "done"} and body["total"] == 2 and body["rejected"] == 0
    assert body["status_url"].endswith(f"/api/upload-jobs/{body['job_id']}/status")
    assert body["processing_url"].endswith(f"/direct/upload/processing/{body['job_id']}")
    job = Job.objects.get(pk=body["job_id"])
    assert job.status == "done" and job.kind == "direct_upload" and job.created_by == uploader
    assert job.client_ip == "127.0.0.1" and job.user_agent == "fundus-script/1.0"

    images = {i.original_name: i for i in Image.objects.all()}
    assert set(images) == {"left eye.jpg", "right eye.png"}
    jpg = images["left eye.jpg"]
    assert jpg.md5 == hashlib.md5(jpeg_bytes(seed=1)).hexdigest()  # noqa: S324
    assert jpg.size == len(jpeg_bytes(seed=1))
    assert (jpg.mime, jpg.width, jpg.height) == ("image/jpeg", 512, 512)
    assert images["right eye.png"].mime == "image/png"
    assert jpg.hospital_id == int(upload_fields["hospital"]) and jpg.lab_unit_id == int(upload_fields["lab_unit"])
    assert jpg.camera_id == int(upload_fields["camera"])
    assert (jpg.disease.code, jpg.area.code, jpg.mydriatic) == ("DR", "left", False)
    assert jpg.uploaded_by == uploader and jpg.uploaded_at and jpg.source == "direct"
    assert jpg.client_ip == "127.0.0.1" and jpg.user_agent == "fundus-script/1.0"
    assert jpg.job_item.job_id == job.pk
    # Generated storage names, never the user's.
    assert "left" not in jpg.file.name and "eye" not in jpg.file.name
    assert re.fullmatch(r"\d{4}/\d{2}/[0-9a-f]{32}\.jpg", jpg.file.name)
    assert re.fullmatch(r"thumbs/\d{4}/\d{2}/[0-9a-f]{32}\.jpg", jpg.thumbnail.name)
    assert set(stored_files("default")) == {i.file.name for i in images.values()} | {
        i.thumbnail.name for i in images.values()
    }
    with storages["default"].open(jpg.thumbnail.name) as fh:
        assert max(PILImage.open(fh).size) == 320
    assert stored_files("staging") == []  # staged bytes are removed once stored
    uploader.refresh_from_db()
    assert uploader.upload_count == 2


def test_page_upload_redirects_to_processing_and_accepts_codes(uploader, upload_fields, lab_unit, camera, run_jobs):
    client = Client()
    client.force_login(uploader)
    fields = {
        **upload_fields,
        "hospital": lab_unit.hospital.code,
        "lab_unit": lab_unit.code,
        "camera": camera.code,
        "disease": "glaucoma",
        "area": "both",
        "mydriatic": "1",
    }
    with run_jobs():
        response = client.post("/direct/upload", {**fields, "files": [jpeg("a.jpg")]})
    job = Job.objects.get()
    assert response.status_code == 302 and response.url == f"/direct/upload/processing/{job.pk}"
    image = Image.objects.get()
    assert (image.disease.code, image.area.code, image.mydriatic) == ("GLAUCOMA", "both", True)


def test_upload_page_shows_the_form(uploader, lab_unit, camera):
    client = Client()
    client.force_login(uploader)
    page = client.get("/direct/upload").content.decode()
    assert f'name="hospital" id="hospital-{lab_unit.hospital_id}"' in page
    assert f'data-hospital="{lab_unit.hospital_id}"' in page
    for text in ("Choose Files", "Upload Images", "Non Mydriatic", camera.name, "Diabetic Retinopathy", "Left eye"):
        assert text in page


def test_each_bad_file_fails_alone_and_the_others_land(
    fresh_storages, uploader, upload_fields, api_upload, run_jobs, settings
):
    settings.DIRECT_UPLOAD_MAX_FILE_SIZE_MB = 1
    good = jpeg("good.jpg", seed=10)
    truncated_bytes = jpeg_bytes(seed=11)
    files = [
        good,
        upload_file("big.jpg", jpeg_bytes(seed=12, width=1600, height=1600, quality=100), "image/jpeg"),
        upload_file("anim.gif", GIF_BYTES, "image/gif"),
        upload_file("notes.jpg", b"plain text notes about the visit\n" * 10, "image/jpeg"),
        upload_file("half.jpg", truncated_bytes[: len(truncated_bytes) // 2], "image/jpeg"),
        upload_file("empty.png", b"", "image/png"),
        jpeg("good2.jpg", seed=13),
    ]
    assert files[1].size > 1024 * 1024
    with run_jobs():
        response = api_upload(uploader, upload_fields, files)
    assert response.status_code == 202
    assert response.json()["rejected"] == 4  # refused in the request: size, type, type, empty
    items = {i.filename: i for i in items_of(response.json()["job_id"])}
    assert {n: (i.status, i.error) for n, i in items.items()} == {
        "good.jpg": ("completed", ""),
        "big.jpg": ("error", "File too large (max 1MB)"),
        "anim.gif": ("error", "Invalid file type: image/gif. Only JPG/PNG allowed."),
        "notes.jpg": ("error", "Invalid file type: text/plain. Only JPG/PNG allowed."),
        "half.jpg": (
            "error",
            "Corrupt or truncated image: it could not be decoded completely. Only complete JPG/PNG files are accepted.",
        ),
        "empty.png": ("error", "Invalid file type: application/x-empty. Only JPG/PNG allowed."),
        "good2.jpg": ("completed", ""),
    }
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.status == "error" and job.error == "One or more files failed"
    # Nothing of a refused file stays: no row, no stored file, no staged bytes.
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["good.jpg", "good2.jpg"]
    assert len(stored_files("default")) == 4  # two images and their thumbnails
    assert stored_files("staging") == [] and stored_files("duplicates") == []
    uploader.refresh_from_db()
    assert uploader.upload_count == 2  # the truncated file's reserved unit was given back


def test_missing_fields_say_all_fields_are_required_and_create_no_job(uploader, upload_fields, api_upload):
    client = Client()
    client.force_login(uploader)
    for missing in ("hospital", "lab_unit", "camera", "disease", "area"):
        fields = {k: v for k, v in upload_fields.items() if k != missing}
        response = api_upload(uploader, fields, [jpeg("a.jpg")])
        assert response.status_code == 400 and response.json() == {"detail": "All fields are required"}, missing
        page = client.post("/direct/upload", {**fields, missing: "", "files": [jpeg("a.jpg")]})
        assert page.status_code == 400 and "All fields are required" in page.content.decode()
        as_json = client.post("/direct/upload", {**fields, "files": [jpeg("a.jpg")]}, HTTP_ACCEPT="application/json")
        assert as_json.status_code == 400 and as_json.json() == {"detail": "All fields are required"}
    assert Job.objects.count() == 0 and Image.objects.count() == 0


def test_no_file_says_no_selected_file(uploader, upload_fields, api_upload):
    response = api_upload(uploader, upload_fields, [])
    assert response.status_code == 400 and response.json() == {"detail": "No selected file"}
    assert Job.objects.count() == 0


def test_lab_unit_outside_scope_is_refused(uploader, upload_fields, other_lab_unit, api_upload):
    fields = {**upload_fields, "hospital": str(other_lab_unit.hospital_id), "lab_unit": str(other_lab_unit.pk)}
    response = api_upload(uploader, fields, [jpeg("a.jpg")])
    assert response.status_code == 403
    assert response.json() == {"detail": "You don't have access to the selected lab unit"}
    client = Client()
    client.force_login(uploader)
    page = client.post("/direct/upload", {**fields, "files": [jpeg("a.jpg")]})
    assert page.status_code == 403
    assert "You don&#x27;t have access to the selected lab unit" in page.content.decode()
    assert Job.objects.count() == 0 and Image.objects.count() == 0


def test_lab_unit_of_another_hospital_is_refused(make_user, lab_unit, other_lab_unit, upload_fields, api_upload):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit, other_lab_unit])
    fields = {**upload_fields, "hospital": str(lab_unit.hospital_id), "lab_unit": str(other_lab_unit.pk)}
    response = api_upload(user, fields, [jpeg("a.jpg")])
    assert response.status_code == 400
    assert response.json() == {"detail": "The selected lab unit does not belong to the selected hospital."}
    assert Job.objects.count() == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("camera", "999999", "Unknown camera: '999999'. See /api/reference/ for the values you may use."),
        ("disease", "cataract", "Unknown disease: 'cataract'. See /api/reference/ for the values you may use."),
        ("area", "９", "Unknown area: '９'. See /api/reference/ for the values you may use."),
        ("lab_unit", "9" * 40, "Unknown lab unit: '" + "9" * 40 + "'. See /api/reference/ for the values you may use."),
    ],
)
def test_unknown_reference_values_are_named(uploader, upload_fields, api_upload, field, value, message):
    response = api_upload(uploader, {**upload_fields, field: value}, [jpeg("a.jpg")])
    assert response.status_code == 400 and response.json() == {"detail": message}
    assert Job.objects.count() == 0


def test_roles_without_upload_rights_are_refused(make_user, lab_unit, upload_fields, api_upload):
    grader = make_user(Role.RESIDENT, lab_units=[lab_unit])
    response = api_upload(grader, upload_fields, [jpeg("a.jpg")])
    assert response.status_code == 403 and Job.objects.count() == 0
    client = Client()
    client.force_login(grader)
    assert "does not allow uploading" in client.get("/direct/upload").content.decode()


def test_too_many_files_in_one_request(fresh_storages, uploader, upload_fields, api_upload, run_jobs, settings):
    settings.DIRECT_UPLOAD_MAX_FILES = 2
    with run_jobs():
        response = api_upload(uploader, upload_fields, [jpeg(f"{n}.jpg", seed=n) for n in range(3)])
    items = items_of(response.json()["job_id"])
    assert [i.status for i in items] == ["completed", "completed", "error"]
    assert items[2].error == (
        "Too many files in one upload (max 2 per upload). This file was not sent; upload it again separately."
    )
    assert stored_files("staging") == []


def test_a_request_beyond_the_servers_file_limit_is_refused_with_a_message(
    uploader, upload_fields, api_upload, settings
):
    """Django refuses such a body before the view runs: the answer is still JSON saying what the limit is."""
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    settings.DIRECT_UPLOAD_MAX_FILES = 2
    response = api_upload(uploader, upload_fields, [upload_file(f"{n}.jpg", b"x") for n in range(4)])
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Too many files in one request (max 3). Send them in several requests of at most 2 images each."
    )
    assert Job.objects.count() == 0


def test_quota_stops_files_beyond_it(fresh_storages, make_user, lab_unit, upload_fields, api_upload, run_jobs):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit], upload_quota=3)
    with run_jobs():
        first = api_upload(user, upload_fields, [jpeg("1.jpg", seed=1), jpeg("2.jpg", seed=2)])
        second = api_upload(user, upload_fields, [jpeg("3.jpg", seed=3), jpeg("4.jpg", seed=4), jpeg("5.jpg", seed=5)])
    assert [i.status for i in items_of(first.json()["job_id"])] == ["completed", "completed"]
    items = items_of(second.json()["job_id"])
    assert [(i.status, i.error) for i in items] == [
        ("completed", ""),
        ("error", "Upload quota exceeded"),
        ("error", "Upload quota exceeded"),
    ]
    user.refresh_from_db()
    assert user.upload_count == 3 and Image.objects.count() == 3
    assert stored_files("staging") == []
    with run_jobs():
        third = api_upload(user, upload_fields, [jpeg("6.jpg", seed=6)])
    assert items_of(third.json()["job_id"])[0].error == "Upload quota exceeded"
    assert Job.objects.get(pk=third.json()["job_id"]).status == "error"


def test_quota_zero_is_unlimited_and_refused_files_do_not_count(
    make_user, lab_unit, upload_fields, api_upload, run_jobs, settings
):
    settings.DIRECT_UPLOAD_LIFETIME_QUOTA = 1
    unlimited = make_user(Role.UPLOADER, lab_units=[lab_unit], upload_quota=0)
    with run_jobs():
        api_upload(unlimited, upload_fields, [jpeg(f"{n}.jpg", seed=n) for n in range(3)])
    assert Image.objects.filter(uploaded_by=unlimited).count() == 3
    limited = make_user(Role.UPLOADER, lab_units=[lab_unit])  # the site default: 1
    with run_jobs():
        api_upload(limited, upload_fields, [upload_file("x.gif", GIF_BYTES), jpeg("ok.jpg", seed=50)])
    assert Image.objects.filter(uploaded_by=limited).count() == 1


def test_duplicate_bytes_are_refused_and_kept_for_audit(fresh_storages, uploader, upload_fields, api_upload, run_jobs):
    data = jpeg_bytes(seed=77)
    with run_jobs():
        api_upload(uploader, upload_fields, [upload_file("first.jpg", data)])
    stored = stored_files("default")
    with run_jobs():
        again = api_upload(uploader, upload_fields, [upload_file("again.jpg", data), jpeg("new.jpg", seed=78)])
    items = items_of(again.json()["job_id"])
    assert [(i.filename, i.status, i.error) for i in items] == [
        ("again.jpg", "error", "Duplicate file"),
        ("new.jpg", "completed", ""),
    ]
    assert Image.objects.filter(md5=hashlib.md5(data).hexdigest()).count() == 1  # noqa: S324
    assert set(stored) < set(stored_files("default")) and len(stored_files("default")) == 4
    audit = stored_files("duplicates")
    assert len(audit) == 1 and audit[0].startswith(hashlib.md5(data).hexdigest() + "/")  # noqa: S324
    with storages["duplicates"].open(audit[0]) as fh:
        assert fh.read() == data
    assert stored_files("staging") == []
    uploader.refresh_from_db()
    assert uploader.upload_count == 2


def test_the_same_bytes_twice_in_one_request(fresh_storages, uploader, upload_fields, api_upload, run_jobs):
    data = jpeg_bytes(seed=80)
    with run_jobs():
        response = api_upload(uploader, upload_fields, [upload_file("a.jpg", data), upload_file("b.jpg", data)])
    assert [(i.status, i.error) for i in items_of(response.json()["job_id"])] == [
        ("completed", ""),
        ("error", "Duplicate file"),
    ]
    assert Image.objects.count() == 1


NASTY_NAMES = {
    "../../etc/passwd.jpg": "passwd.jpg",
    "C:\\Users\\doc\\scan.jpg": "scan.jpg",
    "dir/sub/..": "unnamed",
    "bell\x07\x00tab\t.jpg": "belltab.jpg",
    "<img src=x onerror=alert(1)>.jpg": "<img src=x onerror=alert(1)>.jpg",
    "眼底 写真 😀.jpg": "眼底 写真 😀.jpg",
    "e\u0301.jpg": "\u00e9.jpg",  # NFC
    "photo\u202egpj.exe": "photogpj.exe",  # a right-to-left override would disguise the extension
    "..hidden.jpg": "hidden.jpg",
}


@pytest.mark.parametrize(("raw", "expected"), NASTY_NAMES.items())
def test_display_filename(raw, expected):
    assert display_filename(raw) == expected


def test_display_filename_bounds_long_names_and_keeps_the_extension():
    name = display_filename("a" * 300 + ".jpeg")
    assert len(name) == 200 and name.endswith("….jpeg")
    assert len(display_filename("b" * 300)) == 200


def test_nasty_file_names_are_stored_safely_and_shown_escaped(
    fresh_storages, uploader, upload_fields, api_upload, run_jobs
):
    names = [
        "../../etc/passwd.jpg",
        "x\\..\\..\\win.jpg",
        "<img src=x onerror=alert(1)>.jpg",
        "<b>bold</b>.gif",
        "眼底 写真 😀.jpg",
        "n" * 260 + ".jpg",
    ]
    files = [jpeg(n, seed=i) for i, n in enumerate(names)]
    files[3] = upload_file(names[3], GIF_BYTES)
    with run_jobs():
        response = api_upload(uploader, upload_fields, files)
    job_id = response.json()["job_id"]
    stored = [i.filename for i in items_of(job_id)]
    assert stored[0] == "passwd.jpg" and stored[1] == "win.jpg"
    assert stored[2] == "<img src=x onerror=alert(1)>.jpg"
    assert stored[4] == "眼底 写真 😀.jpg"
    assert len(stored[5]) <= 200 and stored[5].endswith(".jpg")
    assert all("/" not in name and "\\" not in name and ".." not in name for name in stored)
    for image in Image.objects.all():
        assert re.fullmatch(r"\d{4}/\d{2}/[0-9a-f]{32}\.jpg", image.file.name)
    assert all(re.fullmatch(r"[0-9a-z/._]+", f) for f in stored_files("default"))

    client = Client()
    client.force_login(uploader)
    for path in (f"/direct/upload/processing/{job_id}", f"/direct/upload/results/{job_id}", "/jobs"):
        html = client.get(path).content.decode()
        assert "<img src=x" not in html and "<b>bold" not in html, path
    results = client.get(f"/direct/upload/results/{job_id}").content.decode()
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in results
    assert "眼底 写真 😀.jpg" in results
    status = client.get(f"/api/upload-jobs/{job_id}/status").json()
    assert status["items"][2]["filename"] == "<img src=x onerror=alert(1)>.jpg"  # JSON carries text; pages escape it


def test_service_sanitises_names_it_is_given(fresh_storages, uploader, lab_unit, camera, run_jobs):
    """Scripts and other apps call the service directly, with whatever names they have."""

    class RawUpload(io.BytesIO):
        def __init__(self, name, data):
            super().__init__(data)
            self.name = name
            self.size = len(data)

    target = services.resolve_target(
        user=uploader,
        data={
            "hospital": lab_unit.hospital_id,
            "lab_unit": lab_unit.pk,
            "camera": camera.pk,
            "disease": "DR",
            "area": "left",
        },
    )
    with run_jobs():
        job = services.image_upload_create(
            user=uploader,
            target=target,
            files=[RawUpload("../a\x00b\u202e.jpg", jpeg_bytes(seed=3)), RawUpload("..", jpeg_bytes(seed=4))],
            client_ip=None,
            user_agent="",
        )
    assert [i.filename for i in items_of(job.pk)] == ["ab.jpg", "unnamed"]
    assert sorted(Image.objects.values_list("original_name", flat=True)) == ["ab.jpg", "unnamed"]


def test_client_refused_files_are_recorded_with_the_job(uploader, upload_fields, run_jobs):
    client = Client()
    client.force_login(uploader)
    rejected = '[{"filename": "scan.tiff", "reason": "Invalid file type: image/tiff. Only JPG/PNG allowed."}, "junk"]'
    with run_jobs():
        response = client.post(
            "/direct/upload",
            {**upload_fields, "files": [jpeg("ok.jpg")], "client_rejected": rejected},
            HTTP_ACCEPT="application/json",
        )
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.rejected_count == 1 and job.status == "error"
    assert [(i.filename, i.status, i.error) for i in items_of(job.pk)] == [
        ("ok.jpg", "completed", ""),
        ("scan.tiff", "error", "Invalid file type: image/tiff. Only JPG/PNG allowed."),
    ]
    recent = client.get("/jobs").content.decode()
    assert 'class="text-danger fw-semibold">1</span>' in recent


def test_only_client_refused_files_still_make_a_job(uploader, upload_fields):
    client = Client()
    client.force_login(uploader)
    rejected = '[{"filename": "big.jpg", "reason": "File too large (max 5MB)"}]'
    response = client.post("/direct/upload", {**upload_fields, "client_rejected": rejected})
    job = Job.objects.get()
    assert response.status_code == 302 and job.status == "error" and job.rejected_count == 1


@pytest.mark.parametrize(
    ("proxies", "forwarded", "remote", "expected"),
    [
        (0, "6.6.6.6", "10.0.0.5", "10.0.0.5"),  # no proxy trusted: a client-sent header is ignored
        (1, "6.6.6.6, 203.0.113.9", "10.0.0.1", "203.0.113.9"),  # the address our proxy saw
        (2, "6.6.6.6, 203.0.113.9, 10.0.0.2", "10.0.0.1", "203.0.113.9"),
        (1, "not-an-ip", "10.0.0.1", "10.0.0.1"),
        (2, "203.0.113.9", "10.0.0.1", "10.0.0.1"),  # fewer hops than proxies: header not trusted
    ],
)
def test_client_ip_is_trusted_proxy_aware(
    settings, uploader, upload_fields, api_upload, run_jobs, proxies, forwarded, remote, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    with run_jobs():
        response = api_upload(
            uploader, upload_fields, [jpeg("a.jpg")], HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR=remote
        )
    job = Job.objects.get(pk=response.json()["job_id"])
    assert job.client_ip == expected
    assert Image.objects.get().client_ip == expected


def test_lab_units_of_other_hospitals_are_not_offered(make_user, lab_unit):
    sibling = LabUnitFactory(hospital=lab_unit.hospital)
    elsewhere = LabUnitFactory()
    user = make_user(Role.UPLOADER, lab_units=[lab_unit, sibling])
    client = Client()
    client.force_login(user)
    page = client.get("/direct/upload").content.decode()
    assert sibling.name in page and lab_unit.name in page and elsewhere.name not in page
    assert elsewhere.hospital.name not in page
