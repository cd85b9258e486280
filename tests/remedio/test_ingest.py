"""The whole ingestion: archives uploaded through the API, one job item per archive run through the job engine, what
each item's result lists, hostile archives refused or contained, reports that cannot be read, pseudonymous patients."""

import io
import json
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from PIL import Image as PILImage

from accounts.models import Role
from grading.models import GradingTask
from jobs.models import JobItem
from remedio import archive as safe_zip
from remedio import identity, reports
from remedio.models import AIResult, Archive, Encounter, EncounterImage, MaskState, Patient, Report
from remedio.services import ingest
from tests.factories import LabUnitFactory
from tests.images import exif_with
from tests.remedio import export
from tests.remedio.conftest import stored_files, zip_file
from uploads.models import GradingStatus, Image

NAME = "Asha Rani Verma"
PATIENT_ID = "MRN20417"


def text_report(**spec) -> dict:
    """A report entry with a real text layer (no OCR: fast), for tests about something else than OCR."""
    return {"rasterised": False, "spec": export.ReportSpec(name=NAME, patient_id=PATIENT_ID, **spec)}


def item(status: dict, index: int = 0) -> dict:
    return status["items"][index]


# --- A good export, end to end ------------------------------------------------------------------------------------


@pytest.fixture
def multi_export() -> bytes:
    """Two visits of two patients (one FOP/, one flat PRISTINE folder), one rasterised report read by OCR, a photograph
    with burnt-in text and EXIF, macOS junk, a stray text file and a photograph outside any patient folder."""
    first = export.EncounterSpec(
        name=NAME,
        patient_id=PATIENT_ID,
        images=[
            {"disc_side": "right", "exif": exif_with(Make="Remidio", Model="FOP NM-10")},
            {"disc_side": "left", "band_text": f"{NAME} {PATIENT_ID} 01-02-2024"},
        ],
        reports=[{"spec": export.ReportSpec(name=NAME, patient_id=PATIENT_ID, dr="dr+", glaucoma="glaucoma+")}],
    )
    second = export.EncounterSpec(
        name="Ravi Kumar", patient_id="MRN20418", flat=True, seed=7, images=[{"disc_side": "left"}], reports=[]
    )
    return export.export_zip(
        [first, second],
        junk=True,
        extra=[
            (f"{first.folder}/notes.txt", b"free text"),
            ("loose/10.00.00.000_AM.jpg", export.fundus_jpeg(seed=99)),
        ],
    )


