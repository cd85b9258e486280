"""Grade import end to end through the API and the job: matching, mapping, failures, effects, transactions."""

import pytest
from django.core.files.storage import storages
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from grading.models import AIModel, Consensus, Grade, GradingTask
from jobs.models import Job
from pregraded.models import GradeImport, PregradedVerification, ValueMapping
from tests.pregraded.conftest import csv_bytes, upload, xlsx_openpyxl, xlsx_xlsxwriter
from uploads.models import AuditEvent


@pytest.fixture
def client_for(api_client):
    def login(user):
        api_client.force_authenticate(user)
        return api_client

    return login


@pytest.fixture
def post_import(client_for, data_manager, import_fields, run_jobs):
    """POST /api/pregraded/grades with a file; the job (if queued) runs inline."""

    def post(data: bytes, grader_type="ai", name="grades.xlsx", user=None, **fields):
        client = client_for(user or data_manager)
        with run_jobs():
            response = client.post(
                "/api/pregraded/grades",
                {**import_fields(grader_type, **fields), "file": upload(data, name)},
                format="multipart",
            )
        return response

    return post


@pytest.fixture
def post_mapping(client_for, data_manager, run_jobs):
    def post(import_id, mapping, user=None):
        client = client_for(user or data_manager)
        with run_jobs():
            return client.post(f"/api/pregraded/grades/{import_id}/mapping", {"mapping": mapping}, format="json")

    return post


def _all_staged() -> set[str]:
    storage = storages["staging"]

    def walk(path):
        try:
            dirs, files = storage.listdir(path)
        except FileNotFoundError:
            return []
        return [f"{path}/{f}" if path else f for f in files] + [
            x for d in dirs for x in walk(f"{path}/{d}" if path else d)
        ]

    return set(walk(""))


@pytest.fixture
def staged_files():
    """Files the test left in the staging storage (the storage is shared by the whole session)."""
    before = _all_staged()
    return lambda: sorted(_all_staged() - before)


def test_ai_import_with_recognised_values_is_queued_and_imported(
    staged_files, post_import, pregraded_image, client_for, data_manager
):
    [pregraded_image(f"IMG_{i}.jpg") for i in range(4)]
    data = xlsx_openpyxl(
        [
            ("image_name", "ai_grade", "ai_remarks", "ai_probability"),
            ("img_0.JPG", "Proliferative DR", "model v2", 0.93),  # names match ignoring case
            ("IMG_1.jpg", 2, None, 0.4),
            ("IMG_2.jpg", "2.0", None, "0.25"),
            ("IMG_3.jpg", "-", None, None),
        ]
    )
    response = post_import(data)
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["job_id"] and body["unmapped"] == []
    assert [(m["value"], m["count"], m["option"]) for m in body["mapped"]] == [
        ("2", 2, "2"),
        ("Proliferative DR", 1, "4"),
    ]
    done = client_for(data_manager).get(f"/api/pregraded/grades/{body['import_id']}").json()
    assert done["status"] == "done"
    assert done["summary"]["imported"] == 3 and done["summary"]["no_grade"] == 1 and done["summary"]["failed"] == 0
    grades = {g.image.original_name: g for g in Grade.objects.select_related("image", "option", "ai_model")}
    assert grades["IMG_0.jpg"].probability == pytest.approx(0.93) and isinstance(grades["IMG_0.jpg"].probability, float)
    assert grades["IMG_2.jpg"].probability == pytest.approx(0.25)
    assert grades["IMG_1.jpg"].option.code == "2" and grades["IMG_1.jpg"].raw_value == "2"
    assert grades["IMG_2.jpg"].option.code == "2" and grades["IMG_2.jpg"].raw_value == "2.0"
    assert grades["IMG_3.jpg"].option is None  # "-" is no grade, not an error
    assert {str(g.ai_model) for g in grades.values()} == {"EyeArt 2.1"}
    assert {g.grader_type for g in grades.values()} == {"ai"}
    assert all(g.import_job_id == Job.objects.get(kind="grade_import").pk for g in grades.values())
    assert Job.objects.get(kind="grade_import").status == "done"
    assert PregradedVerification.objects.filter(has_ai=True, status="grades_imported").count() == 4
    assert staged_files() == []  # the spreadsheet and its rows are gone once imported


