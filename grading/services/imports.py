"""Grades made elsewhere (resident, resident2 or AI), written in bulk: the pre-graded import app calls this."""

from __future__ import annotations

import math
import time
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts import access
from accounts.models import Role
from common.api import ServiceError
from common.lookups import InArray
from grading import selectors
from grading.models import Consensus, ConsensusMethod, Grade, GraderType, GradingTask, Slot
from grading.services import state
from grading.services.tasks import grading_tasks_create_bulk
from uploads.models import Image

SLOT_OF = {GraderType.RESIDENT: Slot.PRIMARY, GraderType.RESIDENT2: Slot.SECONDARY}
ROLES_OF = {
    GraderType.RESIDENT: (Role.RESIDENT, Role.OPHTHALMOLOGIST),
    GraderType.RESIDENT2: (Role.OPHTHALMOLOGIST,),
}
MAX_ERRORS_SHOWN = 20
AI_IMPORT_LOCK = 0x46474149  # advisory lock namespace of AI grade imports (the second key is the AI model's id)
# The columns an imported grade is written with (``_insert_grades``); every other column keeps its model default.
INSERT_FIELDS = (
    "image",
    "disease",
    "scheme",
    "option",
    "raw_value",
    "grader_type",
    "grader",
    "ai_model",
    "task",
    "remarks",
    "probability",
    "import_job",
    "seconds_spent",
    "created_at",
    "is_current",
    "supersedes",
)


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _probability(value, position: int, errors: list[str]):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors.append(f"Row {position}: probability {str(value)[:30]!r} is not a number (expected 0 to 1).")
        return None
    if math.isnan(number) or not 0 <= number <= 1:
        errors.append(f"Row {position}: probability {number:g} is outside 0 to 1.")
        return None
    return number


def _validate(*, rows, grader_type, disease, scheme, grader, ai_model, batch_size) -> tuple[list[dict], int]:
    """``(entries, duplicate rows)``: the rows to write, one per image (the last row wins)."""
    if grader_type not in SLOT_OF and grader_type != GraderType.AI:
        raise ServiceError(f"Unknown grader type {grader_type!r}: use resident, resident2 or ai.")
    if grader_type == GraderType.AI:
        if ai_model is None:
            raise ServiceError("AI grades need an AI model (name and version).")
    else:
        if ai_model is not None:
            raise ServiceError("Only AI grades carry an AI model.")
        if grader is not None and not access.has_role(grader, *ROLES_OF[grader_type]):
            needed = " or ".join(str(r.label).lower() for r in ROLES_OF[grader_type])
            raise ServiceError(f"{grader.username} cannot be the {grader_type} grader: that needs the {needed} role.")
    if scheme.disease_id not in (None, disease.pk):
        raise ServiceError(f"{scheme.name} is not a scheme for {disease.name}.")
    options = {o.pk: o for o in scheme.options.all()}
    errors: list[str] = []
    cleaned: dict[str, dict] = {}
    duplicates = 0
    for position, row in enumerate(rows, start=1):
        image_id = row.get("image_id")
        if not isinstance(image_id, uuid.UUID):  # ids as text (API callers); the import job gives UUIDs
            raw_id = str(image_id or "").strip()
            if not raw_id:
                errors.append(f"Row {position}: no image.")
                continue
            try:
                image_id = uuid.UUID(raw_id)
            except ValueError:
                errors.append(f"Row {position}: {raw_id[:40]!r} is not an image id.")
                continue
        option_id = row.get("option_id")
        option = None
        if option_id is not None:
            option = options.get(option_id if isinstance(option_id, int) else _int(option_id))
            if option is None:
                errors.append(f"Row {position}: option {option_id!r} is not an option of {scheme.name}.")
                continue
            if option.retired:
                errors.append(f"Row {position}: option {option.code!r} of {scheme.name} is retired.")
                continue
        probability = row.get("probability")
        if probability is not None and (type(probability) is not float or not 0 <= probability <= 1):
            probability = _probability(probability, position, errors)  # text, or a number to check (NaN too)
        raw_value = row.get("raw_value")
        if type(raw_value) is not str:
            raw_value = "" if raw_value is None else str(raw_value)
        remarks = row.get("remarks")
        if type(remarks) is not str:
            remarks = str(remarks or "")
        if image_id in cleaned:
            duplicates += 1
        cleaned[image_id] = {
            "image_id": image_id,
            "option": option,
            "raw_value": raw_value[:200],
            "remarks": remarks[:2000],
            "probability": probability,
            "position": position,
        }
    unique = list(cleaned.values())
    missing = _missing_images(unique, batch_size)
    for entry in unique:
        if entry["image_id"] in missing:
            errors.append(f"Row {entry['position']}: image {str(entry['image_id'])!r} does not exist.")
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f" … and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise ServiceError(
            f"{len(errors)} row(s) refused; nothing was imported. " + " ".join(shown) + more, errors=errors
        )
    return unique, duplicates


