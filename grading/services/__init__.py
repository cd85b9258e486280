"""Writes of the grading app. Other apps call these names (stable contracts):

- ``grading_tasks_create(*, image, diseases=None)``: tasks of an image when it becomes ready for grading.
- ``consensus_record_reference(*, image, disease, option, grade=None, user=None)``: a reference consensus.
- ``grades_import_bulk(*, rows, grader_type, disease, scheme, grader=None, ai_model=None, import_job=None)``.
"""

from grading.services.grades import GradeResult, consensus_record_reference, grade_submit
from grading.services.imports import grades_import_bulk
from grading.services.schemes import schemes_ensure
from grading.services.state import evaluate as grading_state_update
from grading.services.tasks import (
    grading_tasks_create,
    grading_tasks_create_bulk,
    skips_clear,
    task_lease_renew,
    task_next,
    task_skip,
)

__all__ = [
    "GradeResult",
    "consensus_record_reference",
    "grade_submit",
    "grades_import_bulk",
    "grading_state_update",
    "grading_tasks_create",
    "grading_tasks_create_bulk",
    "schemes_ensure",
    "skips_clear",
    "task_lease_renew",
    "task_next",
    "task_skip",
]