def test_values_not_recognised_wait_for_the_mapping_step(post_import, post_mapping, pregraded_image, icdr):
    for i in range(5):
        pregraded_image(f"a{i}.jpg")
    data = xlsx_openpyxl(
        [
            ("image_name", "ai_grade"),
            ("a0.jpg", "Moderat NPDR"),
            ("a1.jpg", "Moderat NPDR"),
            ("a2.jpg", "??"),
            ("a3.jpg", "Mild"),
            ("a4.jpg", ""),
        ]
    )
    response = post_import(data)
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "needs_mapping" and body["job_id"] is None
    unmapped = {u["value"]: u for u in body["unmapped"]}
    assert unmapped["Moderat NPDR"]["count"] == 2
    assert (
        unmapped["Moderat NPDR"]["suggestion"] == "2" and unmapped["Moderat NPDR"]["suggestion_source"] == "similarity"
    )
    assert unmapped["??"]["suggestion"] is None
    assert body["mapped"] == [{"value": "Mild", "count": 1, "option": "1", "option_label": "Mild NPDR"}]
    assert body["no_grade_rows"] == 1
    assert Grade.objects.count() == 0 and not Job.objects.filter(kind="grade_import").exists()

    incomplete = post_mapping(body["import_id"], {"moderat npdr": "2"})  # matched like grades: case and spaces ignored
    assert incomplete.status_code == 400
    assert incomplete.json()["detail"] == "Map every value before importing; still unmapped: '??' (1 row)."
    assert Grade.objects.count() == 0

    wrong = post_mapping(body["import_id"], {"Moderat NPDR": "7", "??": None})
    assert (
        wrong.status_code == 400
        and "Unknown option '7'" in wrong.json()["detail"]
        and "0, 1, 2, 3, 4" in wrong.json()["detail"]
    )
    unknown = post_mapping(body["import_id"], {"Moderat NPDR": "2", "??": "skip", "Severe": "3"})
    assert unknown.status_code == 400 and "'Severe' is not a grade value of this file" in unknown.json()["detail"]

    accepted = post_mapping(body["import_id"], {"Moderat NPDR": "2", "??": "skip", "Mild": None})
    assert accepted.status_code == 202, accepted.content
    result = accepted.json()
    assert result["job_id"] and result["status"] in ("queued", "processing", "done")
    imp = GradeImport.objects.get(pk=body["import_id"])
    assert imp.status == "done"
    grades = {g.image.original_name: g for g in Grade.objects.select_related("image", "option")}
    assert grades["a0.jpg"].option.code == "2" and grades["a0.jpg"].raw_value == "Moderat NPDR"
    assert grades["a3.jpg"].option is None  # the automatic match was changed to "no grade"
    assert "a2.jpg" not in grades
    failures = imp.summary["failures"]
    assert failures == [
        {
            "row": 4,
            "image_name": "a2.jpg",
            "code": "value_skipped",
            "reason": "Value skipped: '??' was mapped to 'skip these rows'",
        }
    ]
    remembered = {m.value: (m.action, m.option.code if m.option else None) for m in ValueMapping.objects.all()}
    assert remembered == {"Moderat NPDR": ("option", "2"), "??": ("skip", None), "Mild": ("no_grade", None)}

    again = post_mapping(body["import_id"], {"Moderat NPDR": "3", "??": "skip"})
    assert again.status_code == 409 and "can no longer be changed" in again.json()["detail"]