def _missing_images(entries: list[dict], batch_size: int) -> set[uuid.UUID]:
    """The image ids of these entries that match no image: one count per batch (the rows are read only when some are
    missing). Image ids are UUID objects throughout (strings would be parsed again for every query)."""
    missing: set[uuid.UUID] = set()
    for chunk in _chunks(entries, batch_size):
        ids = [c["image_id"] for c in chunk]
        found = Image.objects.filter(InArray(F("id"), ids))
        if found.count() != len(ids):
            missing |= set(ids) - set(found.values_list("pk", flat=True))
    return missing


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def grades_import_bulk(
    *, rows, grader_type: str, disease, scheme, grader=None, ai_model=None, import_job=None, batch_size=None
) -> dict:
    """Write imported grades in batches (one transaction and a constant number of queries per batch).

    ``rows``: dicts ``{"image_id", "option_id" (None = no grade), "raw_value", "remarks", "probability"}``. Every row
    is checked first; if any is refused (unknown image or option, probability outside 0 to 1), nothing is written and
    the ServiceError lists the rows. Per image, the new grade supersedes the current grade of the same grader type
    (and AI model). Human grades fill their queue slot when it is open (resident → primary, resident2 → secondary)
    and scheme matches; resident2 grades also record an imported-reference consensus. Grading tasks are created for
    images that have none. A row repeated for the same image counts once (the last one).
    """
    batch_size = batch_size or settings.GRADING_IMPORT_BATCH_SIZE
    rows = list(rows)
    entries, duplicates = _validate(
        rows=rows,
        grader_type=grader_type,
        disease=disease,
        scheme=scheme,
        grader=grader,
        ai_model=ai_model,
        batch_size=batch_size,
    )
    counts = {
        "rows": len(rows),
        "imported": 0,
        "no_grade": 0,
        "superseded": 0,
        "slots_filled": 0,
        "consensus_recorded": 0,
        "tasks_created": 0,
        "duplicate_rows": duplicates,
    }
    active = selectors.schemes_by_disease([disease.pk]).get(disease.pk)
    # The slots task creation gives an image (none without an active scheme).
    slots = set() if active is None else {Slot.PRIMARY, Slot.SECONDARY} if active.double_grading else {Slot.PRIMARY}
    for chunk in _chunks(entries, batch_size):
        _import_batch(
            chunk,
            slots=slots,
            counts=counts,
            grader_type=grader_type,
            disease=disease,
            scheme=scheme,
            grader=grader,
            ai_model=ai_model,
            import_job=import_job,
        )
    return counts


