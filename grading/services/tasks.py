"""Grading tasks: creation when an image becomes ready for grading, and the queues (next, skip, lease renewal)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from accounts import access
from accounts.models import Disease, User
from common.api import Conflict, Forbidden, ServiceError
from grading import selectors
from grading.models import Grade, GradingSkip, GradingTask, Slot
from grading.services import state

log = logging.getLogger(__name__)

MSG_NO_ROLE = "Your role does not allow grading: grading queues are for residents and ophthalmologists."
MSG_NO_LAB_UNIT = "You are not assigned to any lab unit, so no grading task can reach you: ask an administrator."
MSG_UNKNOWN_DISEASE = "Unknown disease {value!r}. Use one of: {allowed} (code or id, see /api/reference/)."
MSG_NO_SCHEME = "{disease} has no active grade scheme, so it has no grading queue: ask an administrator."


def lease_seconds() -> int:
    return max(30, int(settings.GRADING_LEASE_SECONDS))


def disease_for_queue(value) -> Disease:
    """Resolve the disease a grader asks for (code or id), with a message listing the allowed values."""
    disease = selectors.disease_resolve(value)
    if disease is None:
        allowed = ", ".join(Disease.objects.order_by("id").values_list("code", flat=True))
        shown = "" if value is None else str(value)[:50]
        raise ServiceError(MSG_UNKNOWN_DISEASE.format(value=shown, allowed=allowed))
    return disease


# --- Creation ------------------------------------------------------------------------------------------------------


def _slots_for(scheme) -> list[str]:
    return [Slot.PRIMARY, Slot.SECONDARY] if scheme.double_grading else [Slot.PRIMARY]


@transaction.atomic
def grading_tasks_create_bulk(*, images, disease: Disease | None = None) -> dict:
    """Create the missing slot tasks of many images for one disease (default: each image's own disease), with the
    active scheme of that disease. Idempotent and safe against concurrent callers; a constant number of queries per
    call. Returns ``{"created": n, "without_scheme": [disease codes]}``."""
    images = list(images)
    if not images:
        return {"created": 0, "without_scheme": []}
    disease_ids = {disease.pk} if disease is not None else {image.disease_id for image in images}
    schemes = selectors.schemes_by_disease(disease_ids)
    existing = set(
        GradingTask.objects.filter(image_id__in=[i.pk for i in images], disease_id__in=disease_ids).values_list(
            "image_id", "disease_id", "slot"
        )
    )
    new = []
    for image in images:
        disease_id = disease.pk if disease is not None else image.disease_id
        scheme = schemes.get(disease_id)
        if scheme is None:
            continue
        for slot in _slots_for(scheme):
            if (image.pk, disease_id, slot) not in existing:
                new.append(
                    GradingTask(
                        image_id=image.pk,
                        disease_id=disease_id,
                        scheme=scheme,
                        lab_unit_id=image.lab_unit_id,
                        slot=slot,
                        queued_at=image.uploaded_at or timezone.now(),
                    )
                )
    if new:
        # ignore_conflicts: a concurrent caller may have created the same slot a moment ago (unique constraint).
        GradingTask.objects.bulk_create(new, ignore_conflicts=True)
    missing = sorted({d for d in disease_ids if d not in schemes})
    if missing:
        log.warning("No active grade scheme for disease ids %s: no grading tasks created", missing)
    return {"created": len(new), "without_scheme": missing}


@transaction.atomic
def grading_tasks_create(*, image, diseases=None) -> list[GradingTask]:
    """The grading tasks of an image (primary and, for double grading, secondary) for each disease (default: the
    image's own), created when missing with the disease's active scheme. Idempotent. Updates the image's grading
    status. A disease without an active scheme gets no tasks."""
    diseases = list(diseases) if diseases else [image.disease]
    for disease in diseases:
        grading_tasks_create_bulk(images=[image], disease=disease)
    tasks = state.lock_tasks([image.pk])
    state.evaluate([image.pk], tasks=tasks)
    wanted = {d.pk for d in diseases}
    return [t for t in tasks if t.disease_id in wanted]


# --- Queue ---------------------------------------------------------------------------------------------------------


def _lease(task: GradingTask, user, now) -> GradingTask:
    task.status = GradingTask.Status.LEASED
    task.leased_to = user
    task.leased_at = now
    task.lease_expires_at = now + timedelta(seconds=lease_seconds())
    GradingTask.objects.filter(pk=task.pk).update(
        status=task.status, leased_to=user, leased_at=now, lease_expires_at=task.lease_expires_at
    )
    return task


def queue_queryset(*, user, disease_id: int, slots, lab_unit_ids, now):
    """Open tasks this user may take, in queue order: arbitration, then the remaining slot of half-graded images,
    then fresh images, oldest first; never a slot of an image the user already graded, never a task they skipped."""
    slots = list(slots)
    # One slot (residents): an equality, so the queue is read from the per-slot index in queue order.
    by_slot = Q(slot=slots[0]) if len(slots) == 1 else Q(slot__in=slots)
    qs = GradingTask.objects.filter(by_slot, disease_id=disease_id, status__in=GradingTask.OPEN).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now)
    )
    if lab_unit_ids is not None:
        qs = qs.filter(lab_unit_id__in=list(lab_unit_ids))
    graded = Grade.objects.filter(image_id=OuterRef("image_id"), disease_id=OuterRef("disease_id"), grader_id=user.pk)
    skipped = GradingSkip.objects.filter(task_id=OuterRef("pk"), user_id=user.pk)
    return qs.exclude(Exists(graded)).exclude(Exists(skipped)).order_by("-priority", "queued_at", "id")


def task_next(*, user, disease) -> GradingTask | None:
    """Lease the next task of a disease's queue to the user, or None when nothing is left for them.

    A grader holds at most one lease per disease: asking again returns (and renews) the task they hold. Exact under
    concurrency: on PostgreSQL the candidate row is taken with FOR UPDATE SKIP LOCKED, so two graders never lease
    the same slot; one grader's concurrent requests are serialised on their user row, so they never hold two slots
    of one image. A constant number of queries.
    """
    slots = selectors.slots_allowed(user)
    if not slots:
        raise Forbidden(MSG_NO_ROLE)
    lab_unit_ids = access.lab_unit_ids(user)
    if lab_unit_ids is not None and not lab_unit_ids:
        raise Forbidden(MSG_NO_LAB_UNIT)
    if not isinstance(disease, Disease):
        disease = disease_for_queue(disease)
    now = timezone.now()
    with transaction.atomic():
        list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk", flat=True))
        held = (
            GradingTask.objects.filter(
                leased_to=user,
                status=GradingTask.Status.LEASED,
                disease_id=disease.pk,
                lease_expires_at__gt=now,
                slot__in=slots,
            )
            .order_by("leased_at", "id")
            .first()
        )
        if held is not None:
            return _lease(held, user, now)
        task = (
            queue_queryset(user=user, disease_id=disease.pk, slots=slots, lab_unit_ids=lab_unit_ids, now=now)
            .select_for_update(skip_locked=True)
            .first()
        )
        if task is None:
            return None
        return _lease(task, user, now)


def _locked_task_of(user, task_id) -> GradingTask:
    """The task (404 outside the user's lab units), locked."""
    task = selectors.task_get(user, task_id)
    return GradingTask.objects.select_for_update(of=("self",)).select_related("scheme").get(pk=task.pk)


@transaction.atomic
def task_skip(*, user, task_id) -> GradingTask:
    """Give a leased task back to the queue; the queue stops offering it to this grader (others still get it)."""
    task = _locked_task_of(user, task_id)
    if task.status not in GradingTask.OPEN or task.leased_to_id != user.pk:
        raise Conflict("You can only skip a task you hold: ask for your next task instead.")
    GradingTask.objects.filter(pk=task.pk).update(
        status=GradingTask.Status.PENDING, leased_to=None, leased_at=None, lease_expires_at=None
    )
    GradingSkip.objects.get_or_create(task=task, user=user)
    task.status, task.leased_to, task.lease_expires_at = GradingTask.Status.PENDING, None, None
    return task


@transaction.atomic
def task_lease_renew(*, user, task_id) -> GradingTask:
    """Extend the user's running lease (the grading page calls this while the grader is active)."""
    task = _locked_task_of(user, task_id)
    now = timezone.now()
    if task.status != GradingTask.Status.LEASED or task.leased_to_id != user.pk:
        raise Conflict("This task is not leased to you any more: ask for your next task.")
    if task.lease_expires_at is None or task.lease_expires_at <= now:
        raise Conflict(_expired_message(task))
    return _lease(task, user, now)


def _expired_message(task: GradingTask) -> str:
    when = timezone.localtime(task.lease_expires_at).strftime("%H:%M:%S") if task.lease_expires_at else "?"
    return (
        f"Your lease on this task expired at {when} and the task went back to the queue; nothing was saved. "
        "Ask for your next task."
    )


@transaction.atomic
def skips_clear(*, user, disease: Disease | None = None) -> int:
    """Put the tasks the user skipped back into their queue."""
    qs = GradingSkip.objects.filter(user=user)
    if disease is not None:
        qs = qs.filter(task__disease=disease)
    deleted, _ = qs.delete()
    return deleted
