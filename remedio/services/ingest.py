"""Ingest one uploaded archive (one job item): check and unpack it safely, find the encounters, read the reports, clean
and mask the photographs, and store everything as encounters awaiting verification.

Order of work, so that a refused archive leaves nothing behind:

1. the archive is copied from staging to a private scratch folder (hashing it) and claimed by its MD5 (a second copy
   of the same archive is a "Duplicate file");
2. every entry is checked and streamed to scratch files (``remedio.archive``): any refusal happens here, before
   anything is stored;
3. per encounter, the slow work (OCR, image analysis, masking) runs outside any transaction, then the encounter, its
   reports and images are written in one short transaction;
4. the archive is marked complete: only then do its encounters appear in lists.

If anything fails after step 1 (a database or storage error, a worker stopping), ``archive_purge`` removes what this
item stored, files included, so a retry starts clean. Images never enter grading here: they wait for verification.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import uuid
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import IntegrityError, transaction
from django.utils import timezone
from PIL import Image as PILImage

from accounts.models import Disease
from jobs import services as job_services
from jobs.models import JobItem
from jobs.registry import ItemRejected
from remedio import archive as safe_zip
from remedio import identity, layout, reports, retina
from remedio.models import AIResult, Archive, Encounter, EncounterImage, MaskState, Patient, Report
from remedio.services.patients import patient_resolve, pseudonym_of
from uploads import imaging
from uploads import services as upload_services
from uploads.models import Image

log = logging.getLogger(__name__)

MSG_DUPLICATE = upload_services.MSG_DUPLICATE
MSG_STAGED_MISSING = (
    "The uploaded archive is no longer available on the server (it was cleaned up before it could be processed). "
    "Please upload it again."
)
MSG_NO_ENCOUNTER = (
    "No Remidio patient folder found: an export holds one folder per visit, named <Name>_<PatientID>_<DD-MM-YYYY>, "
    "with the photographs (in FOP/ or directly inside) and the reports (REPORTS/). Upload the archive as exported."
)
MSG_NOTHING_NEW = "Duplicate file: every photograph and report in this archive was imported before."
MSG_NOTHING_USABLE = "No photograph or report in this archive could be imported (see the skipped entries)."
SKIP_REPORT_DUPLICATE = "Duplicate file: this report was imported before."
NOTE_NO_REPORT = "The export has no Medios AI report for this visit."
NOTE_MASKED = "{name}: burnt-in text found and masked automatically; check the mask."
NOTE_ID_MISMATCH = "{name}: the patient ID printed in the report differs from the folder's; check the report."
NOTE_REVIEW = "{name}: {missing} not found in the report; check and complete."
NOTE_MANUAL = "{name}: {reason}"

CHUNK = 1024 * 1024
# OCR confuses these; IDs are compared with them folded together.
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "S": "5", "B": "8", "Z": "2"})


@dataclass
class _Run:
    """What one run stored (for clean-up) and what it reports back."""

    item: JobItem
    archive: Archive
    params: dict
    diseases: dict[str, Disease]
    files: list[tuple[str, str]] = field(default_factory=list)  # (storage alias, name)
    image_ids: list = field(default_factory=list)
    patient_ids: list[int] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    encounters: list[dict] = field(default_factory=list)
    report_md5s: set[str] = field(default_factory=set)  # reports of this archive sent to be read
    duplicates: int = 0
    images: int = 0
    reports: int = 0
    manual: int = 0

    def shown(self, parts: tuple[str, ...]) -> str:
        hospital_id = self.params["hospital_id"]
        return layout.redacted_path(parts, lambda pid: pseudonym_of(hospital_id=hospital_id, patient_id=pid))

    def skip(self, parts: tuple[str, ...], reason: str) -> None:
        self.skipped.append({"name": self.shown(parts), "reason": reason})
        if reason.startswith(MSG_DUPLICATE):
            self.duplicates += 1


@dataclass
class _PreparedReport:
    entry: safe_zip.Entry
    parsed: reports.ParsedReport | None
    text: reports.ReportText | None
    reason: str = ""


@dataclass
class _PreparedImage:
    entry: safe_zip.Entry
    analysis: retina.Analysis
    graded: bytes  # what goes to the image store (the masked copy when text was found)
    original: bytes | None  # the metadata-free unmasked original, for the restricted storage


class _NothingNew(Exception):
    """Rolls back an encounter whose every photograph and report was imported before."""


# --- Entry point ---------------------------------------------------------------------------------------------------


def archive_ingest(*, item: JobItem) -> dict:
    """Process one staged archive. Returns the item's result; raises ItemRejected with the reason when refused."""
    job = item.job
    with tempfile.TemporaryDirectory(prefix="remedio-") as scratch_dir:
        scratch = Path(scratch_dir)
        local, md5, size = _fetch(item, scratch)
        archive = _archive_claim(item=item, md5=md5, size=size)
        if archive.status == Archive.Status.COMPLETE:  # this item's earlier run finished; its worker stopped after
            upload_services.unstage(item.staged_name)
            return archive.result
        run = _Run(item=item, archive=archive, params=job.params, diseases=_diseases())
        try:
            result = _ingest(run, local, scratch)
        except safe_zip.ArchiveRefused as refusal:
            archive_purge(archive=archive, extra_files=run.files, extra_image_ids=run.image_ids)
            raise ItemRejected(refusal.message, result=_result(run, refusal.message)) from None
        except BaseException:
            archive_purge(archive=archive, extra_files=run.files, extra_image_ids=run.image_ids)
            raise
    upload_services.unstage(item.staged_name)
    return result