def test_mapping_is_remembered_across_imports_and_suggested_first(post_import, post_mapping, pregraded_image):
    pregraded_image("x.jpg")
    pregraded_image("y.jpg")
    first = post_import(csv_bytes([("image_name", "ai_grade"), ("x.jpg", "Sight threatening")]), name="g.csv").json()
    entry = first["unmapped"][0]
    assert entry["value"] == "Sight threatening" and entry["suggestion_source"] != "remembered"
    assert post_mapping(first["import_id"], {"Sight threatening": "4"}).status_code == 202

    second = post_import(csv_bytes([("image_name", "ai_grade"), ("y.jpg", "SIGHT-THREATENING")]), name="h.csv").json()
    assert second["status"] == "needs_mapping"
    assert second["unmapped"] == [
        {
            "value": "SIGHT-THREATENING",
            "count": 1,
            "suggestion": "4",
            "suggestion_action": "option",
            "suggestion_label": "Proliferative DR",
            "suggestion_source": "remembered",
        }
    ]
    # A changed automatic match is remembered too, and then asks for confirmation next time.
    third = post_import(
        csv_bytes([("image_name", "ai_grade"), ("x.jpg", "Normal")]), name="i.csv", ai_model_version="3"
    ).json()
    assert third["status"] == "queued"
    ValueMapping.objects.create(
        scheme_id=GradeImport.objects.get(pk=third["import_id"]).scheme_id, key="normal", value="Normal", action="skip"
    )
    fourth = post_import(
        csv_bytes([("image_name", "ai_grade"), ("y.jpg", "normal")]), name="j.csv", ai_model_version="3"
    ).json()
    assert fourth["status"] == "needs_mapping"
    assert (
        fourth["unmapped"][0]["suggestion_action"] == "skip"
        and fourth["unmapped"][0]["suggestion_source"] == "remembered"
    )


def test_every_failed_row_is_listed_with_row_number_image_name_and_reason(post_import, pregraded_image, other_lab_unit):
    pregraded_image("ok.jpg")
    pregraded_image("dup.jpg")
    pregraded_image("p1.jpg")
    pregraded_image("p2.jpg")
    pregraded_image("p3.jpg")
    pregraded_image("regular.jpg", is_pregraded=False)
    pregraded_image("elsewhere.jpg", lab_unit=other_lab_unit)
    data = xlsx_xlsxwriter(
        [
            ("image_name", "ai_grade", "ai_probability"),
            ("ok.jpg", "1", 0.2),
            ("missing.jpg", "1", 0.2),
            ("regular.jpg", "1", 0.2),
            ("elsewhere.jpg", "1", 0.2),
            ("p1.jpg", "1", "high"),
            ("p2.jpg", "1", 1.5),
            ("p3.jpg", "1", "85%"),
            ("dup.jpg", "2", 0.1),
            ("DUP.JPG", "3", 0.9),
            (None, "1", None),
        ]
    )
    body = post_import(data).json()
    imp = GradeImport.objects.get(pk=body["import_id"])
    assert imp.status == "done", imp.error
    summary = imp.summary
    assert summary["imported"] == 2 and summary["failed"] == 8 and summary["rows"] == 10
    failures = [(f["row"], f["image_name"], f["code"]) for f in summary["failures"]]
    assert failures == [
        (3, "missing.jpg", "image_not_found"),
        (4, "regular.jpg", "image_not_pregraded"),
        (5, "elsewhere.jpg", "image_not_found"),
        (6, "p1.jpg", "invalid_probability"),
        (7, "p2.jpg", "invalid_probability"),
        (8, "p3.jpg", "invalid_probability"),
        (10, "DUP.JPG", "duplicate_row"),
        (11, "", "empty_image_name"),
    ]
    reasons = {f["row"]: f["reason"] for f in summary["failures"]}
    assert reasons[3].startswith("Image not found: no pre-graded image with this name in")
    assert reasons[4].startswith("Image not pre-graded")
    assert (
        reasons[6]
        == "Probability not a number or out of range: AI probability must be a number between 0 and 1, got 'high'"
    )
    assert "between 0 and 1, got 1.5" in reasons[7]
    assert "write 0.85, not 85%" in reasons[8]
    assert reasons[10] == "Duplicate row in the file: DUP.JPG already appears in row 9; only that row is imported"
    assert summary["failure_counts"] == {
        "image_not_found": 2,
        "image_not_pregraded": 1,
        "invalid_probability": 3,
        "duplicate_row": 1,
        "empty_image_name": 1,
    }
    assert Grade.objects.get(image__original_name="dup.jpg").option.code == "2"  # the first row of the image
    job = Job.objects.get(kind="grade_import")
    item = job.items.get()
    assert item.status == "completed" and item.result["failed"] == 8
    assert {"name": "Row 3: missing.jpg", "reason": reasons[3]} in item.result["skipped"]


