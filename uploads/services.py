"""Writes for images: accept an upload request (validate, reserve quota, stage, create the job) and store one image."""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from accounts import access
from accounts.models import Area, Camera, Disease, Hospital, LabUnit, User
from common.api import Forbidden, ServiceError
from common.text import display_filename
from jobs import services as job_services
from jobs.models import Job, JobItem
from jobs.registry import ItemRejected
from uploads import imaging
from uploads.models import Image
from uploads.signals import image_ready_for_grading

log = logging.getLogger(__name__)

MSG_ALL_FIELDS = "All fields are required"
MSG_NO_FILE = "No selected file"
MSG_NO_ACCESS = "You don't have access to the selected lab unit"
MSG_NOT_ALLOWED = "Your role does not allow uploading images."
MSG_WRONG_HOSPITAL = "The selected lab unit does not belong to the selected hospital."
MSG_QUOTA = "Upload quota exceeded"
MSG_DUPLICATE = "Duplicate file"
MSG_TOO_MANY = (
    "Too many files in one upload (max {max} per upload). This file was not sent; upload it again separately."
)
MAX_CLIENT_REJECTED = 1000


@dataclass(frozen=True)
class UploadTarget:
    """Where an upload goes and what it is, resolved and access-checked."""

    hospital: Hospital
    lab_unit: LabUnit
    camera: Camera | None
    disease: Disease | None
    area: Area | None
    mydriatic: bool

    def as_params(self) -> dict:
        return {
            "hospital_id": self.hospital.pk,
            "lab_unit_id": self.lab_unit.pk,
            "camera_id": self.camera.pk if self.camera else None,
            "disease_id": self.disease.pk if self.disease else None,
            "area_id": self.area.pk if self.area else None,
            "mydriatic": self.mydriatic,
        }


def _lookup(model: type[models.Model], value, label: str):
    value = str(value).strip()
    try:
        if value.isascii() and value.isdigit() and len(value) <= 18:
            return model.objects.get(pk=int(value))
        return model.objects.get(code__iexact=value[:100])
    except model.DoesNotExist:
        shown = value if len(value) <= 60 else value[:60] + "…"
        raise ServiceError(f"Unknown {label}: {shown!r}. See /api/reference/ for the values you may use.") from None


def parse_bool(value) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on", "mydriatic", "y"}


def resolve_target(
    *, user, data, required=("hospital", "lab_unit", "camera", "disease", "area"), action: str = "upload_images"
) -> UploadTarget:
    """Resolve the form / API fields (ids or codes) and check the user may upload to that lab unit."""
    if not access.can(user, action):
        raise Forbidden(MSG_NOT_ALLOWED)
    if any(not str(data.get(name) or "").strip() for name in required):
        raise ServiceError(MSG_ALL_FIELDS)
    hospital = _lookup(Hospital, data.get("hospital"), "hospital")
    lab_unit = _lookup(LabUnit, data.get("lab_unit"), "lab unit")
    if not access.can_use_lab_unit(user, lab_unit):
        raise Forbidden(MSG_NO_ACCESS)
    if lab_unit.hospital_id != hospital.pk:
        raise ServiceError(MSG_WRONG_HOSPITAL)

    def optional(model, name, label):
        return _lookup(model, data.get(name), label) if str(data.get(name) or "").strip() else None

    return UploadTarget(
        hospital=hospital,
        lab_unit=lab_unit,
        camera=optional(Camera, "camera", "camera"),
        disease=optional(Disease, "disease", "disease"),
        area=optional(Area, "area", "area"),
        mydriatic=parse_bool(data.get("mydriatic")),
    )


def stage_file(uploaded) -> str:
    """Write the raw bytes of an uploaded file to the staging storage; returns the generated name."""
    uploaded.seek(0)
    return storages["staging"].save(f"{timezone.now():%Y/%m/%d}/{uuid.uuid4().hex}", uploaded)


def unstage(name: str) -> None:
    if name:
        try:
            storages["staging"].delete(name)
        except Exception:
            log.warning("Could not delete staged file %s", name, exc_info=True)