def _ingest(run: _Run, local: Path, scratch: Path) -> dict:
    entries_dir = scratch / "entries"
    entries_dir.mkdir()
    extraction = safe_zip.extract(
        local, entries_dir, shown=run.shown, on_progress=lambda: job_services.item_heartbeat(item=run.item)
    )
    local.unlink(missing_ok=True)  # the entries are out; the archive copy is no longer needed
    for parts, reason in extraction.skipped:
        run.skip(parts, reason)
    grouped = layout.group(extraction.entries)
    for parts, reason in grouped.skipped:
        run.skip(parts, reason)
    if not grouped.encounters:
        raise safe_zip.ArchiveRefused(MSG_NO_ENCOUNTER)
    Archive.objects.filter(pk=run.archive.pk).update(entries=extraction.entry_count)

    # Reports are read (OCR: Tesseract runs as its own process) on one background thread, one after the other and
    # one encounter ahead, while this thread analyses, masks and stores the photographs: the photographs' work hides
    # behind the OCR instead of adding to it. Only the reading is on that thread; every database access stays here.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="remedio-ocr") as reader:
        try:
            pending = _reports_submit(run, reader, grouped.encounters[0])
            for index, encounter in enumerate(grouped.encounters):
                following = grouped.encounters[index + 1] if index + 1 < len(grouped.encounters) else None
                upcoming = _reports_submit(run, reader, following) if following is not None else []
                _encounter_ingest(run, encounter, pending)
                pending = upcoming
                job_services.item_heartbeat(item=run.item)
        except BaseException:
            reader.shutdown(wait=True, cancel_futures=True)
            raise

    if not run.encounters:
        message = MSG_NOTHING_NEW if run.duplicates else MSG_NOTHING_USABLE
        raise safe_zip.ArchiveRefused(message)
    result = _result(run)
    Archive.objects.filter(pk=run.archive.pk).update(
        status=Archive.Status.COMPLETE, completed_at=timezone.now(), result=result
    )
    return result


def _result(run: _Run, refusal: str | None = None) -> dict:
    if refusal:
        summary = "Archive refused: nothing was stored."
    else:
        summary = (
            f"{len(run.encounters)} encounter{'s' if len(run.encounters) != 1 else ''} imported "
            f"({run.images} photograph{'s' if run.images != 1 else ''}, {run.reports} report"
            f"{'s' if run.reports != 1 else ''}), awaiting verification"
        )
        if run.manual:
            summary += f"; {run.manual} report{'s' if run.manual != 1 else ''} to enter by hand"
        if run.skipped:
            summary += f"; {len(run.skipped)} entr{'ies' if len(run.skipped) != 1 else 'y'} skipped"
        summary += "."
    return {
        "archive_id": run.archive.pk if not refusal else None,
        "encounters": [] if refusal else run.encounters,
        "encounters_created": 0 if refusal else len(run.encounters),
        "images_created": 0 if refusal else run.images,
        "reports_created": 0 if refusal else run.reports,
        "image_ids": [] if refusal else [str(i) for i in run.image_ids],
        "skipped": run.skipped,
        "summary": summary,
    }


