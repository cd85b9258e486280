"""Signal receivers: pre-graded images get their verification record when they are stored."""

import logging

from pregraded.services import verification

log = logging.getLogger(__name__)


def image_ready(sender, image, **kwargs) -> None:
    """Sent after the image's transaction committed; a failure here must not undo the stored upload, so it is logged
    (the grade import creates a missing record when grades arrive)."""
    if not image.is_pregraded:
        return
    try:
        verification.verification_ensure(image=image)
    except Exception:
        log.exception("Could not create the verification record of pre-graded image %s", image.pk)