def test_most_recent_upload_is_graded_when_several_images_share_a_name(post_import, pregraded_image):
    from tests.grading.factories import an_hour_ago

    older = pregraded_image("same.jpg", uploaded_at=an_hour_ago())
    newer = pregraded_image("Same.JPG")
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("SAME.jpg", "1")]), name="g.csv").json()
    imp = GradeImport.objects.get(pk=body["import_id"])
    assert Grade.objects.get().image_id == newer.pk != older.pk
    assert imp.summary["several_matches"] == [{"row": 2, "image_name": "SAME.jpg", "matches": 2}]
    assert "matched more than one pre-graded image: the most recent upload was graded" in imp.summary["text"]


def test_only_images_of_the_chosen_disease_match(post_import, pregraded_image):
    from accounts.models import Disease

    pregraded_image("g.jpg", disease=Disease.objects.get(code="GLAUCOMA"))
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("g.jpg", "1")]), name="g.csv").json()
    assert GradeImport.objects.get(pk=body["import_id"]).summary["failure_counts"] == {"image_not_found": 1}


def test_resident_import_fills_queue_slots_and_resident2_records_the_reference(
    post_import, pregraded_image, resident, ophthalmologist
):
    from grading import services as grading_services

    image = pregraded_image("r.jpg")
    grading_services.grading_tasks_create(image=image)
    data = xlsx_openpyxl([("image_name", "resident_grade", "resident_remarks"), ("r.jpg", "Moderate", "haemorrhages")])
    assert post_import(data, "resident", grader=resident.username).json()["status"] == "queued"
    grade = Grade.objects.get(grader_type="resident")
    assert (grade.grader_id, grade.option.code, grade.remarks) == (resident.pk, "2", "haemorrhages")
    assert GradingTask.objects.get(image=image, slot="primary").status == "done"

    data2 = xlsx_openpyxl([("image_name", "resident2_grade"), ("r.jpg", "Severe NPDR")])
    body = post_import(data2, "resident2", grader=str(ophthalmologist.pk)).json()
    assert GradeImport.objects.get(pk=body["import_id"]).summary["consensus_recorded"] == 1
    consensus = Consensus.objects.get(image=image, is_current=True)
    assert (consensus.method, consensus.option.code) == ("imported_reference", "3")
    verification = PregradedVerification.objects.get(image=image)
    assert verification.has_resident and verification.has_resident2 and not verification.has_ai


def test_new_grades_supersede_and_ai_model_versions_are_never_merged(post_import, pregraded_image):
    image = pregraded_image("s.jpg")
    rows = [("image_name", "ai_grade", "ai_probability"), ("s.jpg", "1", 0.3)]
    post_import(csv_bytes(rows), name="a.csv")
    post_import(csv_bytes([rows[0], ("s.jpg", "2", 0.6)]), name="b.csv")
    post_import(csv_bytes([rows[0], ("s.jpg", "4", 0.99)]), name="c.csv", ai_model_version="2.1.0")
    assert AIModel.objects.filter(name="EyeArt").count() == 2
    current = Grade.objects.filter(image=image, is_current=True).select_related("ai_model", "option")
    assert sorted((g.ai_model.version, g.option.code) for g in current) == [("2.1", "2"), ("2.1.0", "4")]
    history = Grade.objects.filter(image=image, ai_model__version="2.1").order_by("created_at", "id")
    assert [(g.option.code, g.is_current) for g in history] == [("1", False), ("2", True)]
    latest = GradeImport.objects.get(original_name="b.csv")
    assert latest.summary["superseded"] == 1


