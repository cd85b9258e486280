"""Grade schemes, grading tasks (queues), grades with history, consensus.

Nothing here is ever rewritten: a new grade supersedes the current one (which stays, with its timestamp), a new
consensus supersedes the previous one, and options of a scheme in use are retired rather than changed or deleted.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class AgreementRule(models.TextChoices):
    EXACT = "exact", "Exact match"
    REFERRAL = "referral", "Same referral class"
    WITHIN_STEPS = "within_steps", "Within N ordinal steps"


class GradeScheme(models.Model):
    """A grading scale for one disease. The active scheme of a disease is the one its grading queues use."""

    disease = models.ForeignKey(
        "accounts.Disease",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="grade_schemes",
        help_text="Empty for a scheme that applies to any disease (image quality); such a scheme is never a queue's.",
    )
    code = models.SlugField(max_length=40, unique=True, help_text="Stable identifier used by imports and the API.")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    agreement_rule = models.CharField(max_length=20, choices=AgreementRule.choices, default=AgreementRule.EXACT)
    agreement_steps = models.PositiveSmallIntegerField(
        default=1, help_text="For 'within N ordinal steps': the largest ordinal difference that still agrees."
    )
    double_grading = models.BooleanField(
        default=True,
        help_text="Primary and secondary graders grade independently; off: one grade decides (single grader).",
    )
    blinded = models.BooleanField(default=True, help_text="Graders do not see other graders' grades.")
    graders_see_pregraded = models.BooleanField(
        default=False, help_text="Graders can see pre-assigned (imported) grades of pre-graded images."
    )
    is_active = models.BooleanField(
        default=False, help_text="The scheme new grading tasks of this disease use (one active scheme per disease)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["disease_id", "-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["disease"],
                condition=Q(is_active=True),
                name="one_active_scheme_per_disease",
                violation_error_message="This disease already has an active scheme: deactivate it first.",
            ),
            models.CheckConstraint(
                condition=Q(is_active=False) | Q(disease__isnull=False),
                name="active_scheme_has_disease",
                violation_error_message="Only a scheme for a disease can be active.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class GradeOption(models.Model):
    scheme = models.ForeignKey(GradeScheme, on_delete=models.CASCADE, related_name="options")
    code = models.CharField(max_length=20, help_text="Stable: never changed once grades use it (retire instead).")
    label = models.CharField(max_length=120)
    ordinal = models.SmallIntegerField(default=0, help_text="Position on an ordered scale (0 = least severe).")
    referable = models.BooleanField(default=False)
    ungradable = models.BooleanField(default=False)
    synonyms = models.JSONField(
        default=list, blank=True, help_text="Other spellings seen in imported files (matched ignoring case/spaces)."
    )
    shortcut = models.CharField(
        max_length=1, blank=True, help_text="Keyboard key on the grading page (default: the option's position)."
    )
    retired = models.BooleanField(default=False, help_text="Kept for history; not offered for new grades.")

    class Meta:
        ordering = ["scheme_id", "ungradable", "ordinal", "id"]
        constraints = [
            models.UniqueConstraint(fields=["scheme", "code"], name="unique_option_code_per_scheme"),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.label}"


class AIModel(models.Model):
    """An AI grading system, by name and version; its grades are compared against the human consensus."""

    name = models.CharField(max_length=120)
    version = models.CharField(max_length=60)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_ai_model_version")]
        verbose_name = "AI model"

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


class Slot(models.TextChoices):
    PRIMARY = "primary", "Primary"
    SECONDARY = "secondary", "Secondary"
    ARBITRATION = "arbitration", "Arbitration"


class GradingTask(models.Model):
    """One slot of the grading of an image for a disease. Open tasks form the queues.

    A leased task whose lease expired is available again. ``priority`` orders the queue: arbitration (2) before the
    remaining slot of a half-graded image (1) before fresh images (0); then the oldest image first.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        LEASED = "leased", "Leased"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.PENDING, Status.LEASED)

    image = models.ForeignKey("uploads.Image", on_delete=models.CASCADE, related_name="grading_tasks")
    disease = models.ForeignKey("accounts.Disease", on_delete=models.PROTECT, related_name="+")
    scheme = models.ForeignKey(GradeScheme, on_delete=models.PROTECT, related_name="tasks")
    # Copied from the image so a queue is one index scan.
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.PROTECT, related_name="+")
    slot = models.CharField(max_length=20, choices=Slot.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    priority = models.SmallIntegerField(default=0)
    queued_at = models.DateTimeField(help_text="When the image entered grading (queue order: oldest first).")
    leased_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    leased_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "queued_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "disease", "slot"], name="unique_task_slot_per_image_disease"),
        ]
        indexes = [
            # The queue: open tasks of a disease in queue order.
            models.Index(
                fields=["disease", "-priority", "queued_at", "id"],
                name="grading_task_queue",
                condition=Q(status__in=["pending", "leased"]),
            ),
            # The queue of a grader who may take one slot only (residents: primary), in queue order, so it never
            # walks past the secondary and arbitration slots at the head of the queue.
            models.Index(
                fields=["disease", "slot", "-priority", "queued_at", "id"],
                name="grading_task_queue_slot",
                condition=Q(status__in=["pending", "leased"]),
            ),
            models.Index(fields=["image", "disease"], name="grading_task_image"),
            models.Index(fields=["completed_by", "image"], name="grading_task_completed_by"),
            models.Index(fields=["leased_to", "status"], name="grading_task_leased_to"),
            models.Index(fields=["lab_unit", "disease", "slot", "status"], name="grading_task_progress"),
        ]

    def __str__(self) -> str:
        return f"{self.get_slot_display()} · {self.disease_id} · {self.image_id}"