def test_archive_becomes_encounters_awaiting_verification(upload, zip_uploader, multi_export, client, tesseract):
    status = upload(zip_uploader, ("MRN20417_01-02-2024_10.02.16.099_AM.zip", multi_export))
    assert status["status"] == "done" and status["completed"] == 1
    result = item(status)["result"]
    assert item(status)["status"] == JobItem.Status.COMPLETED and item(status)["error"] is None
    assert result["encounters_created"] == 2
    assert result["images_created"] == 3
    assert result["reports_created"] == 1
    assert result["summary"] == (
        "2 encounters imported (3 photographs, 1 report), awaiting verification; 2 entries skipped."
    )
    skipped = {entry["name"]: entry["reason"] for entry in result["skipped"]}
    first_pseudonym = identity.pseudonym_for(identity.patient_key(hospital_id=zip_uploader.lab_units.first().hospital_id,
                                                                   patient_id=PATIENT_ID))  # fmt: skip
    assert skipped == {
        f"{first_pseudonym}_01-02-2024/notes.txt": safe_zip.SKIP_UNSUPPORTED.format(ext=".txt"),
        "loose/10.00.00.000_AM.jpg": ingest.layout.NOT_IN_FOLDER,
    }  # junk (__MACOSX, .DS_Store, ._*, Thumbs.db) skipped silently; the patient folder shown by pseudonym

    encounters = {e.patient.patient_id_encrypted and identity.decrypt(e.patient.patient_id_encrypted): e
                  for e in Encounter.objects.select_related("patient")}  # fmt: skip
    assert set(encounters) == {PATIENT_ID, "MRN20418"}
    first = encounters[PATIENT_ID]
    assert first.status == Encounter.Status.AWAITING and str(first.capture_date) == "2024-02-01"
    assert first.archive.status == Archive.Status.COMPLETE and first.archive.job_id is not None
    assert [e["id"] for e in result["encounters"]] == [first.pk, encounters["MRN20418"].pk]
    assert result["encounters"][0] == {
        "id": first.pk,
        "pseudonym": first.patient.pseudonym,
        "capture_date": "2024-02-01",
        "images": 2,
        "reports": 1,
        "needs_manual_entry": False,
    }

    # The report, read by OCR, recorded as AI results of "Medios AI" on the encounter.
    report = first.reports.get()
    assert report.extraction == Report.Extraction.OCR and report.status == Report.Status.PARSED
    assert (report.dr_result, report.dr_referable) == ("Signs of DR detected", True)
    assert (report.glaucoma_result, report.glaucoma_referable) == ("Referable Glaucoma - Referral suggested", True)
    assert (str(report.vcdr_od), str(report.vcdr_os)) == ("0.45", "0.52")
    assert "Result DR" in identity.decrypt(report.raw_text_encrypted)
    results = {r.target: r for r in AIResult.objects.filter(encounter=first)}
    assert set(results) == {AIResult.Target.DR, AIResult.Target.GLAUCOMA}
    assert all(r.model_name == "Medios AI" and r.source == AIResult.Source.REPORT for r in results.values())

    # Photographs: stored without EXIF, out of grading until verified, laterality suggested, band masked.
    links = list(first.images.select_related("image").order_by("position"))
    assert [link.laterality_suggestion for link in links] == ["right", "left"]
    assert all(link.laterality == "" and link.field == "" and link.gradable is None for link in links)
    for link in links:
        image = link.image
        assert image.source == Image.Source.ZIP
        assert image.grading_status == GradingStatus.NOT_QUEUED and not GradingTask.objects.filter(image=image).exists()
        with image.file.open("rb") as fh:
            stored = PILImage.open(io.BytesIO(fh.read()))
            assert not stored.getexif() and "exif" not in stored.info
    plain, banded = links
    assert plain.mask_state == MaskState.NONE and not plain.original_name
    assert banded.mask_state == MaskState.SUGGESTED and banded.mask_boxes and banded.original_name
    assert banded.original_name in stored_files("restricted")
    assert first.notes == [export_note(banded.entry_name)]

    second = encounters["MRN20418"]
    assert second.notes == [ingest.NOTE_NO_REPORT] and second.images.count() == 1

    # The results page shows the item's result: summary and every skipped entry with its reason.
    client.force_login(zip_uploader)
    page = client.get(f"/direct/upload/results/{status['job_id']}").content.decode()
    assert result["summary"] in page
    assert "notes.txt" in page and "Not a fundus photograph (JPG/PNG) or report (PDF)" in page
    assert "Not inside a patient folder" in page
    processing = client.get(f"/direct/upload/processing/{status['job_id']}").content.decode()
    assert result["summary"] in processing and "Not inside a patient folder" in processing
    assert f"{first.patient.pseudonym}_01-02-2024_10.02.16.099_AM.zip" in page  # the archive's name, by pseudonym
    assert NAME not in page and PATIENT_ID not in page


def export_note(entry_name: str) -> str:
    return ingest.NOTE_MASKED.format(name=entry_name)


def test_the_processing_page_and_status_show_the_item(upload, zip_uploader, one_encounter_zip, client):
    status = upload(zip_uploader, one_encounter_zip)
    client.force_login(zip_uploader)
    page = client.get(f"/direct/upload/processing/{status['job_id']}")
    pseudonym = status["items"][0]["result"]["encounters"][0]["pseudonym"]
    assert status["items"][0]["filename"] == f"{pseudonym}_01-02-2024_10.02.16.099_AM.zip"
    assert page.status_code == 200 and status["items"][0]["filename"] in page.content.decode()
    assert status["items"][0]["result"]["summary"] in page.content.decode()  # what the archive gave, as it lands
    document = client.get(f"/api/upload-jobs/{status['job_id']}/status").json()
    assert document["items"][0]["result"]["encounters_created"] == 1
    assert document["items"][0]["result"]["skipped"] == []


# --- Whole-archive checks at upload -------------------------------------------------------------------------------


