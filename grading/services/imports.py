"""Grades made elsewhere (resident, resident2 or AI), written in bulk: the pre-graded import app calls this."""

from __future__ import annotations

import math
import uuid

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import Role
from common.api import ServiceError
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
        raw_id = str(row.get("image_id") or "").strip()
        if not raw_id:
            errors.append(f"Row {position}: no image.")
            continue
        try:
            image_id = str(uuid.UUID(raw_id))
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
        probability = _probability(row.get("probability"), position, errors)
        if image_id in cleaned:
            duplicates += 1
        cleaned[image_id] = {
            "image_id": image_id,
            "option": option,
            "raw_value": str(row.get("raw_value") if row.get("raw_value") is not None else "")[:200],
            "remarks": str(row.get("remarks") or "")[:2000],
            "probability": probability,
            "position": position,
        }
    unique = list(cleaned.values())
    found: set[str] = set()
    for chunk in _chunks(unique, batch_size):
        ids = [c["image_id"] for c in chunk]
        found |= {str(pk) for pk in Image.objects.filter(pk__in=ids).values_list("pk", flat=True)}
    for entry in unique:
        if entry["image_id"] not in found:
            errors.append(f"Row {entry['position']}: image {entry['image_id'][:40]!r} does not exist.")
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f" … and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise ServiceError(
            f"{len(errors)} row(s) refused; nothing was imported. " + " ".join(shown) + more, errors=errors
        )
    return unique, duplicates


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
    for chunk in _chunks(entries, batch_size):
        _import_batch(
            chunk,
            counts=counts,
            grader_type=grader_type,
            disease=disease,
            scheme=scheme,
            grader=grader,
            ai_model=ai_model,
            import_job=import_job,
        )
    return counts


@transaction.atomic
def _import_batch(entries, *, counts, grader_type, disease, scheme, grader, ai_model, import_job) -> None:
    now = timezone.now()
    image_ids = [e["image_id"] for e in entries]
    images = list(Image.objects.filter(pk__in=image_ids).only("id", "lab_unit_id", "disease_id", "uploaded_at"))
    counts["tasks_created"] += grading_tasks_create_bulk(images=images, disease=disease)["created"]
    tasks = state.lock_tasks(image_ids)
    slot = SLOT_OF.get(grader_type)
    slot_tasks = {
        str(t.image_id): t for t in tasks if slot is not None and t.disease_id == disease.pk and t.slot == slot
    }

    current = Grade.objects.filter(
        image_id__in=image_ids, disease=disease, scheme=scheme, grader_type=grader_type, is_current=True
    )
    current = current.filter(ai_model=ai_model) if ai_model is not None else current.filter(ai_model__isnull=True)
    previous = {str(g.image_id): g for g in current.only("id", "image_id", "task_id")}
    if previous:
        Grade.objects.filter(pk__in=[g.pk for g in previous.values()]).update(is_current=False)
        counts["superseded"] += len(previous)

    new_grades: list[Grade] = []
    filled: list[GradingTask] = []
    for entry in entries:
        before = previous.get(entry["image_id"])
        task = slot_tasks.get(entry["image_id"])
        link = None
        if task is not None and task.scheme_id == scheme.pk and entry["option"] is not None:
            if task.status in GradingTask.OPEN:
                link = task
                task.status = GradingTask.Status.DONE
                task.completed_by = grader
                task.completed_at = now
                task.leased_to = None
                task.lease_expires_at = None
                filled.append(task)
            elif task.status == GradingTask.Status.DONE and before is not None and before.task_id == task.pk:
                link = task  # a re-import replaces the grade that filled the slot
        new_grades.append(
            Grade(
                image_id=entry["image_id"],
                disease=disease,
                scheme=scheme,
                option=entry["option"],
                raw_value=entry["raw_value"],
                grader_type=grader_type,
                grader=grader,
                ai_model=ai_model,
                task=link,
                remarks=entry["remarks"],
                probability=entry["probability"],
                import_job=import_job,
                supersedes=before,
            )
        )
    created = Grade.objects.bulk_create(new_grades)
    if filled:
        GradingTask.objects.bulk_update(
            filled, ["status", "completed_by", "completed_at", "leased_to", "lease_expires_at"]
        )
    counts["imported"] += sum(1 for g in created if g.option_id is not None)
    counts["no_grade"] += sum(1 for g in created if g.option_id is None)
    counts["slots_filled"] += len(filled)

    if grader_type == GraderType.RESIDENT2:
        graded = [g for g in created if g.option_id is not None]
        if graded:
            old = {
                str(c.image_id): c
                for c in Consensus.objects.filter(
                    image_id__in=[g.image_id for g in graded], disease=disease, scheme=scheme, is_current=True
                ).only("id", "image_id")
            }
            if old:
                Consensus.objects.filter(pk__in=[c.pk for c in old.values()]).update(is_current=False)
            records = Consensus.objects.bulk_create(
                [
                    Consensus(
                        image_id=g.image_id,
                        disease=disease,
                        scheme=scheme,
                        option_id=g.option_id,
                        method=ConsensusMethod.IMPORTED_REFERENCE,
                        decided_by=grader,
                        supersedes=old.get(str(g.image_id)),
                    )
                    for g in graded
                ]
            )
            Through = Consensus.grades.through
            Through.objects.bulk_create(
                [Through(consensus_id=r.pk, grade_id=g.pk) for r, g in zip(records, graded, strict=True)]
            )
            counts["consensus_recorded"] += len(records)
    state.evaluate(image_ids, tasks=tasks)
