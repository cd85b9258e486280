import uuid

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        ERROR = "error", "Error"

    # The public, unguessable job token used in URLs and the API.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=40, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    # The lab unit the job works in, for access scoping (null for jobs that span none).
    lab_unit = models.ForeignKey("accounts.LabUnit", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    params = models.JSONField(default=dict, blank=True)
    rejected_count = models.PositiveIntegerField(default=0, help_text="Files refused before processing.")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["created_by", "-created_at"]), models.Index(fields=["lab_unit", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.DONE, self.Status.ERROR}

    @property
    def kind_label(self) -> str:
        from jobs import registry

        return registry.label(self.kind)


class JobItem(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        COMPLETED = "completed", "Completed"
        ERROR = "error", "Error"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField(help_text="Order in which the file was sent.")
    filename = models.CharField(max_length=255)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    staged_name = models.CharField(max_length=500, blank=True, help_text="Raw bytes in the staging storage.")
    size = models.BigIntegerField(null=True, blank=True)
    # What processing produced: {"image_id": ...} for uploads, counts and skipped entries for archives.
    result = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the item was last handed to the broker; empty while it never reached it (broker down at send time).
    enqueued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="unique_item_position")]
        indexes = [models.Index(fields=["status", "heartbeat_at"]), models.Index(fields=["status", "enqueued_at"])]

    def __str__(self) -> str:
        return f"{self.filename} ({self.status})"