def test_verification_records_follow_imports_and_the_image_page_names_the_last_import(
    post_import, pregraded_image, data_manager, uploader, client
):
    image = pregraded_image("v.jpg")
    other = pregraded_image("w.jpg")
    PregradedVerification.objects.create(image=image, status="verified")  # grades arriving reopen it
    header = ("image_name", "ai_grade")
    post_import(csv_bytes([header, ("v.jpg", "1"), ("w.jpg", "2")]), name="first.csv")
    records = {r.image_id: r for r in PregradedVerification.objects.all()}
    assert records[image.pk].status == records[other.pk].status == "grades_imported"
    assert records[image.pk].has_ai and records[other.pk].has_ai  # w.jpg had no record: one is created
    post_import(csv_bytes([header, ("v.jpg", "3")]), name="second.csv", ai_model_version="3.0")
    again = PregradedVerification.objects.get(image=image)
    assert again.updated_at == records[image.pk].updated_at  # already up to date: not rewritten
    client.force_login(data_manager)
    page = client.get(f"/images/{image.pk}").content.decode()
    second = GradeImport.objects.get(original_name="second.csv")
    assert f'Last import: <a href="/pregraded/grades/{second.pk}">second.csv</a>' in page
    assert "first.csv" in client.get(f"/images/{other.pk}").content.decode()
    client.force_login(uploader)  # who may not import grades is not shown imports
    page = client.get(f"/images/{image.pk}").content.decode()
    assert 'data-testid="pregraded-panel"' in page and "Last import" not in page


def test_each_import_is_recorded_in_the_audit_trail(post_import, pregraded_image, data_manager):
    pregraded_image("a.jpg")
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "1")]), name="g.csv").json()
    event = AuditEvent.objects.get(action="grades.imported")
    assert event.object_id == body["import_id"] and event.actor_id == data_manager.pk
    assert event.details["imported"] == 1 and event.details["ai_model"] == "EyeArt 2.1"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"grader_type": "nurse"}, "Choose the grader type: resident, resident2 or ai."),
        ({"disease": ""}, "All fields are required"),
        ({"ai_model_name": "", "ai_model_version": ""}, "An AI import needs the AI model's name and version"),
    ],
)
def test_bad_fields_are_refused_and_nothing_is_kept(staged_files, post_import, fields, message):
    response = post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "1")]), name="g.csv", **fields)
    assert response.status_code == 400 and message in response.json()["detail"]
    assert not GradeImport.objects.exists() and staged_files() == []


def test_a_refused_file_leaves_nothing(staged_files, post_import):
    response = post_import(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, name="old.xlsx")
    assert response.status_code == 400 and "legacy Excel file (.xls)" in response.json()["detail"]
    missing = post_import(csv_bytes([("image_name", "grade"), ("a.jpg", "1")]), name="g.csv")
    assert "Required column 'ai_grade' not found" in missing.json()["detail"]
    assert not GradeImport.objects.exists() and not Job.objects.exists() and staged_files() == []


def test_grader_without_the_needed_role_is_refused(post_import, make_user, lab_unit, resident, ophthalmologist):
    data = csv_bytes([("image_name", "resident2_grade"), ("a.jpg", "1")])
    refused = post_import(data, "resident2", name="g.csv", grader=resident.username)
    assert refused.status_code == 400
    assert (
        refused.json()["detail"]
        == f"{resident.username} cannot be the resident2 grader: that needs the ophthalmologist role."
    )
    optometrist = make_user(Role.OPTOMETRIST, lab_units=[lab_unit])
    data = csv_bytes([("image_name", "resident_grade"), ("a.jpg", "1")])
    refused = post_import(data, "resident", name="g.csv", grader=optometrist.username)
    assert "that needs the resident or ophthalmologist role" in refused.json()["detail"]
    assert "Choose the grader" in post_import(data, "resident", name="g.csv").json()["detail"]
    outsider = make_user(Role.OPHTHALMOLOGIST)
    refused = post_import(data, "resident", name="g.csv", grader=outsider.username)
    assert "is not assigned to the lab unit" in refused.json()["detail"]
    assert post_import(data, "resident", name="g.csv", grader=ophthalmologist.username).status_code == 202
    assert GradeImport.objects.count() == 1


def test_lab_unit_outside_the_users_scope_and_roles_that_may_not_import(
    post_import, make_user, other_lab_unit, lab_unit
):
    data = csv_bytes([("image_name", "ai_grade"), ("a.jpg", "1")])
    outside = post_import(data, name="g.csv", hospital=str(other_lab_unit.hospital_id), lab_unit=str(other_lab_unit.pk))
    assert outside.status_code == 403 and outside.json()["detail"] == "You don't have access to the selected lab unit"
    uploader = make_user(Role.UPLOADER, lab_units=[lab_unit])
    denied = post_import(data, name="g.csv", user=uploader)
    assert (
        denied.status_code == 403 and "only data managers and administrators import grades" in denied.json()["detail"]
    )
    assert not GradeImport.objects.exists()


