import shutil

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Role
from tests.conftest import require
from tests.remedio import export


@pytest.fixture(autouse=True)
def empty_staging():
    """Start from an empty staging area: tests of other areas may leave staged files of jobs they never ran, and these
    tests assert that a refused archive leaves nothing staged behind."""
    for name in stored_files("staging"):
        storages["staging"].delete(name)


@pytest.fixture
def zip_uploader(make_user, lab_unit):
    return make_user(Role.UPLOADER, lab_units=[lab_unit])


@pytest.fixture
def zip_fields(lab_unit, camera):
    return {"hospital": str(lab_unit.hospital_id), "lab_unit": str(lab_unit.pk), "camera": str(camera.pk)}


def zip_file(data: bytes, name: str = "MRN0001_01-02-2024_10.02.16.099_AM.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


@pytest.fixture
def upload(api_client, zip_fields, run_jobs):
    """POST archives to /api/zip/upload as ``user`` and run the job inline; returns the status document."""

    def send(user, *archives: bytes | tuple[str, bytes], fields=None):
        api_client.force_authenticate(user)
        files = [zip_file(a) if isinstance(a, bytes) else zip_file(a[1], a[0]) for a in archives]
        with run_jobs():
            response = api_client.post(
                "/api/zip/upload", {**(fields or zip_fields), "files": files}, format="multipart"
            )
        assert response.status_code == 202, response.content
        status = api_client.get(f"/api/upload-jobs/{response.json()['job_id']}/status").json()
        return status

    return send


def stored_files(alias: str) -> list[str]:
    """Every file name in a storage area (walks the folders through the storage API)."""
    storage = storages[alias]
    out = []

    def walk(prefix: str) -> None:
        try:
            folders, files = storage.listdir(prefix)
        except FileNotFoundError:
            return
        out.extend(f"{prefix}/{name}".lstrip("/") for name in files)
        for folder in folders:
            walk(f"{prefix}/{folder}".lstrip("/"))

    walk("")
    return sorted(out)


@pytest.fixture
def storage_snapshot():
    """What the image, restricted and staging areas hold now, to compare after a refused upload."""

    def snap() -> dict[str, list[str]]:
        return {alias: stored_files(alias) for alias in ("default", "restricted", "staging")}

    return snap


@pytest.fixture
def one_encounter_zip():
    return export.export_zip([export.EncounterSpec(reports=[{"rasterised": False}])])  # a text layer: no OCR


@pytest.fixture
def tesseract():
    """OCR of rasterised reports needs the Tesseract program (scripts/system-deps.sh); CI has it."""
    require(shutil.which("tesseract") is not None, "needs Tesseract (scripts/system-deps.sh)")
