"""Grade schemes: the seeded defaults."""

from django.db import transaction

from accounts.models import Disease
from grading.models import GradeOption, GradeScheme
from grading.seed_data import seed


@transaction.atomic
def schemes_ensure() -> None:
    """Create the default schemes that do not exist (idempotent; an existing scheme is never changed)."""
    seed(Disease, GradeScheme, GradeOption)
