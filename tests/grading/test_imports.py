"""Bulk import of grades made elsewhere (resident, resident2, AI), and the reference consensus service."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Disease, Role
from common.api import ServiceError
from grading import selectors, services
from grading.models import AIModel, Consensus, Grade, GradingTask


@pytest.fixture
def dr():
    return Disease.objects.get(code="DR")


def rows_for(images, scheme, values, **extra):
    out = []
    for image, value in zip(images, values, strict=True):
        option = selectors.option_match(scheme, value)
        out.append({"image_id": str(image.pk), "option_id": option.pk if option else None, "raw_value": value, **extra})
    return out


def test_resident_import_fills_the_primary_slot(queued_image, icdr, dr, resident):
    images = [queued_image(is_pregraded=True) for _ in range(3)]
    counts = services.grades_import_bulk(
        rows=rows_for(images, icdr, ["Mild", "2.0", "-"]),
        grader_type="resident",
        disease=dr,
        scheme=icdr,
        grader=resident,
    )
    assert counts == {
        "rows": 3,
        "imported": 2,
        "no_grade": 1,
        "superseded": 0,
        "slots_filled": 2,
        "consensus_recorded": 0,
        "tasks_created": 0,
        "duplicate_rows": 0,
    }
    grades = {g.image_id: g for g in Grade.objects.filter(grader_type="resident")}
    assert grades[images[0].pk].option.code == "1" and grades[images[0].pk].raw_value == "Mild"
    assert grades[images[2].pk].option is None  # "-" is "no grade", not an error
    primary = GradingTask.objects.get(image=images[0], slot="primary")
    assert (primary.status, primary.completed_by_id) == ("done", resident.pk)
    assert GradingTask.objects.get(image=images[2], slot="primary").status == "pending"
    # The imported resident grade counts as the primary: the ophthalmologist's queue finishes these images first.
    images[0].refresh_from_db()
    assert images[0].grading_status == "in_progress"
    assert GradingTask.objects.get(image=images[0], slot="secondary").priority == 1


def test_resident2_import_fills_the_secondary_and_records_the_reference(queued_image, icdr, dr, ophthalmologist):
    image = queued_image(is_pregraded=True)
    counts = services.grades_import_bulk(
        rows=rows_for([image], icdr, ["Severe NPDR"]),
        grader_type="resident2",
        disease=dr,
        scheme=icdr,
        grader=ophthalmologist,
    )
    assert counts["slots_filled"] == 1 and counts["consensus_recorded"] == 1
    record = Consensus.objects.get(image=image, is_current=True)
    assert (record.method, record.option.code, record.decided_by_id) == ("imported_reference", "3", ophthalmologist.pk)
    assert [g.grader_type for g in record.grades.all()] == ["resident2"]
    image.refresh_from_db()
    assert image.grading_status == "graded"
    assert GradingTask.objects.get(image=image, slot="secondary").status == "done"


def test_resident2_reference_wins_over_a_pending_arbitration(
    queued_image, icdr, dr, resident, ophthalmologist, make_user, lab_unit
):
    image = queued_image(is_pregraded=True)
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="0")
    task = services.task_next(user=ophthalmologist, disease="DR")
    services.grade_submit(user=ophthalmologist, task_id=task.pk, option="4")
    assert GradingTask.objects.get(image=image, slot="arbitration").status == "pending"
    senior = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
    services.grades_import_bulk(
        rows=rows_for([image], icdr, ["PDR"]), grader_type="resident2", disease=dr, scheme=icdr, grader=senior
    )
    assert GradingTask.objects.get(image=image, slot="arbitration").status == "cancelled"
    assert Consensus.objects.get(image=image, is_current=True).method == "imported_reference"


def test_reimport_supersedes_the_same_grader_type_only(queued_image, icdr, dr, resident):
    image = queued_image(is_pregraded=True)
    model_a = AIModel.objects.create(name="Medios", version="2.1")
    model_b = AIModel.objects.create(name="Medios", version="3.0")
    ai = {"grader_type": "ai", "disease": dr, "scheme": icdr}
    services.grades_import_bulk(rows=rows_for([image], icdr, ["1"], probability=0.2), ai_model=model_a, **ai)
    services.grades_import_bulk(rows=rows_for([image], icdr, ["2"], probability=0.7), ai_model=model_b, **ai)
    counts = services.grades_import_bulk(rows=rows_for([image], icdr, ["3"], probability="0.9"), ai_model=model_a, **ai)
    assert counts["superseded"] == 1 and counts["slots_filled"] == 0
    current = {g.ai_model.version: (g.option.code, g.probability) for g in Grade.objects.filter(is_current=True)}
    assert current == {"2.1": ("3", 0.9), "3.0": ("2", 0.7)}
    old = Grade.objects.get(ai_model=model_a, is_current=False)
    assert old.superseded_by.option.code == "3"
    # AI grades never touch the human slots or the consensus.
    assert not GradingTask.objects.filter(image=image, status="done").exists()
    assert not Consensus.objects.exists()
    # A resident re-import replaces the grade that filled the slot, and the slot stays filled by it.
    services.grades_import_bulk(
        rows=rows_for([image], icdr, ["1"]), grader_type="resident", disease=dr, scheme=icdr, grader=resident
    )
    services.grades_import_bulk(
        rows=rows_for([image], icdr, ["2"]), grader_type="resident", disease=dr, scheme=icdr, grader=resident
    )
    primary = GradingTask.objects.get(image=image, slot="primary")
    assert Grade.objects.get(task=primary, is_current=True).option.code == "2"
    assert Grade.objects.filter(task=primary).count() == 2


def test_tasks_are_created_for_images_without_them(make_image, icdr, dr, resident):
    image = make_image(is_pregraded=True)
    counts = services.grades_import_bulk(
        rows=rows_for([image], icdr, ["0"]), grader_type="resident", disease=dr, scheme=icdr, grader=resident
    )
    assert counts["tasks_created"] == 2 and counts["slots_filled"] == 1


def test_ai_import_creates_missing_tasks_and_leaves_the_grading_state_alone(
    make_image, queued_image, icdr, dr, resident
):
    fresh = make_image(is_pregraded=True)  # no task at all
    half = make_image(is_pregraded=True)  # only its primary task
    services.grading_tasks_create_bulk(images=[half], disease=dr)
    GradingTask.objects.filter(image=half, slot="secondary").delete()
    started = queued_image(is_pregraded=True)  # all its tasks, the primary graded
    services.grades_import_bulk(
        rows=rows_for([started], icdr, ["1"]), grader_type="resident", disease=dr, scheme=icdr, grader=resident
    )
    tasks_before = list(GradingTask.objects.filter(image=started).order_by("id").values())
    model = AIModel.objects.create(name="Medios", version="2.1")
    images = [fresh, half, started]
    rows = rows_for(images, icdr, ["PDR", "-", "2"], probability=0.25, remarks="auto")
    counts = services.grades_import_bulk(rows=rows, grader_type="ai", disease=dr, scheme=icdr, ai_model=model)
    assert counts["tasks_created"] == 3 and (counts["imported"], counts["no_grade"]) == (2, 1)
    assert counts["slots_filled"] == 0 and counts["superseded"] == 0
    # The new tasks were evaluated like any new task; the image that had its tasks kept them untouched.
    for image in (fresh, half):
        image.refresh_from_db()
        assert image.grading_status == "awaiting"
        assert sorted(GradingTask.objects.filter(image=image).values_list("slot", flat=True)) == [
            "primary",
            "secondary",
        ]
    assert list(GradingTask.objects.filter(image=started).order_by("id").values()) == tasks_before
    started.refresh_from_db()
    assert started.grading_status == "in_progress"
    # Every column reads back as written.
    grade = Grade.objects.get(image=fresh, grader_type="ai")
    assert (grade.option.code, grade.raw_value, grade.remarks, grade.probability) == ("4", "PDR", "auto", 0.25)
    assert (grade.disease_id, grade.scheme_id, grade.ai_model_id, grade.grader_id) == (dr.pk, icdr.pk, model.pk, None)
    assert grade.is_current and grade.task_id is None and grade.supersedes_id is None
    assert grade.created_at.tzinfo is not None and abs((timezone.now() - grade.created_at).total_seconds()) < 60
    assert Grade.objects.get(image=half, grader_type="ai").option is None
    again = services.grades_import_bulk(
        rows=rows_for([fresh], icdr, ["0"]), grader_type="ai", disease=dr, scheme=icdr, ai_model=model
    )
    assert again["superseded"] == 1 and again["tasks_created"] == 0
    assert Grade.objects.get(image=fresh, ai_model=model, is_current=True).supersedes_id == grade.pk


def test_ai_import_queries_are_constant_per_batch(make_image, icdr, dr):
    model = AIModel.objects.create(name="Medios", version="2.1")

    def queries(count: int) -> int:
        # Fresh images without tasks, so every batch does the same work (tasks created and evaluated).
        images = [make_image(is_pregraded=True) for _ in range(count)]
        with CaptureQueriesContext(connection) as ctx:
            services.grades_import_bulk(
                rows=rows_for(images, icdr, ["1"] * count),
                grader_type="ai",
                disease=dr,
                scheme=icdr,
                ai_model=model,
                batch_size=5,
            )
        return len(ctx)

    one, three = queries(5), queries(15)
    per_batch = (three - one) // 2
    # Once: the disease's active scheme; each batch the same statements whatever its size.
    assert one == 1 + per_batch and three == 1 + 3 * per_batch


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"image_id": "not-an-id", "option_id": None}, "Row 2: 'not-an-id' is not an image id."),
        (
            {"image_id": "00000000-0000-0000-0000-000000000000", "option_id": None},
            "Row 2: image '00000000-0000-0000-0000-000000000000' does not exist.",
        ),
        ({"image_id": "IMAGE", "option_id": -5}, "Row 2: option -5 is not an option of ICDR diabetic retinopathy."),
        ({"image_id": "IMAGE", "option_id": None, "probability": 1.5}, "Row 2: probability 1.5 is outside 0 to 1."),
        (
            {"image_id": "IMAGE", "option_id": None, "probability": "high"},
            "Row 2: probability 'high' is not a number (expected 0 to 1).",
        ),
        ({"image_id": "", "option_id": None}, "Row 2: no image."),
    ],
)
def test_a_bad_row_refuses_the_whole_import(row, message, queued_image, icdr, dr, resident):
    good, other = queued_image(), queued_image()
    row = {**row, "image_id": str(other.pk) if row["image_id"] == "IMAGE" else row["image_id"]}
    rows = [*rows_for([good], icdr, ["1"]), row]
    with pytest.raises(ServiceError) as exc:
        services.grades_import_bulk(rows=rows, grader_type="resident", disease=dr, scheme=icdr, grader=resident)
    assert exc.value.message == f"1 row(s) refused; nothing was imported. {message}"
    assert exc.value.extra["errors"] == [message]
    assert not Grade.objects.exists()
    assert not GradingTask.objects.filter(status="done").exists()


def test_import_arguments_are_checked(queued_image, icdr, dr, resident, make_user, lab_unit):
    image = queued_image()
    rows = rows_for([image], icdr, ["1"])
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    with pytest.raises(ServiceError, match=r"Unknown grader type 'primary': use resident, resident2 or ai\."):
        services.grades_import_bulk(rows=rows, grader_type="primary", disease=dr, scheme=icdr)
    with pytest.raises(ServiceError, match="AI grades need an AI model"):
        services.grades_import_bulk(rows=rows, grader_type="ai", disease=dr, scheme=icdr)
    with pytest.raises(ServiceError, match="cannot be the resident2 grader: that needs the ophthalmologist role"):
        services.grades_import_bulk(rows=rows, grader_type="resident2", disease=dr, scheme=icdr, grader=resident)
    with pytest.raises(ServiceError, match="ICDR diabetic retinopathy is not a scheme for Glaucoma"):
        services.grades_import_bulk(rows=rows, grader_type="resident", disease=glaucoma, scheme=icdr, grader=resident)
    assert not Grade.objects.exists()


def test_repeated_image_counts_once(queued_image, icdr, dr, resident):
    image = queued_image()
    rows = rows_for([image, image], icdr, ["1", "2"])
    counts = services.grades_import_bulk(rows=rows, grader_type="resident", disease=dr, scheme=icdr, grader=resident)
    assert counts["duplicate_rows"] == 1 and counts["imported"] == 1
    assert Grade.objects.get().option.code == "2"


def _import_queries(images, icdr, dr, grader, grader_type, batch_size):
    rows = rows_for(images, icdr, ["1"] * len(images))
    with CaptureQueriesContext(connection) as ctx:
        services.grades_import_bulk(
            rows=rows, grader_type=grader_type, disease=dr, scheme=icdr, grader=grader, batch_size=batch_size
        )
    return len(ctx)


@pytest.mark.parametrize(("grader_type", "per_batch"), [("resident", 10), ("resident2", 15)])
def test_queries_are_constant_per_batch(grader_type, per_batch, queued_image, icdr, dr, ophthalmologist):
    few = [queued_image() for _ in range(3)]
    many = [queued_image() for _ in range(12)]
    ophthalmologist.__dict__.pop("_access_roles", None)
    one_batch = _import_queries(few, icdr, dr, ophthalmologist, grader_type, batch_size=5)
    ophthalmologist.__dict__.pop("_access_roles", None)
    three_batches = _import_queries(many, icdr, dr, ophthalmologist, grader_type, batch_size=5)
    # Once: the grader's roles and the scheme's options, the disease's active scheme. Each batch: one image count to
    # validate, then the same writes whatever its size (resident2 adds the reference consensus), in the caller's
    # transaction (no savepoint of its own). These images have their tasks: none is created.
    assert one_batch == 2 + per_batch
    assert three_batches == 2 + 3 * per_batch


def test_reference_service_supersedes_and_keeps_history(queued_image, icdr, dr, admin_user):
    image = queued_image()
    first = services.consensus_record_reference(image=image, disease=dr, option=selectors.option_match(icdr, "1"))
    second = services.consensus_record_reference(
        image=image, disease=dr, option=selectors.option_match(icdr, "2"), user=admin_user
    )
    first.refresh_from_db()
    assert not first.is_current and second.is_current and second.supersedes_id == first.pk
    assert second.method == "imported_reference" and second.decided_by_id == admin_user.pk
    image.refresh_from_db()
    assert image.grading_status == "graded"
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    with pytest.raises(ServiceError, match="not a scheme for Glaucoma"):
        services.consensus_record_reference(image=image, disease=glaucoma, option=selectors.option_match(icdr, "1"))


def test_imported_grades_are_written_with_every_column_of_the_model():
    """The bulk write names its columns; a column added to Grade must be added there too (with the value Django
    would write), or imported grades would miss it."""
    from grading.services import imports

    columns = {f.name for f in Grade._meta.concrete_fields if not f.primary_key}
    assert set(imports.INSERT_FIELDS) == columns


def test_the_context_grades_share_is_protected_by_the_application(queued_image, icdr, dr, data_manager):
    """Disease, scheme, AI model and import job carry no database foreign key on grades (see the model): deleting
    them through the application is refused (PROTECT) or clears the grades' reference (SET_NULL)."""
    from django.db.models import ProtectedError

    from jobs.models import Job

    image = queued_image(is_pregraded=True)
    model = AIModel.objects.create(name="Guarded", version="1")
    job = Job.objects.create(kind="grade_import", created_by=data_manager)
    services.grades_import_bulk(
        rows=rows_for([image], icdr, ["2"]), grader_type="ai", disease=dr, scheme=icdr, ai_model=model, import_job=job
    )
    for referenced in (model, icdr, dr):
        with pytest.raises(ProtectedError):
            referenced.delete()
    job.delete()
    grade = Grade.objects.get(image=image)
    assert grade.import_job_id is None and grade.ai_model_id == model.pk and grade.scheme_id == icdr.pk
