"""Job handlers of this app: pre-graded image uploads (one item per image, the direct-upload handler) and grade
imports (one item per file)."""

from jobs.models import JobItem
from pregraded.services import imports, runner

PREGRADED_UPLOAD = "pregraded_upload"
GRADE_IMPORT = imports.JOB_KIND


def process_grade_import(item: JobItem) -> dict:
    return runner.grade_import_run(item=item)


def grade_import_rejected(item: JobItem, message: str) -> None:
    runner.grade_import_rejected(item, message)