def client_rejected_specs(raw) -> list[job_services.ItemSpec]:
    """Files the browser refused before sending (name + reason), so the job accounts for every file chosen."""
    specs = []
    for entry in (raw or [])[:MAX_CLIENT_REJECTED]:
        if not isinstance(entry, dict):
            continue
        name = display_filename(str(entry.get("filename") or entry.get("name") or ""))
        reason = str(entry.get("reason") or entry.get("error") or "Refused by the browser before upload")[:300]
        specs.append(job_services.ItemSpec(filename=name, error=reason))
    return specs


def image_upload_create(
    *,
    user: User,
    target: UploadTarget,
    files: list,
    client_ip: str | None,
    user_agent: str,
    kind: str = "direct_upload",
    extra_params: dict | None = None,
    client_rejected: list | None = None,
) -> Job:
    """Accept an upload request: cheap checks per file, quota reservation, staging, and one job item per file.

    Every file becomes an item; files refused here are ``error`` items with their reason, so one bad file never
    stops the others. The quota is reserved under a lock on the user's row, so concurrent requests cannot together
    pass it; a file later refused by the worker gives its unit back.
    """
    files = [f for f in files if f is not None and (f.name or "").strip()]
    rejected_by_client = client_rejected_specs(client_rejected)
    if not files and not rejected_by_client:
        raise ServiceError(MSG_NO_FILE)

    max_files = settings.DIRECT_UPLOAD_MAX_FILES
    specs: list[job_services.ItemSpec] = []
    staged: list[job_services.ItemSpec] = []
    try:
        for index, uploaded in enumerate(files):
            spec = job_services.ItemSpec(filename=display_filename(uploaded.name), size=uploaded.size)
            specs.append(spec)
            if index >= max_files:
                spec.error = MSG_TOO_MANY.format(max=max_files)
                continue
            uploaded.seek(0)
            head = uploaded.read(imaging.SNIFF_BYTES)
            error, _mime = imaging.check_size_and_type(uploaded.size or 0, head)
            if error:
                spec.error = error
                continue
            spec.staged_name = stage_file(uploaded)
            staged.append(spec)

        refused_by_quota: list[str] = []
        with transaction.atomic():
            locked = User.objects.select_for_update().get(pk=user.pk)
            quota = locked.effective_upload_quota
            remaining = None if quota == 0 else max(0, quota - locked.upload_count)
            taken = 0
            for spec in staged:
                if remaining is not None and taken >= remaining:
                    spec.error = MSG_QUOTA
                    refused_by_quota.append(spec.staged_name)
                    spec.staged_name = ""
                else:
                    taken += 1
            if taken:
                User.objects.filter(pk=user.pk).update(upload_count=F("upload_count") + taken)
            job = job_services.job_create(
                kind=kind,
                user=user,
                items=specs + rejected_by_client,
                lab_unit=target.lab_unit,
                params={**target.as_params(), "counts_quota": True, **(extra_params or {})},
                client_ip=client_ip,
                user_agent=user_agent,
            )
    except BaseException:
        for spec in staged:
            unstage(spec.staged_name)
        raise
    for name in refused_by_quota:
        unstage(name)
    return job


def _keep_duplicate(data: bytes, md5: str, ext: str) -> None:
    """The bytes of a refused duplicate go to the duplicates area (audit), never to the image store."""
    try:
        storages["duplicates"].save(f"{md5}/{uuid.uuid4().hex}.{ext}", ContentFile(data))
    except Exception:
        log.warning("Could not keep the duplicate copy of %s", md5, exc_info=True)


