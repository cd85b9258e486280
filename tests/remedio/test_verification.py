"""Verification of ingested encounters: the list awaiting verification, the verification page and API (patient fields,
report results, laterality, field, gradability, masks), grading tasks through the grading service, undo, the encounter
API with identifiers only for data managers and admins, and the image page."""

import io
import json

import pytest
from django.core.files.storage import storages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image as PILImage

from accounts.models import Role
from grading.models import GradingTask
from remedio import identity
from remedio.models import AIResult, Encounter, EncounterImage, MaskState, Patient, Report
from remedio.services import verification
from tests.factories import LabUnitFactory
from tests.remedio import export
from tests.remedio.conftest import stored_files
from uploads.models import GradingStatus

NAME = "Meera Joshi"
PATIENT_ID = "MRN30551"


def visit(patient_id: str = PATIENT_ID, seed: int = 0, **kwargs) -> export.EncounterSpec:
    spec = export.ReportSpec(name=NAME, patient_id=patient_id, dr="dr+", glaucoma="glaucoma-", vcdr=("0.41", "0.38"))
    kwargs.setdefault(
        "images",
        [{"disc_side": "right"}, {"disc_side": "left", "band_text": f"{NAME} {patient_id} 01-02-2024"}],
    )
    return export.EncounterSpec(
        name=NAME, patient_id=patient_id, seed=seed, reports=[{"rasterised": False, "spec": spec}], **kwargs
    )


@pytest.fixture
def ingested(upload, zip_uploader):
    """Upload one archive per visit; returns (status document, encounters in upload order)."""

    def make(*visits):
        status = upload(zip_uploader, export.export_zip(list(visits or [visit()])))
        ids = [e["id"] for e in status["items"][0]["result"]["encounters"]]
        return status, [Encounter.objects.select_related("patient").get(pk=pk) for pk in ids]

    return make


@pytest.fixture
def encounter(ingested):
    return ingested()[1][0]


def links_of(encounter) -> list[EncounterImage]:
    return list(encounter.images.select_related("image").order_by("position"))