def test_duplicate_archive_is_refused(upload, zip_uploader, one_encounter_zip):
    status = upload(zip_uploader, one_encounter_zip, one_encounter_zip)
    assert [i["status"] for i in status["items"]] == ["completed", "error"]
    assert item(status, 1)["error"] == "Duplicate file"
    again = upload(zip_uploader, ("renamed.zip", one_encounter_zip))
    assert item(again)["error"] == "Duplicate file"
    assert Encounter.objects.count() == 1 and Archive.objects.count() == 1


def test_duplicate_claimed_by_the_worker(zip_uploader, one_encounter_zip, upload):
    """Two items of the same archive that both passed the upload check (sent at the same moment): the worker's claim
    of the MD5 makes the second one a duplicate too."""
    upload(zip_uploader, one_encounter_zip)
    first_item = JobItem.objects.get()
    with pytest.raises(ingest.ItemRejected) as caught:
        ingest._archive_claim(item=JobItem(pk=first_item.pk + 1000, job=first_item.job), md5=Archive.objects.get().md5, size=1)
    assert caught.value.message == "Duplicate file"


def test_non_zip_named_zip_and_limits(upload, zip_uploader, settings, one_encounter_zip):
    settings.PER_FILE_MAX_BYTES = 200_000
    settings.MAX_FILES_PER_UPLOAD = 2
    big = b"PK\x03\x04" + bytes(300_000)
    status = upload(
        zip_uploader,
        ("photo.zip", export.fundus_jpeg(seed=1)),
        ("big.zip", big),
        ("third.zip", one_encounter_zip),
    )
    errors = [i["error"] for i in status["items"]]
    assert errors[0] == "Invalid file type: image/jpeg. Only ZIP archives (.zip) are allowed."
    assert errors[1] == "File too large (max 195.3KB)"
    assert errors[2].startswith("Too many files in one upload (max 2 per upload)")
    assert not stored_files("staging") and Archive.objects.count() == 0


def test_uploads_need_the_zip_role(api_client, make_user, lab_unit, zip_fields, one_encounter_zip):
    grader = make_user(Role.RESIDENT, lab_units=[lab_unit])
    api_client.force_authenticate(grader)
    response = api_client.post("/api/zip/upload", {**zip_fields, "files": [zip_file(one_encounter_zip)]}, format="multipart")
    assert response.status_code == 403


# --- Hostile archives ---------------------------------------------------------------------------------------------

REFUSED = {
    "traversal": "points outside the archive",
    "traversal_backslash": "points outside the archive",
    "absolute": "has an absolute path",
    "absolute_drive": "has an absolute path",
    "symlink": "is a symbolic link",
    "encrypted": "is encrypted (password-protected)",
    "corrupt": "Corrupt or truncated ZIP archive",
    "truncated": "Corrupt or truncated ZIP archive",
    "crc": "Corrupt or truncated ZIP archive",
    "size_lie": "Corrupt or truncated ZIP archive",
    "bomb_ratio": "the signature of an archive bomb",
    "bomb_size": "expands to more than 2MB when unpacked",
    "bomb_entries": "entries (max 200 per archive)",
    "unsupported_method": "unsupported compression method",
}


def _everything_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def small_caps(settings, request):
    settings.REMEDIO_MAX_ENTRIES = 200
    ratio_test = "bomb_ratio" in request.node.name  # 20 MB of zeros: the ratio, not the total, must refuse it
    settings.REMEDIO_MAX_UNCOMPRESSED_BYTES = (64 if ratio_test else 2) * 1024 * 1024
    settings.REMEDIO_MAX_ENTRY_BYTES = 32 * 1024 * 1024
    settings.REMEDIO_MAX_COMPRESSION_RATIO = 100


