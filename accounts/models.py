from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    DATA_MANAGER = "data_manager", "Data manager"
    UPLOADER = "uploader", "File uploader"
    OPTOMETRIST = "optometrist", "Optometrist"
    RESIDENT = "resident", "Resident"
    OPHTHALMOLOGIST = "ophthalmologist", "Ophthalmologist"


class Hospital(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class LabUnit(models.Model):
    hospital = models.ForeignKey(Hospital, on_delete=models.PROTECT, related_name="lab_units")
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["hospital__name", "name"]

    def __str__(self) -> str:
        return f"{self.hospital.name} · {self.name}"


class Camera(models.Model):
    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=200)
    manufacturer = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Disease(models.Model):
    code = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class Area(models.Model):
    code = models.SlugField(max_length=20, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class User(AbstractUser):
    lab_units = models.ManyToManyField(LabUnit, blank=True, related_name="members")
    upload_quota = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Lifetime direct-upload quota for this user. Empty: the site default "
        "(DIRECT_UPLOAD_LIFETIME_QUOTA); 0: unlimited.",
    )
    upload_count = models.PositiveIntegerField(default=0, help_text="Images this user has uploaded (lifetime).")

    @property
    def effective_upload_quota(self) -> int:
        """0 means unlimited."""
        return settings.DIRECT_UPLOAD_LIFETIME_QUOTA if self.upload_quota is None else self.upload_quota


class UserRole(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="role_rows")
    role = models.CharField(max_length=20, choices=Role.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "role"], name="unique_user_role")]

    def __str__(self) -> str:
        return self.get_role_display()