def form_for(encounter, **overrides) -> dict:
    """The verification form as a data manager submits it: right eye disc centred gradable, left macula ungradable."""
    plain, banded = links_of(encounter)
    report = encounter.reports.get()
    data = {
        f"lat-{plain.image_id}": "right",
        f"field-{plain.image_id}": "disc",
        f"gradable-{plain.image_id}": "yes",
        f"mask-{plain.image_id}": "confirm",
        f"boxes-{plain.image_id}": "[]",
        f"lat-{banded.image_id}": "left",
        f"field-{banded.image_id}": "macula",
        f"gradable-{banded.image_id}": "yes",
        f"mask-{banded.image_id}": "confirm",
        f"boxes-{banded.image_id}": json.dumps(banded.mask_boxes),
        f"r{report.pk}-dr_result": report.dr_result,
        f"r{report.pk}-amd_result": "",
        f"r{report.pk}-glaucoma_result": report.glaucoma_result,
        f"r{report.pk}-vcdr_od": str(report.vcdr_od),
        f"r{report.pk}-vcdr_os": str(report.vcdr_os),
        "name": NAME,
        "patient_id": PATIENT_ID,
        "age": "54",
        "sex": "M",
        "diseases": ["DR", "GLAUCOMA"],
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- The list awaiting verification ---------------------------------------------------------------------------------


def test_list_of_encounters_awaiting_verification_by_lab_unit(ingested, client, data_manager, make_user, camera, upload):
    _, encounters = ingested(visit(), visit("MRN30552", seed=2))
    other_unit = LabUnitFactory()
    other_uploader = make_user(Role.UPLOADER, lab_units=[other_unit])
    fields = {"hospital": str(other_unit.hospital_id), "lab_unit": str(other_unit.pk), "camera": str(camera.pk)}
    upload(other_uploader, export.export_zip([visit("ELSEWHERE1", seed=3)]), fields=fields)

    client.force_login(data_manager)
    page = client.get("/encounters/")
    html = page.content.decode()
    assert page.status_code == 200
    for encounter in encounters:
        assert f'data-encounter="{encounter.pk}"' in html and encounter.patient.pseudonym in html
    assert html.count("data-encounter=") == 2  # another lab unit's encounters are not listed
    lab_unit = encounters[0].lab_unit
    assert f'data-lab-unit="{lab_unit.pk}">2 awaiting' in html
    assert NAME not in html and PATIENT_ID not in html  # the list is by pseudonym

    with CaptureQueriesContext(connection) as two:
        client.get("/encounters/")
    ingested(visit("MRN30553", seed=4), visit("MRN30554", seed=5), visit("MRN30555", seed=6))
    with CaptureQueriesContext(connection) as five:
        html = client.get("/encounters/").content.decode()
    assert html.count("data-encounter=") == 5
    assert len(five) == len(two)  # constant number of queries per request

    client.post(f"/encounters/{encounters[0].pk}/", form_for(encounters[0]))
    html = client.get("/encounters/").content.decode()
    assert html.count("data-encounter=") == 4  # verified ones leave the "awaiting" list
    assert client.get("/encounters/?status=verified").content.decode().count("data-encounter=") == 1


@pytest.mark.parametrize("role", [Role.UPLOADER, Role.RESIDENT, Role.OPHTHALMOLOGIST])
def test_only_data_managers_verify(role, encounter, client, make_user, lab_unit):
    user = make_user(role, lab_units=[lab_unit])
    client.force_login(user)
    assert client.get("/encounters/").status_code == 403
    assert client.get(f"/encounters/{encounter.pk}/").status_code == 403
    assert client.post(f"/encounters/{encounter.pk}/", form_for(encounter)).status_code == 403
    encounter.refresh_from_db()
    assert encounter.status == Encounter.Status.AWAITING


# --- The verification page ------------------------------------------------------------------------------------------


def test_verification_page_shows_what_was_read(encounter, client, data_manager):
    client.force_login(data_manager)
    html = client.get(f"/encounters/{encounter.pk}/").content.decode()
    plain, banded = links_of(encounter)
    assert f'value="{NAME}"' in html and f'value="{PATIENT_ID}"' in html  # identifiers for data managers
    assert 'id="age" name="age" value="54"' in html and '<option value="M" selected>' in html
    # The laterality suggestion is preselected, the field and gradability wait for a decision.
    assert f'id="lat-{plain.image_id}-right" value="right" checked' in html
    assert f'id="lat-{banded.image_id}-left" value="left" checked' in html
    assert "checked" not in html.split(f'id="field-{plain.image_id}-disc"')[1].split(">")[0]
    assert f'id="gradable-{plain.image_id}-yes" value="yes" >' in html
    # The mask found is shown for confirmation, the original (unmasked) image served only to verifiers.
    assert f'data-suggested="{json.dumps(banded.mask_boxes)}"' in html.replace("&quot;", '"')
    assert f"/encounters/images/{banded.image_id}/original" in html
    # The report's results, editable.
    assert "<option selected>Signs of DR detected</option>" in html
    assert "<option selected>No Referable Glaucoma</option>" in html or "No Referable Glaucoma" in html
    assert 'value="0.41"' in html and 'value="0.38"' in html
    assert "Result DR: Signs of DR detected" in html  # raw text


def test_verify_through_the_page_sends_gradable_photographs_to_grading(encounter, client, data_manager, resident):
    client.force_login(data_manager)
    plain, banded = links_of(encounter)
    report = encounter.reports.get()
    response = client.post(
        f"/encounters/{encounter.pk}/",
        form_for(
            encounter,
            **{
                f"gradable-{banded.image_id}": "no",
                f"r{report.pk}-dr_result": "No signs of DR detected",
                f"r{report.pk}-vcdr_od": "0.5",
                "age": "55",
                "sex": "F",
            },
        ),
    )
    assert response.status_code == 302
    encounter.refresh_from_db()
    assert encounter.status == Encounter.Status.VERIFIED and encounter.verified_by == data_manager
    plain, banded = links_of(encounter)
    assert (plain.laterality, plain.field, plain.gradable) == ("right", "disc", True)
    assert (banded.laterality, banded.field, banded.gradable) == ("left", "macula", False)
    assert banded.mask_state == MaskState.CONFIRMED
    assert plain.image.area.code == "right" and banded.image.area.code == "left"

    # One set of grading tasks per gradable photograph and disease, through the grading service.
    tasks = GradingTask.objects.filter(image__encounter_link__encounter=encounter)
    assert {(t.image_id, t.disease.code) for t in tasks} == {(plain.image_id, "DR"), (plain.image_id, "GLAUCOMA")}
    plain.image.refresh_from_db()
    assert plain.image.grading_status == GradingStatus.AWAITING
    follow = client.get(response.url).content.decode()
    assert f"verified: {tasks.count()} grading task(s) created." in follow

    # The corrections: the report's new result supersedes the one read, as an AI result entered by the verifier.
    report.refresh_from_db()
    assert report.status == Report.Status.VERIFIED and report.dr_result == "No signs of DR detected"
    assert report.dr_referable is False and str(report.vcdr_od) == "0.50"
    current = AIResult.objects.get(encounter=encounter, is_current=True, target=AIResult.Target.DR)
    assert current.source == AIResult.Source.VERIFIER and current.recorded_by == data_manager
    assert AIResult.objects.filter(encounter=encounter, is_current=False, target=AIResult.Target.DR).exists()
    assert identity.decrypt(encounter.age_encrypted) == "55"
    assert identity.decrypt(encounter.patient.sex_encrypted) == "F"

    # The photograph is in the grader's queue.
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(resident)
    task = api.post("/api/grading/next", {"disease": "DR"}, format="json").json()
    assert task["image_id"] == str(plain.image_id) and task["area"] == "right"


def test_refused_verification_lists_every_problem_and_changes_nothing(encounter, client, data_manager):
    client.force_login(data_manager)
    plain, banded = links_of(encounter)
    report = encounter.reports.get()
    form = form_for(
        encounter,
        **{f"field-{plain.image_id}": None, f"gradable-{banded.image_id}": None, f"r{report.pk}-vcdr_os": "1.7",
           "age": "300"},
    )  # fmt: skip
    response = client.post(f"/encounters/{encounter.pk}/", form)
    html = response.content.decode()
    assert response.status_code == 400
    assert f"Photograph {plain.entry_name}: field must be one of: disc, macula." in html
    assert f"Photograph {banded.entry_name}: say whether it is gradable (true or false)." in html
    assert f"Report {report.entry_name}: vcdr_os must be a number from 0 to 1." in html
    assert "Age must be a whole number from 0 to 130." in html
    assert 'value="300"' in html  # what was submitted is shown again for correction
    encounter.refresh_from_db()
    assert encounter.status == Encounter.Status.AWAITING and not GradingTask.objects.exists()
    assert identity.decrypt(encounter.age_encrypted) == "54"


def test_patient_id_correction_links_to_the_right_patient(ingested, client, data_manager):
    _, (first,) = ingested(visit())
    _, (second, third) = ingested(visit("MRN3O551", seed=2), visit("MRN30552", seed=3))  # a typo in the folder name
    old_pseudonym = second.patient.pseudonym
    client.force_login(data_manager)
    # Within one export, a correction that would make two copies of the same visit is refused with the reason.
    response = client.post(f"/encounters/{second.pk}/", form_for(second, patient_id="MRN30552"))
    assert response.status_code == 400
    assert verification.MSG_SAME_VISIT.format(pseudonym=third.display) in response.content.decode()
    response = client.post(f"/encounters/{second.pk}/", form_for(second, patient_id="MRN30551"))
    assert response.status_code == 302
    second.refresh_from_db()
    assert second.patient_id == first.patient_id  # now linked to the same pseudonymous patient
    assert identity.decrypt(second.patient.patient_id_encrypted) == PATIENT_ID
    assert not Patient.objects.filter(pseudonym=old_pseudonym).exists()  # the mistyped patient is gone


def _pixels(storage_alias: str, name: str, box) -> int:
    with storages[storage_alias].open(name, "rb") as fh:
        return PILImage.open(io.BytesIO(fh.read())).convert("L").crop(box).getextrema()[1]


def test_masks_can_be_adjusted_or_cleared(encounter, api_client, data_manager, django_capture_on_commit_callbacks):
    plain, banded = links_of(encounter)
    band = tuple(banded.mask_boxes[0])
    old_banded_file = banded.image.file.name
    api_client.force_authenticate(data_manager)
    body = {
        "images": [
            {"id": str(plain.image_id), "laterality": "right", "field": "disc", "gradable": True, "mask": "adjust",
             "mask_boxes": [[10, 10, 120, 60]]},
            {"id": str(banded.image_id), "laterality": "left", "field": "macula", "gradable": True, "mask": "clear"},
        ],
        "diseases": ["DR"],
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json")
    assert response.status_code == 200, response.content
    plain, banded = links_of(encounter)
    assert plain.mask_state == MaskState.ADJUSTED and plain.mask_boxes == [[10, 10, 120, 60]]
    assert plain.original_name in stored_files("restricted")  # the unmasked original kept for audit
    assert _pixels("default", plain.image.file.name, (12, 12, 118, 58)) < 30  # the new box is blanked
    assert banded.mask_state == MaskState.CLEARED and banded.mask_boxes == []
    assert _pixels("default", banded.image.file.name, band) > 200  # the verifier said it hid no identifier
    assert old_banded_file not in stored_files("default")  # the replaced graded copy is gone
    images = {i["id"]: i for i in response.json()["encounter"]["images"]}
    assert images[str(plain.image_id)]["masked"] is True and images[str(banded.image_id)]["masked"] is False


def test_mask_boxes_are_checked(encounter, api_client, data_manager):
    plain, banded = links_of(encounter)
    api_client.force_authenticate(data_manager)
    body = {
        "images": [
            {"id": str(plain.image_id), "laterality": "right", "field": "disc", "gradable": True, "mask": "adjust",
             "mask_boxes": [[5000, 5000, 6000, 6000]]},
            {"id": str(banded.image_id), "laterality": "left", "field": "macula", "gradable": True},
        ],
    }  # fmt: skip
    response = api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"Photograph {plain.entry_name}: A mask box must cover at least one pixel inside the image."
    )
    assert response.json()["errors"] == [response.json()["detail"]]
    assert Encounter.objects.get(pk=encounter.pk).status == Encounter.Status.AWAITING


# --- Undo -------------------------------------------------------------------------------------------------------------


def test_undo_while_no_grading_started(encounter, client, data_manager, api_client, resident):
    client.force_login(data_manager)
    client.post(f"/encounters/{encounter.pk}/", form_for(encounter))
    assert GradingTask.objects.count() > 0
    response = client.post(f"/encounters/{encounter.pk}/undo", follow=True)
    assert "undone: it awaits verification again." in response.content.decode()
    encounter.refresh_from_db()
    assert encounter.status == Encounter.Status.AWAITING and not GradingTask.objects.exists()
    assert {link.image.grading_status for link in links_of(encounter)} == {GradingStatus.NOT_QUEUED}
    assert [link.laterality for link in links_of(encounter)] == ["right", "left"]  # decisions kept as a start

    # Verified again and graded once: undo is refused.
    client.post(f"/encounters/{encounter.pk}/", form_for(encounter))
    api_client.force_authenticate(resident)
    task = api_client.post("/api/grading/next", {"disease": "DR"}, format="json").json()
    graded = api_client.post(task["grade_url"], {"option": task["scheme"]["options"][0]["code"]}, format="json")
    assert graded.status_code in (200, 201), graded.content
    api_client.force_authenticate(data_manager)
    refused = api_client.post(f"/api/encounters/{encounter.pk}/undo")
    assert refused.status_code == 409
    assert "can no longer be undone" in refused.json()["detail"]
    encounter.refresh_from_db()
    assert encounter.status == Encounter.Status.VERIFIED


def test_verifying_twice_is_refused(encounter, data_manager):
    decisions = [
        verification.ImageDecision(image_id=str(link.image_id), laterality="right", field="disc", gradable=False)
        for link in links_of(encounter)
    ]
    assert verification.encounter_verify(user=data_manager, encounter_id=encounter.pk, images=decisions)["tasks_created"] == 0
    with pytest.raises(verification.Conflict):
        verification.encounter_verify(user=data_manager, encounter_id=encounter.pk, images=decisions)


# --- The encounter API ------------------------------------------------------------------------------------------------


def test_encounter_api_by_job_with_identifiers_only_for_data_managers(
    ingested, api_client, zip_uploader, data_manager, make_user, lab_unit
):
    status, encounters = ingested(visit(), visit("MRN30552", seed=2))
    ingested(visit("MRN30553", seed=3))  # another job
    api_client.force_authenticate(zip_uploader)
    response = api_client.get(f"/api/encounters/?job={status['job_id']}")
    assert response.status_code == 200
    rows = response.json()
    assert [r["id"] for r in sorted(rows, key=lambda r: r["id"])] == [e.pk for e in encounters]
    row = next(r for r in rows if r["id"] == encounters[0].pk)
    assert row["pseudonym"] == encounters[0].patient.pseudonym and row["capture_date"] == "2024-02-01"
    assert {"name", "patient_id", "age", "sex"}.isdisjoint(row)  # an uploader gets no identifier
    image = row["images"][1]
    assert set(image) >= {"id", "laterality", "laterality_suggestion", "masked"}
    assert (image["laterality"], image["laterality_suggestion"], image["masked"]) == ("", "left", True)
    (report,) = row["reports"]
    assert report["kind"] == "dr+glaucoma" and report["status"] == "parsed"
    assert (report["dr_result"], report["dr_referable"]) == ("Signs of DR detected", True)
    assert report["glaucoma_referable"] is False and report["amd_result"] == ""
    assert (report["vcdr_od"], report["vcdr_os"]) == (0.41, 0.38)
    assert "Result DR" in report["raw_text"] and NAME not in report["raw_text"]
    assert PATIENT_ID not in json.dumps(rows) and NAME not in json.dumps(rows)

    api_client.force_authenticate(data_manager)
    api_client.get("/api/encounters/?job=00000000-0000-0000-0000-000000000000")  # warm the user's cached roles
    with CaptureQueriesContext(connection) as two:
        rows = api_client.get(f"/api/encounters/?job={status['job_id']}").json()
    row = next(r for r in rows if r["id"] == encounters[0].pk)
    assert (row["name"], row["patient_id"], row["age"], row["sex"]) == (NAME, PATIENT_ID, 54, "M")
    assert NAME in row["reports"][0]["raw_text"]
    with CaptureQueriesContext(connection) as three:
        assert len(api_client.get("/api/encounters/?status=awaiting").json()) == 3
    assert len(three) == len(two)  # constant number of queries
    assert api_client.get("/api/encounters/?job=not-a-uuid").status_code == 400

    grader = make_user(Role.RESIDENT, lab_units=[lab_unit])
    api_client.force_authenticate(grader)
    assert api_client.get("/api/encounters/").status_code == 403


def test_verify_api(encounter, api_client, data_manager, zip_uploader):
    plain, banded = links_of(encounter)
    body = {
        "images": [
            {"id": str(plain.image_id), "laterality": "right", "field": "disc", "gradable": True},
            {"id": str(banded.image_id), "laterality": "left", "field": "macula", "gradable": True, "mask": "confirm"},
        ],
        "reports": [{"id": encounter.reports.get().pk, "glaucoma_result": "Referable Glaucoma - Referral suggested"}],
        "patient": {"age": "56"},
        "diseases": ["DR"],
    }
    api_client.force_authenticate(zip_uploader)
    assert api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json").status_code == 403
    api_client.force_authenticate(data_manager)
    response = api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["encounter"]["status"] == "verified" and data["encounter"]["age"] == 56
    assert data["tasks_created"] == GradingTask.objects.count() > 0
    assert {t.disease.code for t in GradingTask.objects.all()} == {"DR"}
    assert data["encounter"]["reports"][0]["glaucoma_referable"] is True
    again = api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json")
    assert again.status_code == 409


# --- The image page -----------------------------------------------------------------------------------------------------


def test_image_page_shows_the_encounter_and_the_ai_result(encounter, client, data_manager, resident):
    client.force_login(data_manager)
    client.post(f"/encounters/{encounter.pk}/", form_for(encounter))
    plain = links_of(encounter)[0]
    html = client.get(f"/images/{plain.image_id}").content.decode()
    assert encounter.patient.pseudonym in html
    assert 'data-testid="ai-results"' in html and "Signs of DR detected" in html and "referable" in html
    assert NAME not in html and PATIENT_ID not in html

    client.force_login(resident)
    html = client.get(f"/images/{plain.image_id}").content.decode()
    assert encounter.patient.pseudonym in html and "Right eye (OD)" in html
    assert NAME not in html and PATIENT_ID not in html
    assert client.get(f"/encounters/images/{plain.image_id}/original").status_code == 403
    report = encounter.reports.get()
    assert client.get(f"/encounters/{encounter.pk}/reports/{report.pk}.pdf").status_code == 403


def test_admins_see_identifiers_and_verify(encounter, api_client, make_user):
    admin = make_user(Role.ADMIN)
    api_client.force_authenticate(admin)
    (row,) = api_client.get("/api/encounters/").json()
    assert (row["name"], row["patient_id"]) == (NAME, PATIENT_ID)
    body = {"images": [{"id": i["id"], "laterality": "right", "field": "disc", "gradable": False} for i in row["images"]]}
    response = api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json")
    assert response.status_code == 200 and response.json()["tasks_created"] == 0


def test_another_lab_unit_gets_404(encounter, client, api_client, make_user):
    stranger = make_user(Role.DATA_MANAGER, lab_units=[LabUnitFactory()])
    client.force_login(stranger)
    plain = links_of(encounter)[0]
    report = encounter.reports.get()
    assert client.get(f"/encounters/{encounter.pk}/").status_code == 404
    assert client.post(f"/encounters/{encounter.pk}/", form_for(encounter)).status_code == 404
    assert client.post(f"/encounters/{encounter.pk}/undo").status_code == 404
    assert client.get(f"/encounters/{encounter.pk}/reports/{report.pk}.pdf").status_code == 404
    assert client.get(f"/encounters/images/{plain.image_id}/original").status_code == 404
    assert "data-encounter=" not in client.get("/encounters/").content.decode()
    api_client.force_authenticate(stranger)
    assert api_client.get(f"/api/encounters/{encounter.pk}").status_code == 404
    assert api_client.get("/api/encounters/").json() == []
    body = {"images": [{"id": str(plain.image_id), "gradable": False}]}
    assert api_client.post(f"/api/encounters/{encounter.pk}/verify", body, format="json").status_code == 404
    assert api_client.post(f"/api/encounters/{encounter.pk}/undo").status_code == 404
    assert Encounter.objects.get(pk=encounter.pk).status == Encounter.Status.AWAITING
