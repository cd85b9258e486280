"""Pre-graded images and grade imports: a verification record per pre-graded image, the import of a grade
spreadsheet (with its value-mapping step), and the value mappings users confirmed, remembered per scheme."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class GraderType(models.TextChoices):
    """Who made the grades of an import; the values are ``grading.models.GraderType`` values."""

    RESIDENT = "resident", "Resident"
    RESIDENT2 = "resident2", "Resident2 (ophthalmologist)"
    AI = "ai", "AI"


class PregradedVerification(models.Model):
    """One per pre-graded image: which imported grades it has received, so a data manager can see what is still
    missing and confirm the image is ready for review. Created when the image is stored."""

    class Status(models.TextChoices):
        AWAITING_GRADES = "awaiting_grades", "Awaiting grades"
        GRADES_IMPORTED = "grades_imported", "Grades imported"
        VERIFIED = "verified", "Verified"

    image = models.OneToOneField("uploads.Image", on_delete=models.CASCADE, related_name="pregraded_verification")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING_GRADES)
    has_resident = models.BooleanField(default=False, help_text="A resident grade was imported.")
    has_resident2 = models.BooleanField(default=False, help_text="A resident2 (reference) grade was imported.")
    has_ai = models.BooleanField(default=False, help_text="At least one AI grade was imported.")
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status"], name="pregraded_verif_status")]

    def __str__(self) -> str:
        return f"{self.image_id}: {self.get_status_display()}"


class GradeImport(models.Model):
    """A grade spreadsheet on its way in: read and checked in the request, mapped by the user when some values are
    not recognised, then imported by a job (kind ``grade_import``).

    ``values``: every distinct grade value of the file, ``[{"key", "value", "count", "auto": code | None}]`` (``key``
    is the normalised form, ``value`` the spelling shown, ``auto`` the option the scheme recognised). ``mapping``: the
    decision per key once confirmed, ``{key: {"action": "option" | "no_grade" | "skip", "option": code | None}}``.
    ``summary``: the outcome (imported count, failed rows with row number, image name and reason).
    """

    class Status(models.TextChoices):
        NEEDS_MAPPING = "needs_mapping", "Needs mapping"
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.NEEDS_MAPPING,)
    FINISHED = (Status.DONE, Status.ERROR, Status.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEEDS_MAPPING)
    grader_type = models.CharField(max_length=20, choices=GraderType.choices)
    hospital = models.ForeignKey("accounts.Hospital", on_delete=models.PROTECT, related_name="+")
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.PROTECT, related_name="+")
    disease = models.ForeignKey("accounts.Disease", on_delete=models.PROTECT, related_name="+")
    scheme = models.ForeignKey("grading.GradeScheme", on_delete=models.PROTECT, related_name="+")
    grader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ai_model = models.ForeignKey("grading.AIModel", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    original_name = models.CharField(max_length=255, help_text="The spreadsheet's name as sent (display only).")
    file_format = models.CharField(max_length=10)
    # Generated names in the "staging" storage: the spreadsheet as sent, and the rows read from it. Both are deleted
    # when the import ends (the spreadsheet may hold columns we do not need, such as patient details).
    staged_file = models.CharField(max_length=300, blank=True)
    rows_file = models.CharField(max_length=300, blank=True)
    sheet_name = models.CharField(max_length=100, blank=True)
    header_row = models.PositiveIntegerField(default=1)
    columns = models.JSONField(default=list, blank=True, help_text="The header as found in the file.")
    row_count = models.PositiveIntegerField(default=0)
    no_grade_count = models.PositiveIntegerField(default=0, help_text="Rows whose grade cell is blank or '-'.")
    values = models.JSONField(default=list, blank=True)
    mapping = models.JSONField(default=dict, blank=True)
    review_requested = models.BooleanField(
        default=False, help_text="Stop at the mapping step even when every value was recognised."
    )
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    mapped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["lab_unit", "-created_at"], name="pregraded_import_recent")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(grader_type="ai") & Q(ai_model__isnull=False) & Q(grader__isnull=True))
                | (~Q(grader_type="ai") & Q(ai_model__isnull=True) & Q(grader__isnull=False)),
                name="grade_import_grader_or_ai_model",
                violation_error_message="AI imports name an AI model; resident and resident2 imports name a grader.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_grader_type_display()} grades from {self.original_name}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def grader_label(self) -> str:
        if self.ai_model_id:
            return str(self.ai_model)
        if not self.grader_id:
            return ""
        return self.grader.get_full_name() or self.grader.username


class ValueMapping(models.Model):
    """A user's answer for a grade value no rule recognised, remembered per scheme and suggested first next time."""

    class Action(models.TextChoices):
        OPTION = "option", "Option"
        NO_GRADE = "no_grade", "No grade"
        SKIP = "skip", "Skip these rows"

    scheme = models.ForeignKey("grading.GradeScheme", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200, help_text="The value normalised (case, spaces, punctuation ignored).")
    value = models.CharField(max_length=200, help_text="The value as it was last seen.")
    action = models.CharField(max_length=20, choices=Action.choices)
    option = models.ForeignKey("grading.GradeOption", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scheme_id", "key"]
        constraints = [
            models.UniqueConstraint(fields=["scheme", "key"], name="unique_value_mapping_per_scheme"),
            models.CheckConstraint(
                condition=Q(action="option", option__isnull=False) | (~Q(action="option") & Q(option__isnull=True)),
                name="value_mapping_option_iff_action_option",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.value} → {self.option.code if self.option_id else self.get_action_display()}"
