"""Accept a ZIP upload request: cheap checks per file, staging, and one job item per archive."""

from __future__ import annotations

import hashlib

from django.conf import settings

from common.api import ServiceError
from common.text import display_filename
from jobs import services as job_services
from jobs.models import Job
from remedio import archive as safe_zip
from remedio import layout
from remedio.models import Archive
from remedio.services.patients import pseudonym_of
from uploads import services as upload_services

ZIP_UPLOAD = "zip_upload"
REQUIRED_FIELDS = ("hospital", "lab_unit", "camera")
MSG_TOO_LARGE = "File too large (max {max})"
MSG_TOO_MANY = "Too many files in one upload (max {max} per upload). This file was not sent; upload it again separately."


def resolve_zip_target(*, user, data) -> upload_services.UploadTarget:
    """Hospital, lab unit and camera (ids or codes), checked against the user's role and lab units."""
    return upload_services.resolve_target(user=user, data=data, required=REQUIRED_FIELDS, action="upload_zip")


def _md5(uploaded) -> str:
    digest = hashlib.md5()  # noqa: S324 - a content fingerprint (duplicates), not security
    uploaded.seek(0)
    for chunk in uploaded.chunks():
        digest.update(chunk)
    uploaded.seek(0)
    return digest.hexdigest()


def zip_upload_create(
    *,
    user,
    target: upload_services.UploadTarget,
    files: list,
    client_ip: str | None,
    user_agent: str,
    client_rejected: list | None = None,
) -> Job:
    """Every file becomes an item: archives that pass the cheap checks (size, ZIP by content, not a known archive) are
    staged and queued; the others are ``error`` items with their reason, so one bad file never stops the others.

    Remidio names an archive after the patient ID (``<PatientID>_<DD-MM-YYYY>_<time>.zip``): items are named with the
    ID replaced by the patient's pseudonym, so the ID is never stored or shown in clear."""
    files = [f for f in files if f is not None and (f.name or "").strip()]
    rejected_by_client = upload_services.client_rejected_specs(client_rejected)

    def pseudonym(patient_id: str) -> str:
        return pseudonym_of(hospital_id=target.hospital.pk, patient_id=patient_id)

    for spec in rejected_by_client:
        spec.filename = layout.redacted_archive_name(spec.filename, pseudonym)
    if not files and not rejected_by_client:
        raise ServiceError(upload_services.MSG_NO_FILE)

    max_files = settings.MAX_FILES_PER_UPLOAD
    max_bytes = settings.PER_FILE_MAX_BYTES
    specs: list[job_services.ItemSpec] = []
    staged: list[job_services.ItemSpec] = []
    seen: set[str] = set()
    try:
        for index, uploaded in enumerate(files):
            name = layout.redacted_archive_name(display_filename(uploaded.name), pseudonym)
            spec = job_services.ItemSpec(filename=name, size=uploaded.size)
            specs.append(spec)
            if index >= max_files:
                spec.error = MSG_TOO_MANY.format(max=max_files)
                continue
            if (uploaded.size or 0) > max_bytes:
                spec.error = MSG_TOO_LARGE.format(max=safe_zip.human_size(max_bytes))
                continue
            uploaded.seek(0)
            head = uploaded.read(safe_zip.SNIFF_BYTES)
            if not safe_zip.is_zip(head):
                spec.error = safe_zip.MSG_NOT_ZIP.format(mime=safe_zip.sniff(head))
                continue
            md5 = _md5(uploaded)
            if md5 in seen or Archive.objects.filter(md5=md5).exists():
                spec.error = upload_services.MSG_DUPLICATE
                continue
            seen.add(md5)
            spec.staged_name = upload_services.stage_file(uploaded)
            staged.append(spec)
        return job_services.job_create(
            kind=ZIP_UPLOAD,
            user=user,
            items=specs + rejected_by_client,
            lab_unit=target.lab_unit,
            params={**target.as_params(), "source": "zip"},
            client_ip=client_ip,
            user_agent=user_agent,
        )
    except BaseException:
        for spec in staged:
            upload_services.unstage(spec.staged_name)
        raise