def _lock_ai_model(ai_model) -> None:
    """Serialise imports of one AI model until the transaction ends, so that two of them supersede one another in turn
    (PostgreSQL advisory lock: one statement, however many images; SQLite serialises writers anyway). AI grades fill
    no task slot, so unlike human grades they need no lock on the images' tasks."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [AI_IMPORT_LOCK, ai_model.pk])


def _lacking_tasks(image_ids: list[uuid.UUID], disease, slots: set[str]) -> list[Image]:
    """The images missing a task in one of these slots for the disease, with what task creation reads of them. One
    count when none is missing (the usual case: an image's upload queued it; a slot has one task per image), a
    second query returning only the images that miss one otherwise."""
    if not slots:
        return []
    present = GradingTask.objects.filter(
        InArray(F("image_id"), image_ids), disease_id=disease.pk, slot__in=slots
    ).count()
    if present == len(image_ids) * len(slots):
        return []
    have = Count("grading_tasks", filter=Q(grading_tasks__disease_id=disease.pk, grading_tasks__slot__in=slots))
    qs = Image.objects.filter(pk__in=image_ids).order_by().annotate(slots_present=have)
    return list(qs.filter(slots_present__lt=len(slots)).only("id", "lab_unit_id", "uploaded_at"))


def _insert_grades(rows: list[tuple]) -> None:
    """Insert grades given as tuples of ``INSERT_FIELDS`` values, already in database form: one COPY on PostgreSQL,
    one prepared statement run for every row elsewhere (one query either way). Model instances and ``bulk_create``
    cost far more per row than the database does, and SQLite would split the rows into statements of 60."""
    if not rows:
        return
    # In image order: the indexes that start with the image (random UUIDs) are then filled page by page, not all
    # over (about a third less time on SQLite once the table holds a few batches).
    rows = sorted(rows, key=lambda row: row[0])
    quote = connection.ops.quote_name
    table = quote(Grade._meta.db_table)
    columns = ", ".join(quote(Grade._meta.get_field(name).column) for name in INSERT_FIELDS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            sql = f"COPY {table} ({columns}) FROM STDIN"
            started = time.monotonic()
            with connection.wrap_database_errors, cursor.cursor.copy(sql) as copy:  # Django's exception types
                for row in rows:
                    copy.write_row(row)
            if connection.queries_logged:  # counted like any other statement (query-count tests, debug toolbar)
                connection.queries_log.append(
                    {"sql": f"{sql} -- {len(rows)} rows", "time": f"{time.monotonic() - started:.3f}"}
                )
        else:
            values = ", ".join(["%s"] * len(INSERT_FIELDS))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({values})", rows)  # noqa: S608 - model's names


def _db(name: str, value):
    """A value as Django would write it to the Grade column ``name`` (UUIDs, datetimes and booleans differ by
    database)."""
    return Grade._meta.get_field(name).get_db_prep_save(value, connection)


# Inside a caller's transaction (a grade import job writes all its batches in one), no savepoint per batch: a failed
# batch fails the whole transaction anyway, and a savepoint makes PostgreSQL's checks of every foreign key of every
# row written under it dearer at commit (each row lock is taken again for the subtransaction).
@transaction.atomic(savepoint=False)
def _import_batch(entries, *, slots, counts, grader_type, disease, scheme, grader, ai_model, import_job) -> None:
    now = timezone.now()
    image_ids = [e["image_id"] for e in entries]

    slot = SLOT_OF.get(grader_type)
    if slot is None:
        # AI grades fill no slot and count in no consensus: the images' grading state cannot change, except for
        # images whose tasks are created here (evaluated below, which locks their tasks).
        _lock_ai_model(ai_model)
    # Only images missing a task go to task creation (usually none: their upload queued them).
    lacking = _lacking_tasks(image_ids, disease, slots)
    if lacking:
        counts["tasks_created"] += grading_tasks_create_bulk(images=lacking, disease=disease)["created"]
    if slot is None:
        tasks = None
        slot_tasks = {}
    else:
        tasks = state.lock_tasks(image_ids)
        slot_tasks = {t.image_id: t for t in tasks if t.disease_id == disease.pk and t.slot == slot}

    current = Grade.objects.filter(
        InArray(F("image_id"), image_ids), disease=disease, scheme=scheme, grader_type=grader_type, is_current=True
    )
    current = current.filter(ai_model=ai_model) if ai_model is not None else current.filter(ai_model__isnull=True)
    previous = {image_id: (pk, task_id) for pk, image_id, task_id in current.values_list("id", "image_id", "task_id")}
    if previous:
        Grade.objects.filter(pk__in=[pk for pk, _ in previous.values()]).update(is_current=False)
        counts["superseded"] += len(previous)

    fixed = {
        name: _db(name, value)
        for name, value in (
            ("disease", disease.pk),
            ("scheme", scheme.pk),
            ("grader_type", grader_type),
            ("grader", grader.pk if grader is not None else None),
            ("ai_model", ai_model.pk if ai_model is not None else None),
            ("import_job", import_job.pk if import_job is not None else None),
            ("created_at", now),
            ("is_current", True),
        )
    }
    # What UUIDField.get_db_prep_value writes (the value itself, or its hex digits without a native UUID type),
    # without Django's per-value layers.
    native_uuid = connection.features.has_native_uuid_field
    rows: list[tuple] = []
    filled: list[GradingTask] = []
    graded: list[tuple[uuid.UUID, int]] = []  # (image_id, option_id) of the grades with an option
    for entry in entries:
        before = previous.get(entry["image_id"])
        task = slot_tasks.get(entry["image_id"])
        option_id = entry["option"].pk if entry["option"] is not None else None
        link = None
        if task is not None and task.scheme_id == scheme.pk and option_id is not None:
            if task.status in GradingTask.OPEN:
                link = task
                task.status = GradingTask.Status.DONE
                task.completed_by = grader
                task.completed_at = now
                task.leased_to = None
                task.lease_expires_at = None
                filled.append(task)
            elif task.status == GradingTask.Status.DONE and before is not None and before[1] == task.pk:
                link = task  # a re-import replaces the grade that filled the slot
        if option_id is not None:
            graded.append((entry["image_id"], option_id))
        rows.append(
            (
                entry["image_id"] if native_uuid else entry["image_id"].hex,
                fixed["disease"],
                fixed["scheme"],
                option_id,
                entry["raw_value"],
                fixed["grader_type"],
                fixed["grader"],
                fixed["ai_model"],
                link.pk if link is not None else None,
                entry["remarks"],
                entry["probability"],
                fixed["import_job"],
                None,
                fixed["created_at"],
                fixed["is_current"],
                before[0] if before is not None else None,
            )
        )
    _insert_grades(rows)
    if filled:
        GradingTask.objects.bulk_update(
            filled, ["status", "completed_by", "completed_at", "leased_to", "lease_expires_at"]
        )
    counts["imported"] += len(graded)
    counts["no_grade"] += len(rows) - len(graded)
    counts["slots_filled"] += len(filled)

    if grader_type == GraderType.RESIDENT2 and graded:
        new_ids = dict(
            Grade.objects.filter(
                image_id__in=[image_id for image_id, _ in graded],
                disease=disease,
                scheme=scheme,
                grader_type=grader_type,
                ai_model__isnull=True,
                is_current=True,
            ).values_list("image_id", "id")
        )
        old = {
            image_id: pk
            for pk, image_id in Consensus.objects.filter(
                image_id__in=[image_id for image_id, _ in graded], disease=disease, scheme=scheme, is_current=True
            ).values_list("id", "image_id")
        }
        if old:
            Consensus.objects.filter(pk__in=list(old.values())).update(is_current=False)
        records = Consensus.objects.bulk_create(
            [
                Consensus(
                    image_id=image_id,
                    disease=disease,
                    scheme=scheme,
                    option_id=option_id,
                    method=ConsensusMethod.IMPORTED_REFERENCE,
                    decided_by=grader,
                    supersedes_id=old.get(image_id),
                )
                for image_id, option_id in graded
            ]
        )
        Through = Consensus.grades.through
        Through.objects.bulk_create(
            [
                Through(consensus_id=r.pk, grade_id=new_ids[image_id])
                for r, (image_id, _) in zip(records, graded, strict=True)
            ]
        )
        counts["consensus_recorded"] += len(records)
    if slot is not None:
        state.evaluate(image_ids, tasks=tasks)
    elif lacking:
        state.evaluate([image.pk for image in lacking])
