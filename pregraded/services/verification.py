"""Verification records of pre-graded images: created when the image is stored, updated when grades arrive."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts import access
from common.api import Forbidden
from grading.models import Grade
from pregraded.models import PregradedVerification
from uploads.models import Image

Status = PregradedVerification.Status
FLAG_OF = {"resident": "has_resident", "resident2": "has_resident2", "ai": "has_ai"}


def verification_ensure(*, image) -> PregradedVerification | None:
    """The verification record of a pre-graded image (created once; idempotent). None for other images."""
    if not image.is_pregraded:
        return None
    record, _ = PregradedVerification.objects.get_or_create(image_id=image.pk)
    return record


def verifications_mark_imported(*, grade_import, job) -> None:
    """Note on the records of the images this import's job graded that grades of its type arrived: three statements
    whatever the size of the import (records are created for pre-graded images without one, e.g. images stored
    before this app). New grades reopen a verified image. Records that already say so are left as they are (another
    AI model's grades for the same images change nothing here, and rewriting 10,000 rows costs more than the grades).
    """
    flag = FLAG_OF[grade_import.grader_type]
    graded = Grade.objects.filter(import_job=job).values("image_id")
    PregradedVerification.objects.filter(image_id__in=graded).exclude(
        status=Status.GRADES_IMPORTED, **{flag: True}
    ).update(status=Status.GRADES_IMPORTED, updated_at=timezone.now(), **{flag: True})
    missing = Image.objects.filter(pk__in=graded, is_pregraded=True, pregraded_verification__isnull=True)
    PregradedVerification.objects.bulk_create(
        [
            PregradedVerification(image_id=image_id, status=Status.GRADES_IMPORTED, **{flag: True})
            for image_id in missing.values_list("pk", flat=True)
        ],
        ignore_conflicts=True,  # a record created meanwhile by the upload's receiver is just as good
    )


@transaction.atomic
def verification_confirm(*, user, image) -> PregradedVerification:
    """A data manager confirms the image and its imported grades are consistent (ready for review)."""
    if not access.can(user, "import_grades") or not access.can_use_lab_unit(user, image.lab_unit_id):
        raise Forbidden("Only data managers and administrators of the image's lab unit can verify pre-graded images.")
    record, _ = PregradedVerification.objects.select_for_update().get_or_create(image_id=image.pk)
    record.status = Status.VERIFIED
    record.verified_by = user
    record.verified_at = timezone.now()
    record.save(update_fields=["status", "verified_by", "verified_at", "updated_at"])
    return record
