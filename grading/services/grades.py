"""Grades from the queues: submit (or revise) the grade of a leased task, and record a reference consensus."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from accounts import access
from common.api import Conflict, Forbidden, ServiceError
from grading import selectors
from grading.models import Consensus, ConsensusMethod, Grade, GradeOption, GradingTask, Slot
from grading.services import state
from grading.services.tasks import _expired_message, lease_seconds

MAX_REMARKS = 2000
MAX_SECONDS = 24 * 3600

SLOT_ACTION = {Slot.PRIMARY: "grade", Slot.SECONDARY: "grade_secondary", Slot.ARBITRATION: "arbitrate"}
SLOT_ROLES = {
    Slot.PRIMARY: "residents and ophthalmologists",
    Slot.SECONDARY: "ophthalmologists",
    Slot.ARBITRATION: "ophthalmologists",
}


@dataclass
class GradeResult:
    grade: Grade
    consensus: Consensus | None
    arbitration_queued: bool
    revised: bool


def _option_for(task: GradingTask, value) -> GradeOption:
    allowed = selectors.options_offered(task.scheme)
    codes = ", ".join(o.code for o in allowed)
    if value is None or not str(value).strip():
        raise ServiceError(f"Choose an option: one of {codes} ({task.scheme.name}).")
    option = selectors.option_code_lookup(task.scheme, value)
    if option is None:
        raise ServiceError(f"Unknown option {str(value)[:40]!r} for {task.scheme.name}. Allowed: {codes}.")
    if option.retired:
        raise ServiceError(f"Option {option.code!r} is retired and takes no new grades. Allowed: {codes}.")
    return option


def _seconds(value, task: GradingTask, now) -> int | None:
    if value not in (None, ""):
        try:
            seconds = int(float(value))
        except (TypeError, ValueError):
            raise ServiceError("seconds_spent must be a whole number of seconds.") from None
        if not 0 <= seconds <= MAX_SECONDS:
            raise ServiceError(f"seconds_spent must be between 0 and {MAX_SECONDS}.")
        return seconds
    if task.leased_at is not None:
        return max(0, min(int((now - task.leased_at).total_seconds()), lease_seconds()))
    return None


def grade_submit(*, user, task_id, option, remarks: str = "", seconds_spent=None) -> GradeResult:
    """Record the user's grade for a task they hold, or revise their own grade before the next stage starts.

    Refused, with nothing written: a task outside the user's lab units (404); a slot their role does not allow; a
    task leased to someone else, not leased to them, or whose lease expired; a second slot of an image they graded;
    an arbitration by someone who graded the image; an option outside the scheme. On success the image's consensus,
    arbitration and status are brought up to date in the same transaction.
    """
    remarks = (remarks or "").strip()
    if len(remarks) > MAX_REMARKS:
        raise ServiceError(f"Remarks are too long ({len(remarks)} characters; at most {MAX_REMARKS}).")
    found = selectors.task_get(user, task_id)  # 404 outside the user's lab units
    with transaction.atomic():
        tasks = state.lock_tasks([found.image_id])
        task = next(t for t in tasks if t.pk == found.pk)
        task.scheme = found.scheme  # with its prefetched options
        now = timezone.now()
        if not access.can(user, SLOT_ACTION[task.slot]):
            raise Forbidden(
                f"Your role does not allow grading the {task.get_slot_display().lower()} slot "
                f"({SLOT_ROLES[task.slot]} only)."
            )
        previous = None
        siblings = [t for t in tasks if t.disease_id == task.disease_id and t.pk != task.pk]
        if task.status == GradingTask.Status.DONE:
            if task.completed_by_id != user.pk:
                raise Conflict("This task was already graded by another grader; it cannot take your grade.")
            if task.slot != Slot.ARBITRATION and any(
                t.slot == Slot.ARBITRATION or t.status == GradingTask.Status.DONE for t in siblings
            ):
                raise Conflict(
                    "The next stage of this image's grading has started (both independent grades are in), so your "
                    "grade can no longer be revised."
                )
            previous = Grade.objects.filter(task=task, is_current=True).first()
        elif task.status == GradingTask.Status.CANCELLED:
            raise Conflict("This task was cancelled (the image's grading was decided otherwise); nothing to grade.")
        elif task.leased_to_id != user.pk:
            if task.leased_to_id is not None and task.lease_expires_at and task.lease_expires_at > now:
                raise Conflict("This task is leased to another grader. Ask for your next task instead.")
            raise Conflict("This task is not leased to you. Ask for your next task first (POST /api/grading/next).")
        elif task.lease_expires_at is None or task.lease_expires_at <= now:
            raise Conflict(_expired_message(task))

        earlier = Grade.objects.filter(image_id=task.image_id, disease_id=task.disease_id, grader_id=user.pk).exclude(
            task=task
        )
        earlier_slot = earlier.values_list("grader_type", flat=True).first()
        if earlier_slot is not None:
            if task.slot == Slot.ARBITRATION:
                raise Forbidden(
                    "You graded this image, so you cannot arbitrate it: arbitration must come from an "
                    "ophthalmologist who graded neither slot."
                )
            raise Conflict(
                f"You already graded this image ({earlier_slot} grade); its {task.get_slot_display().lower()} grade "
                "must come from another grader."
            )
        chosen = _option_for(task, option)
        seconds = _seconds(seconds_spent, task, now)

        if previous is not None:
            Grade.objects.filter(pk=previous.pk).update(is_current=False)
        grade = Grade.objects.create(
            image_id=task.image_id,
            disease_id=task.disease_id,
            scheme=task.scheme,
            option=chosen,
            raw_value=chosen.code,
            grader_type=task.slot,
            grader=user,
            task=task,
            remarks=remarks,
            seconds_spent=seconds,
            supersedes=previous,
        )
        if task.status != GradingTask.Status.DONE:
            GradingTask.objects.filter(pk=task.pk).update(
                status=GradingTask.Status.DONE,
                completed_by=user,
                completed_at=now,
                leased_to=None,
                lease_expires_at=None,
            )
            task.status, task.completed_by_id, task.leased_to_id = GradingTask.Status.DONE, user.pk, None
        outcome = state.evaluate([task.image_id], tasks=tasks).get((task.image_id, task.disease_id))
    return GradeResult(
        grade=grade,
        consensus=outcome.consensus if outcome else None,
        arbitration_queued=bool(outcome and outcome.arbitration_queued),
        revised=previous is not None,
    )


@transaction.atomic
def consensus_record_reference(
    *, image, disease, option: GradeOption, grade: Grade | None = None, user=None
) -> Consensus:
    """Record a reference consensus from outside the queues (method "imported reference", e.g. a resident2 import).

    It supersedes the image's current consensus for the option's scheme (kept in history) and cancels a pending
    arbitration of that scheme: the reference decides."""
    scheme = option.scheme
    if scheme.disease_id not in (None, disease.pk):
        raise ServiceError(
            f"Option {option.code!r} belongs to {scheme.name}, which is not a scheme for {disease.name}."
        )
    if grade is not None and (grade.image_id != image.pk or grade.scheme_id != scheme.pk):
        raise ServiceError("The grade given as the source of the reference is of another image or scheme.")
    tasks = state.lock_tasks([image.pk])
    previous = (
        Consensus.objects.select_for_update()
        .filter(image=image, disease=disease, scheme=scheme, is_current=True)
        .first()
    )
    if previous is not None:
        Consensus.objects.filter(pk=previous.pk).update(is_current=False)
    record = Consensus.objects.create(
        image=image,
        disease=disease,
        scheme=scheme,
        option=option,
        method=ConsensusMethod.IMPORTED_REFERENCE,
        decided_by=user,
        supersedes=previous,
    )
    if grade is not None:
        record.grades.add(grade)
    state.evaluate([image.pk], tasks=tasks)
    return record