# --- Archive: fetch, claim, purge ----------------------------------------------------------------------------------


def _fetch(item: JobItem, scratch: Path) -> tuple[Path, str, int]:
    """Copy the staged archive to a local scratch file (zipfile needs to seek; staging may be S3), hashing it."""
    target = scratch / "archive.zip"
    digest = hashlib.md5()  # noqa: S324 - a content fingerprint (duplicates), not security
    size = 0
    try:
        with storages["staging"].open(item.staged_name, "rb") as source, open(target, "wb") as sink:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                sink.write(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise ItemRejected(MSG_STAGED_MISSING) from None
    return target, digest.hexdigest(), size


def _archive_claim(*, item: JobItem, md5: str, size: int) -> Archive:
    """Claim the archive's MD5 for this item. A left-over claim of this same item (its worker died mid-way) is purged
    and taken again, or returned when that run had completed; a claim by anyone else makes this a duplicate."""
    params = item.job.params
    with transaction.atomic():
        existing = Archive.objects.select_for_update().filter(md5=md5).first()
        if existing is not None:
            if existing.job_item_id != item.pk:
                raise ItemRejected(MSG_DUPLICATE)
            if existing.status == Archive.Status.COMPLETE:
                return existing
            archive_purge(archive=existing)
        try:
            with transaction.atomic():
                return Archive.objects.create(
                    md5=md5,
                    size=size,
                    job_item=item,
                    job_id=item.job_id,
                    hospital_id=params["hospital_id"],
                    lab_unit_id=params["lab_unit_id"],
                    camera_id=params.get("camera_id"),
                    uploaded_by_id=item.job.created_by_id,
                )
        except IntegrityError:
            raise ItemRejected(MSG_DUPLICATE) from None


def archive_purge(*, archive: Archive, extra_files=(), extra_image_ids=()) -> None:
    """Remove an archive and everything stored for it (rows and files). Used when its processing fails or is refused."""
    encounters = Encounter.objects.filter(archive=archive)
    links = list(EncounterImage.objects.filter(encounter__in=encounters).select_related("image"))
    report_files = list(Report.objects.filter(encounter__in=encounters).values_list("file_name", flat=True))
    patient_ids = set(encounters.values_list("patient_id", flat=True))
    image_ids = {link.image_id for link in links} | set(extra_image_ids)
    files = list(extra_files)
    for link in links:
        files += [("default", link.image.file.name), ("default", link.image.thumbnail.name)]
        if link.original_name:
            files.append(("restricted", link.original_name))
    for image in Image.objects.filter(pk__in=set(extra_image_ids) - {link.image_id for link in links}):
        files += [("default", image.file.name), ("default", image.thumbnail.name)]
    files += [("restricted", name) for name in report_files if name]
    with transaction.atomic():
        Image.objects.filter(pk__in=image_ids).delete()
        Archive.objects.filter(pk=archive.pk).delete()
        Patient.objects.filter(pk__in=patient_ids, encounters__isnull=True).delete()
    _delete_files(files)


def _delete_files(files) -> None:
    for alias, name in files:
        if not name:
            continue
        try:
            storages[alias].delete(name)
        except Exception:
            log.warning("Could not delete %s file %s", alias, name, exc_info=True)


def _diseases() -> dict[str, Disease]:
    return {d.code: d for d in Disease.objects.filter(code__in=["DR", "AMD", "GLAUCOMA"])}


# --- One encounter -------------------------------------------------------------------------------------------------


def _encounter_ingest(run: _Run, found: layout.EncounterLayout, report_futures: list[Future]) -> None:
    folder = found.folder
    prepared_images = [p for p in (_prepare_image(run, entry) for entry in found.images) if p is not None]
    prepared_reports = [future.result() for future in report_futures]
    if not prepared_reports and not prepared_images:
        return

    header = next((p.parsed.header for p in prepared_reports if p.parsed is not None), reports.Header())
    disease = _image_disease(run, prepared_reports)
    params = run.params
    stored_files: list[tuple[str, str]] = []
    stored_images: list = []
    try:
        with transaction.atomic():
            patient, created = patient_resolve(
                hospital_id=params["hospital_id"], patient_id=folder.patient_id, name=folder.name, sex=header.sex
            )
            encounter = Encounter.objects.create(
                patient=patient,
                archive=run.archive,
                hospital_id=params["hospital_id"],
                lab_unit_id=params["lab_unit_id"],
                camera_id=params.get("camera_id"),
                capture_date=folder.capture_date,
                age_encrypted=identity.encrypt(header.age) if header.age else "",
            )
            notes = [] if found.reports else [NOTE_NO_REPORT]
            report_count = manual = 0
            for prepared in prepared_reports:
                report, note = _store_report(run, encounter, prepared, folder, stored_files)
                report_count += 1
                manual += report.status == Report.Status.MANUAL_ENTRY
                notes += note
            image_count = 0
            for position, prepared in enumerate(prepared_images):
                image = _store_image(run, encounter, prepared, position, disease, stored_files)
                if image is None:
                    continue
                stored_images.append(image.pk)
                image_count += 1
                if prepared.original is not None:
                    notes.append(NOTE_MASKED.format(name=prepared.entry.leaf))
            if not report_count and not image_count:
                raise _NothingNew
            encounter.notes = notes
            encounter.needs_manual_entry = bool(manual)
            encounter.save(update_fields=["notes", "needs_manual_entry"])
    except _NothingNew:
        _delete_files(stored_files)
        return
    except BaseException:
        _delete_files(stored_files)
        raise
    run.files += stored_files
    run.image_ids += stored_images
    if created:
        run.patient_ids.append(patient.pk)
    run.images += image_count
    run.reports += report_count
    run.manual += manual
    run.encounters.append(
        {
            "id": encounter.pk,
            "pseudonym": patient.pseudonym,
            "capture_date": folder.capture_date.isoformat(),
            "images": image_count,
            "reports": report_count,
            "needs_manual_entry": bool(manual),
        }
    )


def _image_disease(run: _Run, prepared_reports: list[_PreparedReport]) -> Disease:
    """The primary disease screened, from the reports (DR when they say nothing): the images' ``disease``."""
    kinds = " ".join(p.parsed.kind for p in prepared_reports if p.parsed is not None)
    hints = {hint for p in prepared_reports for hint in layout.report_hints(p.entry.leaf)}
    if "dr" in kinds or "dr" in hints:
        code = "DR"
    elif "glaucoma" in kinds or "glaucoma" in hints:
        code = "GLAUCOMA"
    elif "amd" in kinds or "amd" in hints:
        code = "AMD"
    else:
        code = "DR"
    return run.diseases.get(code) or run.diseases["DR"]


# --- Reports -------------------------------------------------------------------------------------------------------


def _reports_submit(run: _Run, reader: ThreadPoolExecutor, found: layout.EncounterLayout) -> list[Future]:
    """Start reading an encounter's reports in the background; duplicates (a database check) are skipped here."""
    futures = []
    for entry in found.reports:
        seen = entry.md5 in run.report_md5s
        if seen or Report.objects.filter(md5=entry.md5, encounter__hospital_id=run.params["hospital_id"]).exists():
            run.skip(entry.parts, SKIP_REPORT_DUPLICATE)
            continue
        run.report_md5s.add(entry.md5)
        futures.append(reader.submit(_prepare_report, entry))
    return futures


def _prepare_report(entry: safe_zip.Entry) -> _PreparedReport:
    """Read and parse one report (text layer or OCR). No database access: runs on the reading thread."""
    try:
        text = reports.read_pdf(entry.path)
    except reports.ReportUnreadable as unreadable:
        return _PreparedReport(entry=entry, parsed=None, text=None, reason=unreadable.reason)
    parsed = reports.parse(text.text, hints=layout.report_hints(entry.leaf))
    reason = "" if parsed.has_result else reports.MSG_NO_RESULT
    return _PreparedReport(entry=entry, parsed=parsed, text=text, reason=reason)


def _same_id(a: str, b: str) -> bool:
    return identity.normalise_patient_id(a).translate(_CONFUSABLE) == identity.normalise_patient_id(b).translate(
        _CONFUSABLE
    )


def _store_report(run, encounter, prepared: _PreparedReport, folder, stored_files) -> tuple[Report, list[str]]:
    entry, parsed = prepared.entry, prepared.parsed
    name = f"reports/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.pdf"
    with open(entry.path, "rb") as fh:
        name = storages["restricted"].save(name, File(fh, name="report.pdf"))
    stored_files.append(("restricted", name))
    notes = []
    if parsed is None or not parsed.has_result:
        status, reason = Report.Status.MANUAL_ENTRY, prepared.reason
        notes.append(NOTE_MANUAL.format(name=entry.leaf, reason=reason))
    elif parsed.missing:
        status = Report.Status.NEEDS_REVIEW
        reason = f"Not found in the report: {', '.join(parsed.missing)}."
        notes.append(NOTE_REVIEW.format(name=entry.leaf, missing=", ".join(parsed.missing)))
    else:
        status, reason = Report.Status.PARSED, ""
    raw = prepared.text.text if prepared.text else ""
    identifiers = [folder.name, folder.patient_id]
    if parsed is not None:
        identifiers += [parsed.header.name, parsed.header.patient_id]
        if parsed.header.patient_id and not _same_id(parsed.header.patient_id, folder.patient_id):
            notes.append(NOTE_ID_MISMATCH.format(name=entry.leaf))
    report = Report.objects.create(
        encounter=encounter,
        entry_name=entry.leaf[:255],
        file_name=name,
        md5=entry.md5,
        size=entry.size,
        kind=parsed.kind if parsed is not None else Report.Kind.UNKNOWN,
        status=status,
        status_reason=reason[:500],
        extraction=prepared.text.method if prepared.text else "",
        pages=len(prepared.text.pages) if prepared.text else 0,
        model_version=parsed.model_version if parsed is not None else "",
        dr_result=parsed.dr_result if parsed else "",
        dr_referable=parsed.dr_referable if parsed else None,
        amd_result=parsed.amd_result if parsed else "",
        amd_referable=parsed.amd_referable if parsed else None,
        glaucoma_result=parsed.glaucoma_result if parsed else "",
        glaucoma_referable=parsed.glaucoma_referable if parsed else None,
        vcdr_od=parsed.vcdr_od if parsed else None,
        vcdr_os=parsed.vcdr_os if parsed else None,
        raw_text_encrypted=identity.encrypt(raw),
        raw_text_redacted=reports.redact(raw, identifiers=[i for i in identifiers if i]),
        parsed=parsed.as_dict() if parsed is not None else {},
    )
    if status != Report.Status.MANUAL_ENTRY:
        AIResult.objects.bulk_create(ai_results_for(report, run.diseases, source=AIResult.Source.REPORT))
    return report, notes


def ai_results_for(report: Report, diseases: dict[str, Disease], *, source: str, user=None) -> list[AIResult]:
    """The Medios AI answers a report carries, one row per target (DR, AMD, DR or AMD, glaucoma)."""
    common = {
        "encounter_id": report.encounter_id,
        "report": report,
        "model_version": report.model_version,
        "source": source,
        "recorded_by": user,
    }
    rows = []
    combined = report.dr_result and report.dr_result == report.amd_result
    if combined:
        rows.append(
            AIResult(target=AIResult.Target.DR_OR_AMD, result=report.dr_result, referable=report.dr_referable, **common)
        )
    else:
        if report.dr_result:
            rows.append(
                AIResult(
                    target=AIResult.Target.DR,
                    disease=diseases.get("DR"),
                    result=report.dr_result,
                    referable=report.dr_referable,
                    **common,
                )
            )
        if report.amd_result:
            rows.append(
                AIResult(
                    target=AIResult.Target.AMD,
                    disease=diseases.get("AMD"),
                    result=report.amd_result,
                    referable=report.amd_referable,
                    **common,
                )
            )
    if report.glaucoma_result:
        rows.append(
            AIResult(
                target=AIResult.Target.GLAUCOMA,
                disease=diseases.get("GLAUCOMA"),
                result=report.glaucoma_result,
                referable=report.glaucoma_referable,
                vcdr_od=report.vcdr_od,
                vcdr_os=report.vcdr_os,
                **common,
            )
        )
    return rows


# --- Photographs ---------------------------------------------------------------------------------------------------


def _prepare_image(run: _Run, entry: safe_zip.Entry) -> _PreparedImage | None:
    """Decode, analyse and (when burnt-in text is found) mask one photograph, outside any transaction."""
    if Image.objects.filter(md5=entry.md5).exists():
        run.skip(entry.parts, MSG_DUPLICATE)
        return None
    data = entry.path.read_bytes()  # one photograph at a time, at most REMEDIO_MAX_ENTRY_BYTES
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            width, height = PILImage.open(io.BytesIO(data)).size
            if width * height > settings.IMAGE_MAX_PIXELS:
                run.skip(
                    entry.parts,
                    imaging.MSG_BOMB.format(width=width, height=height, max_mp=settings.IMAGE_MAX_PIXELS // 1_000_000),
                )
                return None
            analysis = retina.analyse(data)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, PILImage.DecompressionBombError,
            PILImage.DecompressionBombWarning):  # fmt: skip
        run.skip(entry.parts, imaging.MSG_CORRUPT)
        return None
    if not analysis.text_boxes:
        return _PreparedImage(entry=entry, analysis=analysis, graded=data, original=None)
    try:
        cleaned = imaging.clean(data)
    except ItemRejected as rejected:
        run.skip(entry.parts, rejected.message)
        return None
    masked = retina.render_masked(cleaned.data, analysis.text_boxes)
    return _PreparedImage(entry=entry, analysis=analysis, graded=masked, original=cleaned.data)


def _store_image(run: _Run, encounter, prepared: _PreparedImage, position, disease, stored_files) -> Image | None:
    entry, analysis = prepared.entry, prepared.analysis
    job = run.item.job
    original_name = ""
    if prepared.original is not None:
        original_name = storages["restricted"].save(
            f"originals/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.jpg", ContentFile(prepared.original)
        )
        stored_files.append(("restricted", original_name))
    params = {
        "hospital_id": run.params["hospital_id"],
        "lab_unit_id": run.params["lab_unit_id"],
        "camera_id": run.params.get("camera_id"),
        "disease_id": disease.pk,
        "area_id": None,
        "mydriatic": False,
    }
    try:
        image = upload_services.image_store(
            data=prepared.graded,
            original_name=entry.leaf,
            params=params,
            uploaded_by=job.created_by,
            job_item=run.item,
            client_ip=job.client_ip,
            user_agent=job.user_agent,
            source=Image.Source.ZIP,
            ready_for_grading=False,
            md5=entry.md5,
        )
    except ItemRejected as rejected:
        run.skip(entry.parts, rejected.message)
        if original_name:
            _delete_files([("restricted", original_name)])
            stored_files.remove(("restricted", original_name))
        return None
    stored_files += [("default", image.file.name), ("default", image.thumbnail.name)]
    boxes = analysis.text_boxes
    EncounterImage.objects.create(
        image=image,
        encounter=encounter,
        entry_name=entry.leaf[:255],
        capture_time=layout.parse_capture_time(entry.leaf),
        position=position,
        laterality_suggestion=analysis.laterality,
        laterality_confidence=analysis.laterality_confidence,
        mask_state=MaskState.SUGGESTED if boxes else MaskState.NONE,
        mask_boxes=boxes,
        mask_suggested=boxes,
        mask_confidence=analysis.text_confidence,
        original_name=original_name,
    )
    return image