class GradingSkip(models.Model):
    """A grader skipped a task: the queue stops offering it to them (until they return their skipped tasks)."""

    task = models.ForeignKey(GradingTask, on_delete=models.CASCADE, related_name="skips")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task", "user"], name="unique_skip_per_task_user")]

    def __str__(self) -> str:
        return f"{self.user_id} skipped {self.task_id}"


class GraderType(models.TextChoices):
    PRIMARY = "primary", "Primary"
    SECONDARY = "secondary", "Secondary"
    ARBITRATION = "arbitration", "Arbitration"
    RESIDENT = "resident", "Resident (imported)"
    RESIDENT2 = "resident2", "Resident2 (imported)"
    AI = "ai", "AI (imported)"


QUEUE_GRADER_TYPES = (GraderType.PRIMARY, GraderType.SECONDARY, GraderType.ARBITRATION)
IMPORTED_GRADER_TYPES = (GraderType.RESIDENT, GraderType.RESIDENT2, GraderType.AI)


class Grade(models.Model):
    """One grade of an image for a disease under a scheme. ``option`` is empty for "no grade" (a blank cell).

    History: a new grade by the same grader type (and AI model) supersedes the current one, which stays with
    ``is_current=False``; ``supersedes`` links the new grade to the one it replaced.
    """

    # Single-column indexes only where a query needs one: grade_image_current serves the image (and its cascade),
    # grade_grader_history the grader; disease, scheme and option are PROTECT targets that are never deleted while
    # graded. Every index costs each grade written (an import writes 10,000 at once).
    # Database foreign keys guard what differs from grade to grade (image, option, grader, task, the grade it
    # supersedes). The context an import gives all its grades (disease, scheme, AI model, import job) is checked once
    # by the service that writes them and kept by on_delete (PROTECT, SET_NULL) in the application: PostgreSQL would
    # otherwise check and lock the same parent row again for every grade (a third of a 10,000-grade import's time).
    image = models.ForeignKey("uploads.Image", on_delete=models.CASCADE, related_name="grades", db_index=False)
    disease = models.ForeignKey(
        "accounts.Disease", on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    scheme = models.ForeignKey(
        GradeScheme, on_delete=models.PROTECT, related_name="grades", db_index=False, db_constraint=False
    )
    option = models.ForeignKey(
        GradeOption, on_delete=models.PROTECT, null=True, blank=True, related_name="grades", db_index=False
    )
    raw_value = models.CharField(max_length=200, blank=True, help_text="The value as given (imports: the cell).")
    grader_type = models.CharField(max_length=20, choices=GraderType.choices)
    grader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="grades", db_index=False
    )
    ai_model = models.ForeignKey(
        AIModel, on_delete=models.PROTECT, null=True, blank=True, related_name="grades", db_constraint=False
    )
    task = models.ForeignKey(
        GradingTask, on_delete=models.SET_NULL, null=True, blank=True, related_name="grades", db_index=False
    )
    remarks = models.TextField(blank=True)
    probability = models.FloatField(null=True, blank=True, help_text="AI probability (0–1).")
    import_job = models.ForeignKey(
        "jobs.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    seconds_spent = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )

    class Meta:
        ordering = ["image_id", "created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image", "disease", "scheme", "grader_type"],
                condition=Q(is_current=True, ai_model__isnull=True),
                name="one_current_grade_per_grader_type",
            ),
            models.UniqueConstraint(
                fields=["image", "disease", "scheme", "ai_model"],
                condition=Q(is_current=True, ai_model__isnull=False),
                name="one_current_grade_per_ai_model",
            ),
            models.CheckConstraint(
                condition=Q(probability__isnull=True) | Q(probability__gte=0, probability__lte=1),
                name="grade_probability_0_1",
            ),
        ]
        indexes = [
            models.Index(fields=["image", "disease", "is_current"], name="grade_image_current"),
            models.Index(fields=["grader", "-created_at"], name="grade_grader_history"),
            models.Index(fields=["grader_type", "is_current", "scheme"], name="grade_type_current"),
            # Only grades that have one (graded in a queue; imported): the others need no entry.
            models.Index(fields=["task"], name="grade_task", condition=Q(task__isnull=False)),
            models.Index(fields=["import_job"], name="grade_import_job", condition=Q(import_job__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.get_grader_type_display()}: {self.option.code if self.option else 'no grade'}"


class ConsensusMethod(models.TextChoices):
    AGREEMENT = "agreement", "Agreement"
    ADJUDICATION = "adjudication", "Adjudication"
    IMPORTED_REFERENCE = "imported_reference", "Imported reference"
    SINGLE_GRADER = "single_grader", "Single grader"


class Consensus(models.Model):
    """The reference grade of an image for a disease under a scheme, and how it was reached."""

    image = models.ForeignKey("uploads.Image", on_delete=models.CASCADE, related_name="consensus_records")
    disease = models.ForeignKey("accounts.Disease", on_delete=models.PROTECT, related_name="+")
    scheme = models.ForeignKey(GradeScheme, on_delete=models.PROTECT, related_name="consensus_records")
    option = models.ForeignKey(GradeOption, on_delete=models.PROTECT, related_name="consensus_records")
    method = models.CharField(max_length=30, choices=ConsensusMethod.choices)
    grades = models.ManyToManyField(Grade, blank=True, related_name="consensus_records")
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The arbitrator (adjudication) or the person who recorded a reference.",
    )
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["image_id", "created_at", "id"]
        verbose_name_plural = "consensus records"
        constraints = [
            models.UniqueConstraint(
                fields=["image", "disease", "scheme"],
                condition=Q(is_current=True),
                name="one_current_consensus",
            ),
        ]
        indexes = [models.Index(fields=["image", "disease", "is_current"], name="consensus_image_current")]

    def __str__(self) -> str:
        return f"{self.get_method_display()}: {self.option.code}"
