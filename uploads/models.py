import uuid

from django.conf import settings
from django.core.files.storage import storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


def _default_storage():
    return storages["default"]


class GradingStatus(models.TextChoices):
    NOT_QUEUED = "not_queued", "Not in grading"
    AWAITING = "awaiting", "Awaiting grading"
    IN_PROGRESS = "in_progress", "Grading in progress"
    IN_ARBITRATION = "in_arbitration", "In arbitration"
    GRADED = "graded", "Graded"


class Image(models.Model):
    class Source(models.TextChoices):
        DIRECT = "direct", "Direct upload"
        PREGRADED = "pregraded", "Pre-graded upload"
        ZIP = "zip", "ZIP archive"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Generated storage names; the user's file name is never used in storage.
    file = models.FileField(storage=_default_storage, max_length=300)
    thumbnail = models.FileField(storage=_default_storage, max_length=300, blank=True)
    edited_file = models.FileField(storage=_default_storage, max_length=300, blank=True)
    original_name = models.CharField(max_length=255, help_text="Sanitised file name as sent, for display only.")
    md5 = models.CharField(max_length=32, unique=True, help_text="MD5 of the bytes as uploaded (duplicate check).")
    size = models.PositiveBigIntegerField(help_text="Bytes as uploaded.")
    mime = models.CharField(max_length=40)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    hospital = models.ForeignKey("accounts.Hospital", on_delete=models.PROTECT, related_name="+")
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.PROTECT, related_name="images")
    camera = models.ForeignKey("accounts.Camera", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    disease = models.ForeignKey("accounts.Disease", on_delete=models.PROTECT, related_name="+")
    area = models.ForeignKey("accounts.Area", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    mydriatic = models.BooleanField(default=False)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.DIRECT)
    is_pregraded = models.BooleanField(default=False)
    dataset_label = models.CharField(max_length=120, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    job_item = models.ForeignKey("jobs.JobItem", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Kept up to date by the grading app through uploads.services.image_set_grading_status (uploads never imports
    # grading), so the dashboard filters on an indexed column.
    grading_status = models.CharField(
        max_length=20, choices=GradingStatus.choices, default=GradingStatus.NOT_QUEUED, db_index=True
    )

    class Meta:
        ordering = ["-uploaded_at", "-id"]
        indexes = [
            models.Index(fields=["lab_unit", "-uploaded_at"]),
            models.Index(fields=["-uploaded_at", "-id"]),
            models.Index(fields=["is_pregraded", "lab_unit", "disease"]),
            # Dashboard sort by file name (keyset pagination on name, id).
            models.Index(fields=["original_name", "id"], name="image_name_sort"),
            # The dashboard's counts (filtered total, KPI cards) read only the user's lab units and the filter
            # columns: on PostgreSQL this covering index answers them with an index-only scan, a fraction of the
            # table's pages, instead of a scan of every row (SQLite builds it without the INCLUDE columns).
            models.Index(
                fields=["lab_unit", "disease", "camera", "area", "mydriatic", "is_pregraded", "grading_status"],
                include=["hospital", "uploaded_by", "uploaded_at"],
                name="image_scope_facets",
            ),
            # The KPI cards group every image in scope by camera, disease and area: a narrow index in that order
            # lets PostgreSQL aggregate while it reads, from about half the pages of the wider one above.
            models.Index(fields=["lab_unit", "camera", "disease", "area"], name="image_scope_kpis"),
        ]

    def __str__(self) -> str:
        return self.original_name

    @property
    def megapixels(self) -> float:
        return round(self.width * self.height / 1_000_000, 1)


class ImageEdit(models.Model):
    """The current pixel edit of an image: the operations applied to the original and the files they produced.

    One row per edited image (the original is never overwritten; "Restore original" deletes the row and its files).
    Kept beside ``Image.edited_file`` so a new edit always starts again from the original with the full list.
    """

    image = models.OneToOneField(Image, on_delete=models.CASCADE, related_name="edit")
    operations = models.JSONField(default=list, help_text="Operations applied, in order, to the original pixels.")
    thumbnail = models.FileField(storage=_default_storage, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    edited_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Edit of {self.image_id}"


class AuditEvent(models.Model):
    """Who did what, when, from where: uploads, edits, metadata changes, deletions, exports, grade imports.

    Rows are never updated or deleted by the product. A deletion leaves an ``image.deleted`` event whose ``details``
    keep what the image was (a tombstone), so the record outlives the image. ``actor_username`` is a copy taken at
    the time, so the trail stays readable if the account is renamed or removed.
    """

    class Action(models.TextChoices):
        IMAGE_UPLOADED = "image.uploaded", "Image uploaded"
        IMAGE_METADATA_CHANGED = "image.metadata_changed", "Metadata changed"
        IMAGE_EDITED = "image.edited", "Image edited"
        IMAGE_RESTORED = "image.restored", "Original restored"
        IMAGE_DELETED = "image.deleted", "Image deleted"
        IMAGES_EXPORTED = "images.exported", "Images exported"
        GRADES_IMPORTED = "grades.imported", "Grades imported"

    action = models.CharField(max_length=60, help_text="What happened, e.g. image.metadata_changed.")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    object_type = models.CharField(max_length=40, blank=True, help_text="image, job, export, ...")
    object_id = models.CharField(max_length=64, blank=True)
    # The lab unit the object belonged to, so an image's trail (and its tombstone) is shown only inside that scope.
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    summary = models.CharField(max_length=500, blank=True, help_text="One readable line.")
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["object_type", "object_id", "-created_at"], name="audit_object"),
            models.Index(fields=["actor", "-created_at"], name="audit_actor"),
            models.Index(fields=["action", "-created_at"], name="audit_action"),
            models.Index(fields=["-created_at"], name="audit_created"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_username or '-'} {self.action} {self.object_id}"

    @property
    def action_label(self) -> str:
        try:
            return self.Action(self.action).label
        except ValueError:
            return self.action
