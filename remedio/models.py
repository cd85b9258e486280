"""Remidio ZIP ingestion: archives, pseudonymous patients, encounters (one patient visit), their images and reports,
and the Medios AI results read from the reports.

Identifying fields (name, patient ID, age, sex) and the raw report text are stored encrypted (``*_encrypted``, Fernet
tokens, see ``remedio.identity``); everything else here is free of identifiers and may be shown to graders.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q


class Archive(models.Model):
    """One uploaded ZIP archive. Its MD5 is unique: the same archive uploaded again is a duplicate.

    Encounters of an archive are listed only once the archive is ``complete``: while a worker is still storing it (or
    after it failed and is being cleaned up) nothing of it is visible.
    """

    class Status(models.TextChoices):
        PROCESSING = "processing", "Processing"
        COMPLETE = "complete", "Complete"

    md5 = models.CharField(max_length=32, unique=True, help_text="MD5 of the whole archive as uploaded.")
    size = models.PositiveBigIntegerField()
    job_item = models.ForeignKey("jobs.JobItem", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    job = models.ForeignKey("jobs.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    hospital = models.ForeignKey("accounts.Hospital", on_delete=models.PROTECT, related_name="+")
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.PROTECT, related_name="+")
    camera = models.ForeignKey("accounts.Camera", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PROCESSING)
    entries = models.PositiveIntegerField(default=0, help_text="Entries in the archive (junk included).")
    result = models.JSONField(default=dict, blank=True, help_text="What the import produced (the job item's result).")
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Archive {self.md5[:8]}"


class Patient(models.Model):
    """A pseudonymous patient: ``key`` is a keyed hash of hospital + patient ID, so re-exports link to the same row."""

    hospital = models.ForeignKey("accounts.Hospital", on_delete=models.PROTECT, related_name="+")
    key = models.CharField(max_length=64, unique=True, help_text="HMAC-SHA256 of hospital and patient ID (hex).")
    pseudonym = models.CharField(max_length=20, unique=True, help_text="Shown instead of the name everywhere.")
    name_encrypted = models.TextField(blank=True)
    patient_id_encrypted = models.TextField(blank=True)
    sex_encrypted = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pseudonym"]

    def __str__(self) -> str:
        return self.pseudonym


class Encounter(models.Model):
    """One patient visit: patient + capture date + lab unit + camera + source archive."""

    class Status(models.TextChoices):
        AWAITING = "awaiting", "Awaiting verification"
        VERIFIED = "verified", "Verified"

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="encounters")
    archive = models.ForeignKey(Archive, on_delete=models.CASCADE, related_name="encounters")
    hospital = models.ForeignKey("accounts.Hospital", on_delete=models.PROTECT, related_name="+")
    lab_unit = models.ForeignKey("accounts.LabUnit", on_delete=models.PROTECT, related_name="+")
    camera = models.ForeignKey("accounts.Camera", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    capture_date = models.DateField()
    age_encrypted = models.TextField(blank=True, help_text="Age at the visit (encrypted).")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.AWAITING)
    needs_manual_entry = models.BooleanField(
        default=False, help_text="A report could not be read: its results must be entered by hand at verification."
    )
    notes = models.JSONField(default=list, blank=True, help_text="Remarks for the verifier (never identifiers).")
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-capture_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient", "capture_date", "lab_unit", "camera", "archive"], name="unique_encounter_identity"
            ),
        ]
        indexes = [
            models.Index(fields=["lab_unit", "status", "-capture_date"], name="encounter_queue"),
            models.Index(fields=["archive", "status"], name="encounter_archive"),
        ]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return f"{self.patient.pseudonym} · {self.capture_date:%Y-%m-%d}"


class Laterality(models.TextChoices):
    # The codes are those of accounts.Area, so a verified laterality becomes the image's area.
    RIGHT = "right", "Right eye (OD)"
    LEFT = "left", "Left eye (OS)"


class Field(models.TextChoices):
    DISC = "disc", "Disc centred"
    MACULA = "macula", "Macula centred"


class MaskState(models.TextChoices):
    NONE = "none", "No mask"
    SUGGESTED = "suggested", "Masked automatically (to confirm)"
    CONFIRMED = "confirmed", "Mask confirmed"
    ADJUSTED = "adjusted", "Mask adjusted"
    CLEARED = "cleared", "Mask cleared"


class EncounterImage(models.Model):
    """A photograph of an encounter: the stored image (graded copy, masked when it carried burnt-in text) and what is
    known about it. ``original_name`` is the unmasked original in the restricted storage, when there is one."""

    image = models.OneToOneField("uploads.Image", on_delete=models.CASCADE, related_name="encounter_link")
    encounter = models.ForeignKey(Encounter, on_delete=models.CASCADE, related_name="images")
    entry_name = models.CharField(max_length=255, help_text="File name inside the patient folder (a capture time).")
    capture_time = models.TimeField(null=True, blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    laterality = models.CharField(max_length=10, choices=Laterality.choices, blank=True)
    laterality_suggestion = models.CharField(max_length=10, choices=Laterality.choices, blank=True)
    laterality_confidence = models.FloatField(null=True, blank=True, help_text="0–1, of the suggestion.")
    field = models.CharField(max_length=10, choices=Field.choices, blank=True)
    gradable = models.BooleanField(null=True, blank=True)
    mask_state = models.CharField(max_length=20, choices=MaskState.choices, default=MaskState.NONE)
    mask_boxes = models.JSONField(default=list, blank=True, help_text="[[x0, y0, x1, y1], …] in stored pixels.")
    mask_suggested = models.JSONField(default=list, blank=True, help_text="Boxes found by the text detector.")
    mask_confidence = models.FloatField(null=True, blank=True)
    original_name = models.CharField(max_length=300, blank=True, help_text="Unmasked original (restricted storage).")

    class Meta:
        ordering = ["encounter_id", "position", "id"]

    def __str__(self) -> str:
        return f"{self.encounter_id}/{self.entry_name}"

    @property
    def masked(self) -> bool:
        return bool(self.mask_boxes)


class Report(models.Model):
    """A Medios AI report PDF of an encounter, what was read from it and how."""

    class Kind(models.TextChoices):
        DR = "dr", "DR"
        DR_AMD = "dr_amd", "DR + AMD"
        AMD = "amd", "AMD"
        GLAUCOMA = "glaucoma", "Glaucoma"
        DR_GLAUCOMA = "dr+glaucoma", "DR and glaucoma"
        DR_AMD_GLAUCOMA = "dr_amd+glaucoma", "DR + AMD and glaucoma"
        AMD_GLAUCOMA = "amd+glaucoma", "AMD and glaucoma"
        UNKNOWN = "unknown", "Unknown"

    class Status(models.TextChoices):
        PARSED = "parsed", "Read"
        NEEDS_REVIEW = "needs_review", "Read in part (check)"
        MANUAL_ENTRY = "manual_entry", "Unreadable: enter by hand"
        VERIFIED = "verified", "Verified"
        UNUSABLE = "unusable", "Unusable (no results)"

    class Extraction(models.TextChoices):
        NONE = "", "Not read"
        TEXT = "text", "Text layer"
        OCR = "ocr", "OCR"
        MIXED = "mixed", "Text layer and OCR"

    encounter = models.ForeignKey(Encounter, on_delete=models.CASCADE, related_name="reports")
    entry_name = models.CharField(max_length=255)
    file_name = models.CharField(max_length=300, help_text="The PDF (restricted storage: it carries identifiers).")
    md5 = models.CharField(max_length=32)
    size = models.PositiveBigIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.UNKNOWN)
    status = models.CharField(max_length=20, choices=Status.choices)
    status_reason = models.CharField(max_length=500, blank=True)
    extraction = models.CharField(max_length=10, choices=Extraction.choices, blank=True)
    pages = models.PositiveSmallIntegerField(default=0)
    model_version = models.CharField(max_length=40, blank=True)
    dr_result = models.CharField(max_length=120, blank=True)
    dr_referable = models.BooleanField(null=True, blank=True)
    amd_result = models.CharField(max_length=120, blank=True)
    amd_referable = models.BooleanField(null=True, blank=True)
    glaucoma_result = models.CharField(max_length=120, blank=True)
    glaucoma_referable = models.BooleanField(null=True, blank=True)
    vcdr_od = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True, help_text="Right eye.")
    vcdr_os = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True, help_text="Left eye.")
    raw_text_encrypted = models.TextField(blank=True)
    raw_text_redacted = models.TextField(blank=True, help_text="The raw text with identifying lines blanked.")
    parsed = models.JSONField(default=dict, blank=True, help_text="Results as first read, before any correction.")
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["encounter_id", "entry_name", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} report {self.pk}"


class AIResult(models.Model):
    """A Medios AI screening answer for an encounter (referable or not; VCDR for glaucoma), never a human grade.

    A correction at verification supersedes the current row (kept with ``is_current=False``).
    """

    MODEL_NAME = "Medios AI"

    class Target(models.TextChoices):
        DR = "dr", "Diabetic retinopathy"
        AMD = "amd", "AMD"
        DR_OR_AMD = "dr_or_amd", "DR or AMD"
        GLAUCOMA = "glaucoma", "Glaucoma"

    class Source(models.TextChoices):
        REPORT = "report", "Read from the report"
        VERIFIER = "verifier", "Entered or corrected at verification"

    encounter = models.ForeignKey(Encounter, on_delete=models.CASCADE, related_name="ai_results")
    report = models.ForeignKey(Report, on_delete=models.CASCADE, null=True, blank=True, related_name="ai_results")
    model_name = models.CharField(max_length=60, default=MODEL_NAME)
    model_version = models.CharField(max_length=40, blank=True)
    target = models.CharField(max_length=20, choices=Target.choices)
    disease = models.ForeignKey(
        "accounts.Disease", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        help_text="Empty for the combined 'DR or AMD' answer.",
    )
    result = models.CharField(max_length=120)
    referable = models.BooleanField(null=True, blank=True)
    vcdr_od = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    vcdr_os = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.REPORT)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    is_current = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["encounter_id", "target", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "target"], condition=Q(is_current=True), name="one_current_ai_result_per_target"
            ),
        ]
        indexes = [models.Index(fields=["encounter", "is_current"], name="ai_result_encounter")]
        verbose_name = "AI result"

    def __str__(self) -> str:
        return f"{self.model_name} {self.target}: {self.result}"