@pytest.fixture
def neighbour_zip() -> bytes:
    """A good archive sent in the same upload as a hostile one."""
    return export.export_zip([export.EncounterSpec(name="Other Person", patient_id="OTHER7", seed=50,
                                                   reports=[{"rasterised": False}])])  # fmt: skip


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_hostile_archive_is_refused_whole(
    kind, upload, zip_uploader, small_caps, neighbour_zip, storage_snapshot, tmp_path, monkeypatch
):
    data_dir = Path(django_settings.DATA_DIR)
    tmp = tmp_path / "tmp"  # the ingestion's scratch folders are made here, so leftovers can be seen
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    before_data = _everything_under(data_dir)
    before = storage_snapshot()

    status = upload(zip_uploader, (f"{kind}.zip", export.hostile(kind)), ("neighbour.zip", neighbour_zip))

    hostile_item, neighbour = status["items"]
    assert hostile_item["status"] == JobItem.Status.ERROR
    assert REFUSED[kind] in hostile_item["error"] and "Nothing was stored" in hostile_item["error"]
    assert hostile_item["result"]["encounters_created"] == 0
    assert hostile_item["result"]["summary"] == "Archive refused: nothing was stored."
    assert "Test_Patient" not in hostile_item["error"]  # a patient folder is never named in a message
    # The other archive of the upload is imported as if alone.
    assert neighbour["status"] == JobItem.Status.COMPLETED and neighbour["result"]["encounters_created"] == 1
    # No partial encounter, patient, image or report of the refused archive.
    assert Archive.objects.count() == 1
    assert list(Patient.objects.values_list("pseudonym", flat=True)) == [neighbour["result"]["encounters"][0]["pseudonym"]]
    assert Image.objects.count() == 2 and Report.objects.count() == 1
    # Files: only the neighbour's; nothing staged left; nothing written outside the storage areas or left in scratch.
    after = storage_snapshot()
    images = set(Image.objects.values_list("file", flat=True)) | set(Image.objects.values_list("thumbnail", flat=True))
    assert set(after["default"]) - set(before["default"]) == images
    assert set(after["restricted"]) - set(before["restricted"]) == set(Report.objects.values_list("file_name", flat=True))
    assert after["staging"] == []
    files_root = Path(django_settings.MEDIA_ROOT).relative_to(data_dir)
    new_outside = {p for p in _everything_under(data_dir) - before_data if not p.startswith(str(files_root))}
    assert not {p for p in new_outside if not p.startswith("worker-")}
    assert list(tmp.iterdir()) == []  # every scratch folder removed
    assert not list(tmp_path.rglob("evil.jpg")) and not (tmp_path.parent / "evil.jpg").exists()
    assert not list(data_dir.rglob("evil.jpg"))


@pytest.mark.parametrize(
    ("kind", "reasons"),
    [
        ("nested", ["Archive inside the archive (a .zip file): not opened. Upload it as a separate ZIP file."]),
        ("nested_disguised", ["Archive inside the archive (a ZIP archive): not opened. Upload it as a separate ZIP file."]),
        (
            "mismatch",
            [
                "Content does not match the extension: the file is application/x-dosexec, not image/jpeg.",
                "Content does not match the extension: the file is image/jpeg, not application/pdf.",
            ],
        ),
    ],
)
def test_bad_entries_are_contained(kind, reasons, upload, zip_uploader, storage_snapshot):
    status = upload(zip_uploader, export.hostile(kind))
    result = item(status)["result"]
    assert item(status)["status"] == JobItem.Status.COMPLETED
    assert sorted(s["reason"] for s in result["skipped"]) == sorted(reasons)
    assert all(s["name"].startswith("P-") for s in result["skipped"])  # by pseudonym, never by name
    assert result["encounters_created"] == 1 and result["images_created"] == 2 and result["reports_created"] == 1
    assert not Patient.objects.exclude(pk=Encounter.objects.get().patient_id).exists()  # nested patients not imported
    assert storage_snapshot()["staging"] == []


def test_archive_without_patient_folder_is_refused(upload, zip_uploader):
    data = export.export_zip([], extra=[("photos/1.00.00.000_AM.jpg", export.fundus_jpeg(seed=3))])
    status = upload(zip_uploader, data)
    assert item(status)["error"] == ingest.MSG_NO_ENCOUNTER
    assert item(status)["result"]["skipped"][0]["reason"] == ingest.layout.NOT_IN_FOLDER
    assert not Archive.objects.exists() and not Patient.objects.exists()