def test_imports_of_other_lab_units_are_404(post_import, client_for, make_user, other_lab_unit, pregraded_image):
    pregraded_image("a.jpg")
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "??")]), name="g.csv").json()
    stranger = make_user(Role.DATA_MANAGER, lab_units=[other_lab_unit])
    client = client_for(stranger)
    assert client.get(f"/api/pregraded/grades/{body['import_id']}").status_code == 404
    assert (
        client.post(
            f"/api/pregraded/grades/{body['import_id']}/mapping", {"mapping": {"??": "1"}}, format="json"
        ).status_code
        == 404
    )
    assert client.post(f"/api/pregraded/grades/{body['import_id']}/cancel").status_code == 404
    admin = make_user(Role.ADMIN)
    assert client_for(admin).get(f"/api/pregraded/grades/{body['import_id']}").status_code == 200


def test_a_refusal_of_the_whole_import_writes_nothing(
    staged_files, post_import, post_mapping, pregraded_image, ophthalmologist
):
    """The grader loses their role between the mapping step and the job: the grading service refuses the batch and
    the import ends in error with no grade written (all-or-nothing)."""
    for i in range(3):
        pregraded_image(f"{i}.jpg")
    data = csv_bytes([("image_name", "resident2_grade")] + [(f"{i}.jpg", v) for i, v in enumerate(["1", "2", "odd"])])
    body = post_import(data, "resident2", name="g.csv", grader=ophthalmologist.username).json()
    assert body["status"] == "needs_mapping"
    ophthalmologist.role_rows.all().delete()
    response = post_mapping(body["import_id"], {"odd": "3"})
    assert response.status_code == 202
    imp = GradeImport.objects.get(pk=body["import_id"])
    assert imp.status == "error" and "Nothing was imported" in imp.error and "ophthalmologist role" in imp.error
    assert Grade.objects.count() == 0 and Consensus.objects.count() == 0
    assert Job.objects.get(kind="grade_import").status == "error"
    assert staged_files() == []