def image_store(
    *,
    data: bytes,
    original_name: str,
    params: dict,
    uploaded_by: User,
    job_item: JobItem | None = None,
    client_ip: str | None = None,
    user_agent: str = "",
    source: str = Image.Source.DIRECT,
    ready_for_grading: bool = True,
    md5: str | None = None,
) -> Image:
    """Validate, clean and store one image; raise ItemRejected with the user-facing reason otherwise.

    ``md5``: the fingerprint of the bytes as uploaded, when ``data`` is a derived copy (a masked graded copy).

    Two workers storing the same bytes at once both pass the first duplicate check; the unique MD5 constraint lets
    exactly one of them win and the other reports "Duplicate file". Nothing of a refused file stays in the image store.
    """
    md5 = md5 or hashlib.md5(data).hexdigest()  # noqa: S324 - a content fingerprint for duplicate detection, not security
    head_mime = imaging.sniff_mime(data[: imaging.SNIFF_BYTES])
    ext = imaging.ALLOWED_MIME.get(head_mime, "bin")
    if Image.objects.filter(md5=md5).exists():
        _keep_duplicate(data, md5, ext)
        raise ItemRejected(MSG_DUPLICATE)
    cleaned = imaging.clean(data)

    image_id = uuid.uuid4()
    prefix = f"{timezone.now():%Y/%m}/{image_id.hex}"
    store = storages["default"]
    file_name = store.save(f"{prefix}.{cleaned.ext}", ContentFile(cleaned.data))
    thumb_name = store.save(f"thumbs/{prefix}.jpg", ContentFile(cleaned.thumbnail))
    try:
        with transaction.atomic():
            image = Image.objects.create(
                id=image_id,
                file=file_name,
                thumbnail=thumb_name,
                original_name=display_filename(original_name),
                md5=md5,
                size=len(data),
                mime=cleaned.mime,
                width=cleaned.width,
                height=cleaned.height,
                hospital_id=params["hospital_id"],
                lab_unit_id=params["lab_unit_id"],
                camera_id=params.get("camera_id"),
                disease_id=params.get("disease_id"),
                area_id=params.get("area_id"),
                mydriatic=bool(params.get("mydriatic")),
                source=source,
                is_pregraded=bool(params.get("is_pregraded")),
                dataset_label=(params.get("dataset_label") or "")[:120],
                uploaded_by=uploaded_by,
                client_ip=client_ip,
                user_agent=(user_agent or "")[:400],
                job_item=job_item,
            )
            if ready_for_grading:
                transaction.on_commit(lambda: image_ready_for_grading.send(sender=Image, image=image))
    except IntegrityError:
        store.delete(file_name)
        store.delete(thumb_name)
        if Image.objects.filter(md5=md5).exists():
            _keep_duplicate(data, md5, ext)
            raise ItemRejected(MSG_DUPLICATE) from None
        raise
    except BaseException:
        store.delete(file_name)
        store.delete(thumb_name)
        raise
    return image


def quota_refund(*, user_id: int, count: int = 1) -> None:
    User.objects.filter(pk=user_id, upload_count__gte=count).update(upload_count=F("upload_count") - count)


def image_set_grading_status(*, image_ids, status: str) -> int:
    """Called by the grading app whenever an image's grading state changes."""
    from uploads.models import GradingStatus

    if status not in GradingStatus.values:
        raise ValueError(f"Unknown grading status {status!r}")
    return Image.objects.filter(pk__in=list(image_ids)).update(grading_status=status)


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    request=None,
    ip: str | None = None,
    user_agent: str = "",
    object_type: str = "",
    object_id="",
    lab_unit_id: int | None = None,
    summary: str = "",
    details: dict | None = None,
):
    """Record one event of the audit trail (uploads, edits, deletions, grade imports, ...); returns the AuditEvent.

    Pass ``request`` to take the actor, IP address and user agent from it; a background job passes the ``actor``,
    ``ip`` and ``user_agent`` it stored when the request came in. ``action`` is a dotted name such as
    ``grades.imported``; ``object_type``/``object_id`` name what it concerns (``image``/UUID, ``job``/UUID, ...);
    ``lab_unit_id`` scopes the event for display; ``details`` is any JSON (UUIDs and dates are encoded). Runs inside
    the caller's transaction, so the record commits or rolls back with the change it describes.
    """
    from uploads import audit

    origin = audit.Origin.of(request) if request is not None else audit.Origin()
    origin = audit.Origin(
        actor=actor if actor is not None else origin.actor,
        ip=ip if ip is not None else origin.ip,
        user_agent=user_agent or origin.user_agent,
    )
    entry = audit.Entry(
        action=action,
        object_type=object_type,
        object_id=str(object_id or ""),
        lab_unit_id=lab_unit_id,
        summary=summary,
        details=details or {},
    )
    return audit.record(entry, origin)
