"""The one place where ZIP ingestion takes photographs back out of grading (undo of a verification).

Grading offers ``grading_tasks_create`` to put an image into its queues but no counterpart yet; until it does, this
module removes the tasks of images nobody has graded and resets their grading status, under the same conditions the
undo checks (no grade, status "not queued" or "awaiting").
"""

from __future__ import annotations

from uploads.models import GradingStatus
from uploads.services import image_set_grading_status


def grading_withdraw(*, image_ids) -> bool:
    """Remove the grading tasks of these images if none of them has a grade; ``False`` (nothing changed) otherwise.

    Runs inside the caller's transaction, which holds the images' rows locked.
    """
    from grading.models import Grade, GradingTask

    image_ids = list(image_ids)
    if not image_ids:
        return True
    if Grade.objects.filter(image_id__in=image_ids).exists():
        return False
    tasks = GradingTask.objects.select_for_update().filter(image_id__in=image_ids)
    list(tasks.values_list("pk", flat=True))  # lock them before deleting (PostgreSQL)
    tasks.delete()
    image_set_grading_status(image_ids=image_ids, status=GradingStatus.NOT_QUEUED)
    return True