def test_an_item_run_again_after_the_import_committed_reports_it_without_writing_twice(post_import, pregraded_image):
    from jobs import services as job_services
    from jobs.models import JobItem

    pregraded_image("a.jpg")
    post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "1")]), name="g.csv")
    item = JobItem.objects.get(job__kind="grade_import")
    JobItem.objects.filter(pk=item.pk).update(status="queued")  # as if the worker died before recording the outcome
    job_services.item_run(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == "completed" and item.result["imported"] == 1
    assert Grade.objects.count() == 1


def test_cancel_an_import_waiting_for_its_mapping(
    staged_files, post_import, client_for, data_manager, pregraded_image, run_jobs
):
    pregraded_image("a.jpg")
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "??")]), name="g.csv").json()
    client = client_for(data_manager)
    with run_jobs():
        response = client.post(f"/api/pregraded/grades/{body['import_id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert staged_files() == []
    again = client.post(f"/api/pregraded/grades/{body['import_id']}/cancel")
    assert again.status_code == 409


def test_review_stops_at_the_mapping_step_even_when_everything_matches(post_import, post_mapping, pregraded_image):
    pregraded_image("a.jpg")
    body = post_import(csv_bytes([("image_name", "ai_grade"), ("a.jpg", "Mild")]), name="g.csv", review="1").json()
    assert body["status"] == "needs_mapping" and body["unmapped"] == [] and body["mapped"][0]["option"] == "1"
    assert post_mapping(body["import_id"], {}).status_code == 202
    assert Grade.objects.get().option.code == "1"


def test_a_file_with_too_many_different_values_is_refused(post_import):
    rows = [("image_name", "ai_grade")] + [(f"{i}.jpg", f"free text {i}") for i in range(205)]
    response = post_import(csv_bytes(rows), name="g.csv")
    assert response.status_code == 400
    assert "205 different values that the ICDR" in response.json()["detail"]


def test_fifty_thousand_rows(post_import, lab_unit, data_manager, settings):
    """A 50,000-row workbook is read in the request and imported by the job, every row accounted for. Most names
    match no image (writing 50,000 grades is the benchmark's business, not a test's): 2,000 are graded."""
    from django.utils import timezone

    from accounts.models import Disease
    from uploads.models import Image

    settings.PREGRADED_IMPORT_MAX_ROWS = 50_000
    dr = Disease.objects.get(code="DR")
    Image.objects.bulk_create(
        [
            Image(
                file=f"x/{i}.jpg",
                original_name=f"img_{i:05d}.jpg",
                md5=f"{i:032x}",
                size=1,
                mime="image/jpeg",
                width=1,
                height=1,
                hospital_id=lab_unit.hospital_id,
                lab_unit=lab_unit,
                disease=dr,
                is_pregraded=True,
                source="pregraded",
                uploaded_by=data_manager,
                uploaded_at=timezone.now(),
            )
            for i in range(0, 50_000, 25)
        ],
        batch_size=2000,
    )
    rows = [("image_name", "ai_grade", "ai_probability")]
    rows += [(f"img_{i:05d}.jpg", ("0", "1", "2", "PDR")[i % 4], (i % 100) / 100) for i in range(50_000)]
    body = post_import(xlsx_xlsxwriter(rows)).json()
    imp = GradeImport.objects.get(pk=body["import_id"])
    assert imp.row_count == 50_000 and imp.status == "done", imp.error
    assert imp.summary["imported"] == 2_000 and imp.summary["failed"] == 48_000
    assert imp.summary["failure_counts"] == {"image_not_found": 48_000}
    assert Grade.objects.filter(grader_type="ai", probability__isnull=False).count() == 2_000
    assert Grade.objects.get(image__original_name="img_00025.jpg").option.code == "1"


def test_a_file_over_the_row_limit_is_refused_whole(staged_files, post_import, settings):
    settings.PREGRADED_IMPORT_MAX_ROWS = 3
    rows = [("image_name", "ai_grade")] + [(f"{i}.jpg", "1") for i in range(4)]
    response = post_import(csv_bytes(rows), name="g.csv")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "The file has more than 3 data rows, the most one import accepts. Split it into several files of at most 3 "
        "rows and import them one after the other."
    )
    assert not GradeImport.objects.exists() and staged_files() == []


def test_queries_are_constant_per_batch(pregraded_image, data_manager, lab_unit, settings, icdr):
    """Import queries grow with the number of batches, never with the number of rows."""
    from accounts.models import Disease
    from jobs import services as job_services
    from pregraded.services import imports, runner

    settings.GRADING_IMPORT_BATCH_SIZE = 20
    dr = Disease.objects.get(code="DR")

    def queries_for(count: int, version: str) -> int:
        # Fresh images each time, so every batch does the same work (tasks created, grades written).
        names = [f"q{version}-{i}.jpg" for i in range(count)]
        for name in names:
            pregraded_image(name)
        data = csv_bytes([("image_name", "ai_grade", "ai_probability")] + [(n, "2", 0.5) for n in names])
        imp = imports.grade_import_create(
            user=data_manager,
            data={
                "grader_type": "ai",
                "hospital": lab_unit.hospital_id,
                "lab_unit": lab_unit.pk,
                "disease": dr.pk,
                "ai_model_name": "Q",
                "ai_model_version": version,
            },
            uploaded=upload(data, "q.csv"),
        )
        assert imp.status == "queued"
        item = imp.job.items.get()
        job_services.item_claim(item_id=item.pk)
        item.refresh_from_db()
        with CaptureQueriesContext(connection) as ctx:
            runner.grade_import_run(item=item)
        assert GradeImport.objects.get(pk=imp.pk).summary["imported"] == count
        return len(ctx.captured_queries)

    one, two, four = queries_for(20, "1"), queries_for(40, "2"), queries_for(80, "4")
    per_batch = two - one
    assert per_batch > 0 and four - two == 2 * per_batch
    assert per_batch <= 20, f"{per_batch} queries per batch of 20 rows"
