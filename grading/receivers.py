"""Signal receivers: how grading learns about images without uploads importing grading."""

import logging

from grading import services

log = logging.getLogger(__name__)


def image_ready(sender, image, **kwargs) -> None:
    """An image was stored and may be graded: create its grading tasks.

    Sent after the image's transaction committed. A failure here must not undo a stored upload, so it is logged;
    ``manage.py grading_backfill`` creates the tasks of any image left without them."""
    try:
        services.grading_tasks_create(image=image)
    except Exception:
        log.exception("Could not create grading tasks for image %s", image.pk)