def test_failure_mid_way_leaves_nothing(upload, zip_uploader, monkeypatch, storage_snapshot, neighbour_zip):
    """A storage or database error after some encounters were stored: the item fails and its archive is purged."""
    two = export.export_zip([export.EncounterSpec(reports=[{"rasterised": False}]),
                             export.EncounterSpec(patient_id="B2", seed=4, reports=[{"rasterised": False}])])  # fmt: skip
    real = ingest._store_image
    calls = []

    def failing(run, encounter, *args, **kwargs):
        calls.append(encounter.pk)
        if run.item.filename == "two.zip" and len(set(calls)) == 2:  # the second encounter of every attempt
            calls.clear()
            raise OSError("disk full")
        return real(run, encounter, *args, **kwargs)

    monkeypatch.setattr(ingest, "_store_image", failing)
    before = storage_snapshot()
    status = upload(zip_uploader, ("two.zip", two), ("neighbour.zip", neighbour_zip))
    assert item(status)["status"] == JobItem.Status.ERROR
    assert item(status, 1)["status"] == JobItem.Status.COMPLETED
    assert Archive.objects.count() == 1 and Encounter.objects.count() == 1
    assert Patient.objects.count() == 1 and Image.objects.count() == 2
    after = storage_snapshot()
    assert len(set(after["default"]) - set(before["default"])) == 4 and after["staging"] == []


# --- Reports that cannot be read ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        ({"data": export.corrupt_pdf()}, reports.MSG_CORRUPT),
        ({"rasterised": False, "password": "s3cret"}, reports.MSG_ENCRYPTED),
    ],
    ids=["corrupt", "encrypted"],
)
def test_unreadable_report_keeps_the_encounter_flagged(report, reason, upload, zip_uploader):
    data = export.export_zip([export.EncounterSpec(reports=[report])])
    status = upload(zip_uploader, data)
    result = item(status)["result"]
    assert item(status)["status"] == JobItem.Status.COMPLETED
    assert result["encounters"][0]["needs_manual_entry"] is True
    assert result["summary"].endswith("awaiting verification; 1 report to enter by hand.")
    encounter = Encounter.objects.get()
    assert encounter.needs_manual_entry and encounter.images.count() == 2
    stored = encounter.reports.get()
    assert stored.status == Report.Status.MANUAL_ENTRY and stored.status_reason == reason
    assert stored.file_name in stored_files("restricted")  # kept for the person entering the results
    assert not AIResult.objects.exists()  # nothing is recorded as read from it
    assert any(reason in note for note in encounter.notes)


# --- Pseudonymous patients ------------------------------------------------------------------------------------------


def test_pseudonym_is_stable_across_re_exports(upload, zip_uploader, make_user, camera):
    import datetime as dt

    visit = export.EncounterSpec(name=NAME, patient_id=PATIENT_ID, reports=[text_report()])
    later = export.EncounterSpec(name=NAME, patient_id="mrn 20417", date=dt.date(2024, 5, 9), seed=3, reports=[])
    first = upload(zip_uploader, export.export_zip([visit]))
    second = upload(zip_uploader, export.export_zip([later]))
    a, b = item(first)["result"]["encounters"][0], item(second)["result"]["encounters"][0]
    assert a["pseudonym"] == b["pseudonym"]
    assert Patient.objects.count() == 1 and Encounter.objects.count() == 2

    other_unit = LabUnitFactory()  # another hospital: the same ID is another patient
    manager = make_user(Role.UPLOADER, lab_units=[other_unit])
    fields = {"hospital": str(other_unit.hospital_id), "lab_unit": str(other_unit.pk), "camera": str(camera.pk)}
    third = upload(manager, export.export_zip([export.EncounterSpec(name=NAME, patient_id=PATIENT_ID, seed=9, reports=[])]),
                   fields=fields)  # fmt: skip
    assert item(third)["result"]["encounters"][0]["pseudonym"] != a["pseudonym"]


def _database_text() -> str:
    """Every text column of the ZIP ingestion and image tables, as stored."""
    chunks = []
    with connection.cursor() as cursor:
        for table in ("remedio_patient", "remedio_encounter", "remedio_report", "remedio_encounterimage",
                      "remedio_archive", "remedio_airesult", "uploads_image", "jobs_jobitem"):  # fmt: skip
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed table names
            chunks += [str(value) for row in cursor.fetchall() for value in row]
    return "\n".join(chunks)


def test_identifiers_encrypted_at_rest_and_out_of_files_and_exports(upload, zip_uploader, make_user, lab_unit, client):
    visit = export.EncounterSpec(
        name=NAME,
        patient_id=PATIENT_ID,
        images=[{"disc_side": "right", "band_text": f"{NAME} {PATIENT_ID}"}],
        reports=[text_report(age=61, sex="Female")],
    )
    upload(zip_uploader, (f"{PATIENT_ID}_01-02-2024_10.02.16.099_AM.zip", export.export_zip([visit])))
    stored = _database_text()
    for identifier in (NAME, "Asha", "Verma", PATIENT_ID, "Asha_Rani_Verma"):
        assert identifier not in stored
    patient = Patient.objects.get()
    assert identity.decrypt(patient.name_encrypted) == NAME
    assert identity.decrypt(patient.patient_id_encrypted) == PATIENT_ID
    assert identity.decrypt(patient.sex_encrypted) == "F"
    assert identity.decrypt(Encounter.objects.get().age_encrypted) == "61"
    for alias in ("default", "restricted", "staging"):
        for name in stored_files(alias):
            assert PATIENT_ID not in name and "Asha" not in name and "Verma" not in name

    # The image export (CSV) of an admin carries no identifier.
    admin = make_user(Role.ADMIN)
    client.force_login(admin)
    response = client.get("/images/export?format=csv")
    body = b"".join(response.streaming_content).decode()
    assert response.status_code == 200 and str(Image.objects.get().pk) in body
    assert PATIENT_ID not in body and "Asha" not in body


def test_masked_copy_is_what_graders_get(upload, zip_uploader):
    visit = export.EncounterSpec(images=[{"disc_side": "right", "band_text": "Test Patient MRN0001 01-02-2024"}], reports=[])
    upload(zip_uploader, export.export_zip([visit]))
    link = EncounterImage.objects.select_related("image").get()
    x0, y0, x1, y1 = link.mask_boxes[0]
    with link.image.file.open("rb") as fh:
        graded = PILImage.open(io.BytesIO(fh.read())).convert("L")
    from django.core.files.storage import storages

    with storages["restricted"].open(link.original_name, "rb") as fh:
        original = PILImage.open(io.BytesIO(fh.read())).convert("L")
    band = (x0, y0, x1, y1)
    assert graded.crop(band).getextrema()[1] < 60  # the text is gone from the graded copy
    assert original.crop(band).getextrema()[1] > 200  # and still in the original, for audit


# --- The upload page ------------------------------------------------------------------------------------------------


def test_upload_page(client, zip_uploader, zip_fields, one_encounter_zip, run_jobs):
    client.force_login(zip_uploader)
    page = client.get("/upload_files").content.decode()
    assert 'id="hospital-pills"' in page and 'name="lab_unit"' in page and 'name="camera"' in page
    assert "Upload &amp; Queue" in page and 'accept=".zip,' in page
    missing = client.post("/upload_files", {"hospital": zip_fields["hospital"]}, HTTP_ACCEPT="application/json")
    assert missing.status_code == 400 and missing.json()["detail"] == "All fields are required"
    with run_jobs():
        response = client.post(
            "/upload_files", {**zip_fields, "files": [zip_file(one_encounter_zip)]}, HTTP_ACCEPT="application/json"
        )
    assert response.status_code == 202
    assert response.json()["processing_url"] == f"/direct/upload/processing/{response.json()['job_id']}"
    assert Encounter.objects.count() == 1


def test_names_of_files_refused_in_the_browser_lose_the_patient_id(client, zip_uploader, zip_fields):
    client.force_login(zip_uploader)
    rejected = json.dumps([{"filename": f"{PATIENT_ID}_01-02-2024_10.02.16.099_AM.zip", "reason": "File too large"}])
    response = client.post("/upload_files", {**zip_fields, "client_rejected": rejected}, HTTP_ACCEPT="application/json")
    assert response.status_code == 202
    (stored,) = JobItem.objects.values_list("filename", flat=True)
    assert PATIENT_ID not in stored and stored.endswith("_01-02-2024_10.02.16.099_AM.zip") and stored.startswith("P-")
