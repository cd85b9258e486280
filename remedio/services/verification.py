"""Verification of an encounter by a data manager: patient fields, report results, and per photograph laterality,
field, gradability and mask. Verifying sends the gradable photographs into grading (one set of grading tasks per
photograph and disease); undo takes them back out while no grading has started.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.utils import timezone

from accounts import access
from accounts.models import Area, Disease
from common.api import Conflict, Forbidden, ServiceError
from remedio import identity, retina
from remedio import reports as report_text
from remedio.models import AIResult, Archive, Encounter, EncounterImage, Field, Laterality, MaskState, Report
from remedio.services.ingest import ai_results_for
from remedio.services.patients import patient_resolve
from uploads import imaging
from uploads.models import GradingStatus, Image

log = logging.getLogger(__name__)

MSG_NOT_ALLOWED = "Your role does not allow verifying encounters (data managers and admins do)."
MSG_ALREADY = "This encounter is already verified. Undo the verification first to change it."
MSG_NOT_VERIFIED = "This encounter is not verified, so there is nothing to undo."
MSG_GRADING_STARTED = (
    "Grading has started on {count} photograph(s) of this encounter, so its verification can no longer be undone."
)
MSG_MISSING_IMAGES = "Every photograph needs a decision. Missing for: {names}."
MSG_UNKNOWN_IMAGE = "Photograph {value!r} is not part of this encounter."
MSG_UNKNOWN_REPORT = "Report {value!r} is not part of this encounter."
MSG_NEEDS = "{name}: {what}."
MSG_LATERALITY = "laterality must be one of: right, left"
MSG_FIELD = "field must be one of: disc, macula"
MSG_GRADABLE = "say whether it is gradable (true or false)"
MSG_MASK = "mask must be one of: confirm, clear, adjust (with boxes)"
MSG_REPORT_EMPTY = "enter at least one result from the PDF, or mark the report unusable"
MSG_RESULT = "{field} must be one of: {allowed} (or empty)"
MSG_VCDR = "{field} must be a number from 0 to 1"
MSG_DISEASES = "Choose the diseases to grade: {allowed}."
MSG_NO_IDENTIFIERS = "Your role does not allow changing patient identifiers."
MSG_AGE = "Age must be a whole number from 0 to 130."
MSG_SEX = "Sex must be one of: M, F, O (or empty)."
MSG_PATIENT_ID = "The patient ID cannot be empty."
MSG_SAME_VISIT = (
    "Another encounter of the same export already has this patient ID and capture date ({pseudonym}): verify that "
    "encounter instead, or correct the patient ID."
)

RESULT_CHOICES = {
    "dr_result": [report_text.DR_NEGATIVE, report_text.DR_POSITIVE, report_text.DR_AMD_NEGATIVE, report_text.DR_AMD_POSITIVE],
    "amd_result": [report_text.AMD_NEGATIVE, report_text.AMD_POSITIVE, report_text.DR_AMD_NEGATIVE, report_text.DR_AMD_POSITIVE],
    "glaucoma_result": [
        report_text.GLAUCOMA_NEGATIVE,
        report_text.GLAUCOMA_POSITIVE,
        report_text.GLAUCOMA_REFERRAL,
        report_text.GLAUCOMA_IMMEDIATE,
    ],
}
REFERABLE_OF = {
    "dr_result": report_text.DR_RESULTS,
    "amd_result": report_text.AMD_RESULTS,
    "glaucoma_result": report_text.GLAUCOMA_RESULTS,
}
REPORT_FIELDS = ("dr_result", "amd_result", "glaucoma_result", "vcdr_od", "vcdr_os")


@dataclass
class ImageDecision:
    image_id: str
    laterality: str = ""
    field: str = ""
    gradable: bool | None = None
    mask: str = "confirm"
    boxes: list | None = None


@dataclass
class ReportDecision:
    report_id: int
    values: dict = field(default_factory=dict)  # any of REPORT_FIELDS; missing keys keep what was read
    unusable: bool = False


@dataclass
class PatientFields:
    """Corrections to identifying fields; ``None`` keeps the stored value."""

    name: str | None = None
    patient_id: str | None = None
    age: str | int | None = None
    sex: str | None = None


def _locked(user, encounter_id) -> Encounter:
    if not access.can(user, "verify_encounters"):
        raise Forbidden(MSG_NOT_ALLOWED)
    qs = Encounter.objects.select_for_update(of=("self",)).filter(archive__status=Archive.Status.COMPLETE)
    return access.get_in_scope(qs.select_related("patient"), user, pk=encounter_id)


def default_diseases(encounter: Encounter, encounter_reports: list[Report], images: list[Image]) -> list[str]:
    """Diseases suggested for grading: those the reports screened for, else the photographs' own disease."""
    codes = []
    for report in encounter_reports:
        kind = report.kind
        if report.dr_result or kind.startswith("dr"):
            codes.append("DR")
        if report.amd_result or "amd" in kind:
            codes.append("AMD")
        if report.glaucoma_result or "glaucoma" in kind:
            codes.append("GLAUCOMA")
    if not codes:
        codes = [image.disease.code for image in images if image.disease_id] or ["DR"]
    return list(dict.fromkeys(codes))


def _decimal(value, name: str, errors: list[str], label: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        number = Decimal(str(value).replace(",", ".")).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        errors.append(MSG_NEEDS.format(name=label, what=MSG_VCDR.format(field=name)))
        return None
    if not Decimal(0) <= number <= Decimal(1):
        errors.append(MSG_NEEDS.format(name=label, what=MSG_VCDR.format(field=name)))
        return None
    return number


def _report_values(report: Report, decision: ReportDecision | None, errors: list[str]) -> dict | None:
    """The report's verified values (``None``: unusable), or errors."""
    label = f"Report {report.entry_name}"
    if decision is not None and decision.unusable:
        return None
    values = {
        "dr_result": report.dr_result,
        "amd_result": report.amd_result,
        "glaucoma_result": report.glaucoma_result,
        "vcdr_od": report.vcdr_od,
        "vcdr_os": report.vcdr_os,
    }
    for key, raw in (decision.values if decision else {}).items():
        if key not in REPORT_FIELDS:
            continue
        if key in RESULT_CHOICES:
            text = " ".join(str(raw or "").split())
            match = next((c for c in RESULT_CHOICES[key] if c.lower() == text.lower()), None)
            if text and match is None:
                allowed = "; ".join(RESULT_CHOICES[key])
                errors.append(MSG_NEEDS.format(name=label, what=MSG_RESULT.format(field=key, allowed=allowed)))
                continue
            values[key] = match or ""
        else:
            values[key] = _decimal(raw, key, errors, label)
    if not (values["dr_result"] or values["amd_result"] or values["glaucoma_result"]):
        errors.append(MSG_NEEDS.format(name=label, what=MSG_REPORT_EMPTY))
    return values


def _check_patient(user, fields: PatientFields | None, errors: list[str]) -> PatientFields | None:
    if fields is None or all(v is None for v in (fields.name, fields.patient_id, fields.age, fields.sex)):
        return None
    if not access.can(user, "view_identifiers"):
        raise Forbidden(MSG_NO_IDENTIFIERS)
    if fields.patient_id is not None and not fields.patient_id.strip():
        errors.append(MSG_PATIENT_ID)
    if fields.age not in (None, ""):
        try:
            age = int(str(fields.age).strip())
            if not 0 <= age <= 130:
                raise ValueError
            fields.age = str(age)
        except ValueError:
            errors.append(MSG_AGE)
    if fields.sex not in (None, ""):
        sex = str(fields.sex).strip().upper()[:1]
        if sex not in {"M", "F", "O"}:
            errors.append(MSG_SEX)
        fields.sex = sex
    return fields


def _check_same_visit(encounter: Encounter, fields: PatientFields | None, errors: list[str]) -> None:
    """A corrected patient ID must not turn this encounter into a second copy of another one of the same export."""
    if fields is None or not (fields.patient_id or "").strip():
        return
    key = identity.patient_key(hospital_id=encounter.hospital_id, patient_id=fields.patient_id)
    if key == encounter.patient.key:
        return
    twin = (
        Encounter.objects.filter(
            patient__key=key,
            capture_date=encounter.capture_date,
            lab_unit_id=encounter.lab_unit_id,
            camera_id=encounter.camera_id,
            archive_id=encounter.archive_id,
        )
        .select_related("patient")
        .first()
    )
    if twin is not None:
        errors.append(MSG_SAME_VISIT.format(pseudonym=twin.display))


@dataclass
class _MaskChange:
    link: EncounterImage
    image: Image
    new_file: str
    new_thumbnail: str
    new_original: str  # a newly kept original (restricted), when the image had none
    boxes: list
    state: str


def _mask_change(link: EncounterImage, image: Image, decision: ImageDecision, created: list) -> _MaskChange | None:
    """Render the new graded copy when the verifier clears or adjusts the mask; ``None`` when nothing changes."""
    if decision.mask == "confirm":
        return None
    boxes = [] if decision.mask == "clear" else decision.boxes
    if boxes == link.mask_boxes:
        return None
    new_original = ""
    if link.original_name:
        with storages["restricted"].open(link.original_name, "rb") as fh:
            original = fh.read()
    else:
        with storages["default"].open(image.file.name, "rb") as fh:
            original = fh.read()
        new_original = storages["restricted"].save(
            f"originals/{timezone.now():%Y/%m}/{uuid.uuid4().hex}.jpg", ContentFile(original)
        )
        created.append(("restricted", new_original))
    graded = retina.render_masked(original, boxes) if boxes else original
    thumbnail = imaging.make_thumbnail(retina.open_oriented(graded))
    ext = image.file.name.rsplit(".", 1)[-1] if not boxes else "jpg"
    prefix = f"{timezone.now():%Y/%m}/{image.pk.hex}-{uuid.uuid4().hex[:8]}"
    store = storages["default"]
    new_file = store.save(f"{prefix}.{ext}", ContentFile(graded))
    created.append(("default", new_file))
    new_thumbnail = store.save(f"thumbs/{prefix}.jpg", ContentFile(thumbnail))
    created.append(("default", new_thumbnail))
    return _MaskChange(
        link=link,
        image=image,
        new_file=new_file,
        new_thumbnail=new_thumbnail,
        new_original=new_original,
        boxes=boxes,
        state=MaskState.CLEARED if not boxes else MaskState.ADJUSTED,
    )


def encounter_verify(
    *,
    user,
    encounter_id,
    images: list[ImageDecision],
    reports: list[ReportDecision] | None = None,
    patient: PatientFields | None = None,
    diseases: list[str] | None = None,
) -> dict:
    """Record the verification and send every gradable photograph into grading for the chosen diseases.

    All or nothing: any invalid field refuses the whole verification with every problem listed. New graded copies
    (mask cleared or adjusted) are written before the transaction and removed again if it fails; the replaced files
    are deleted only after it commits. Returns ``{"encounter": Encounter, "tasks_created": n}``.
    """
    from grading.services import grading_tasks_create

    created_files: list[tuple[str, str]] = []
    try:
        with transaction.atomic():
            encounter = _locked(user, encounter_id)
            if encounter.status != Encounter.Status.AWAITING:
                raise Conflict(MSG_ALREADY)
            links = list(encounter.images.select_related("image", "image__disease").order_by("position", "id"))
            encounter_reports = list(encounter.reports.order_by("entry_name", "id"))
            errors: list[str] = []

            by_image = {str(link.image_id): link for link in links}
            decisions: dict[str, ImageDecision] = {}
            for decision in images:
                key = str(decision.image_id)
                if key not in by_image:
                    errors.append(MSG_UNKNOWN_IMAGE.format(value=key))
                    continue
                decisions[key] = decision
            missing = [link.entry_name for key, link in by_image.items() if key not in decisions]
            if missing:
                errors.append(MSG_MISSING_IMAGES.format(names=", ".join(missing)))
            for key, decision in decisions.items():
                link = by_image[key]
                label = f"Photograph {link.entry_name}"
                if decision.gradable is None:
                    errors.append(MSG_NEEDS.format(name=label, what=MSG_GRADABLE))
                if decision.laterality not in Laterality.values and (decision.gradable or decision.laterality):
                    errors.append(MSG_NEEDS.format(name=label, what=MSG_LATERALITY))
                if decision.field not in Field.values and (decision.gradable or decision.field):
                    errors.append(MSG_NEEDS.format(name=label, what=MSG_FIELD))
                if decision.mask not in ("confirm", "clear", "adjust"):
                    errors.append(MSG_NEEDS.format(name=label, what=MSG_MASK))
                elif decision.mask == "adjust":
                    try:
                        decision.boxes = retina.valid_boxes(decision.boxes, link.image.width, link.image.height)
                    except (ValueError, TypeError) as exc:
                        errors.append(MSG_NEEDS.format(name=label, what=str(exc).rstrip(".")))
                    if not decision.boxes and not errors:
                        decision.mask = "clear"

            by_report = {str(report.pk): report for report in encounter_reports}
            report_decisions: dict[str, ReportDecision] = {}
            for decision in reports or []:
                key = str(decision.report_id)
                if key not in by_report:
                    errors.append(MSG_UNKNOWN_REPORT.format(value=key))
                    continue
                report_decisions[key] = decision
            report_values = {
                key: _report_values(report, report_decisions.get(key), errors) for key, report in by_report.items()
            }

            all_diseases = {d.code.upper(): d for d in Disease.objects.all()}
            codes = [str(c).strip().upper() for c in (diseases or []) if str(c).strip()]
            if not codes:
                codes = default_diseases(encounter, encounter_reports, [link.image for link in links])
            unknown = [c for c in codes if c not in all_diseases]
            if unknown or not codes:
                errors.append(MSG_DISEASES.format(allowed=", ".join(all_diseases)))
            patient_fields = _check_patient(user, patient, errors)
            _check_same_visit(encounter, patient_fields, errors)
            if errors:
                raise ServiceError(" ".join(errors), errors=errors)

            chosen = [all_diseases[c] for c in dict.fromkeys(codes)]
            now = timezone.now()
            mask_changes = []
            for key, decision in decisions.items():
                change = _mask_change(by_image[key], by_image[key].image, decision, created_files)
                if change:
                    mask_changes.append(change)
            old_files = _apply_masks(mask_changes)

            _apply_patient(encounter, patient_fields)
            _apply_reports(user, encounter_reports, report_values, now)
            areas = {a.code: a for a in Area.objects.filter(code__in=Laterality.values)}
            gradable_images = _apply_images(links, decisions, areas, chosen)
            encounter.status = Encounter.Status.VERIFIED
            encounter.verified_by = user
            encounter.verified_at = now
            encounter.needs_manual_entry = False
            encounter.save(update_fields=["status", "verified_by", "verified_at", "needs_manual_entry", "patient"])
            tasks = 0
            for image in gradable_images:
                tasks += len(grading_tasks_create(image=image, diseases=chosen))
            transaction.on_commit(lambda: _delete_quietly(old_files))
    except BaseException:
        _delete_quietly(created_files)
        raise
    return {"encounter": encounter, "tasks_created": tasks}


def _apply_masks(changes: list[_MaskChange]) -> list[tuple[str, str]]:
    old = []
    for change in changes:
        old += [("default", change.image.file.name), ("default", change.image.thumbnail.name)]
        Image.objects.filter(pk=change.image.pk).update(file=change.new_file, thumbnail=change.new_thumbnail)
        change.image.file.name = change.new_file
        change.image.thumbnail.name = change.new_thumbnail
        change.link.mask_boxes = change.boxes
        change.link.mask_state = change.state
        if change.new_original:
            change.link.original_name = change.new_original
    return old


def _apply_patient(encounter: Encounter, fields: PatientFields | None) -> None:
    if fields is None:
        return
    patient = encounter.patient
    if fields.patient_id is not None:
        current = identity.decrypt(patient.patient_id_encrypted)
        if identity.normalise_patient_id(fields.patient_id) != identity.normalise_patient_id(current):
            old = patient
            name = fields.name if fields.name is not None else identity.decrypt(old.name_encrypted)
            sex = fields.sex if fields.sex is not None else identity.decrypt(old.sex_encrypted)
            patient, _ = patient_resolve(
                hospital_id=encounter.hospital_id, patient_id=fields.patient_id.strip(), name=name, sex=sex
            )
            encounter.patient = patient
            encounter.save(update_fields=["patient"])
            if not old.encounters.exists():
                old.delete()
    changed = []
    if fields.name is not None:
        patient.name_encrypted = identity.encrypt(" ".join(fields.name.split()))
        changed.append("name_encrypted")
    if fields.sex is not None:
        patient.sex_encrypted = identity.encrypt(fields.sex)
        changed.append("sex_encrypted")
    if changed:
        patient.save(update_fields=changed)
    if fields.age is not None:
        encounter.age_encrypted = identity.encrypt(fields.age)
        encounter.save(update_fields=["age_encrypted"])


def _apply_reports(user, encounter_reports: list[Report], values_by_id: dict, now) -> None:
    diseases = {d.code: d for d in Disease.objects.filter(code__in=["DR", "AMD", "GLAUCOMA"])}
    for report in encounter_reports:
        values = values_by_id[str(report.pk)]
        if values is None:
            report.status = Report.Status.UNUSABLE
            AIResult.objects.filter(report=report, is_current=True).update(is_current=False)
        else:
            before = (report.dr_result, report.amd_result, report.glaucoma_result, report.vcdr_od, report.vcdr_os)
            for key, value in values.items():
                setattr(report, key, value)
            for key in RESULT_CHOICES:
                referable = REFERABLE_OF[key].get(getattr(report, key))
                setattr(report, key.replace("_result", "_referable"), referable)
            after = (report.dr_result, report.amd_result, report.glaucoma_result, report.vcdr_od, report.vcdr_os)
            has_current = AIResult.objects.filter(report=report, is_current=True).exists()
            if before != after or not has_current:
                AIResult.objects.filter(report=report, is_current=True).update(is_current=False)
                AIResult.objects.bulk_create(
                    ai_results_for(report, diseases, source=AIResult.Source.VERIFIER, user=user)
                )
            report.status = Report.Status.VERIFIED
        report.verified_by = user
        report.verified_at = now
        report.save()


def _apply_images(links, decisions: dict, areas: dict, chosen: list[Disease]) -> list[Image]:
    gradable = []
    for link in links:
        decision = decisions[str(link.image_id)]
        link.laterality = decision.laterality if decision.laterality in Laterality.values else ""
        link.field = decision.field if decision.field in Field.values else ""
        link.gradable = bool(decision.gradable)
        if decision.mask == "confirm" and link.mask_state == MaskState.SUGGESTED:
            link.mask_state = MaskState.CONFIRMED
        link.save()
        image = link.image
        update = {"area": areas.get(link.laterality)}
        if chosen and image.disease_id not in {d.pk for d in chosen}:
            update["disease"] = chosen[0]
        Image.objects.filter(pk=image.pk).update(**update)
        for name, value in update.items():
            setattr(image, name, value)
        if link.gradable:
            gradable.append(image)
    return gradable


def encounter_unverify(*, user, encounter_id) -> Encounter:
    """Undo a verification while no grading has started: the photographs leave the grading queues and the encounter
    awaits verification again, with the decisions kept as the starting point."""
    from remedio.services.grading_link import grading_withdraw

    with transaction.atomic():
        encounter = _locked(user, encounter_id)
        if encounter.status != Encounter.Status.VERIFIED:
            raise Conflict(MSG_NOT_VERIFIED)
        images = list(Image.objects.select_for_update().filter(encounter_link__encounter=encounter))
        started = [i for i in images if i.grading_status not in (GradingStatus.NOT_QUEUED, GradingStatus.AWAITING)]
        if started:
            raise Conflict(MSG_GRADING_STARTED.format(count=len(started)))
        if not grading_withdraw(image_ids=[i.pk for i in images]):
            raise Conflict(MSG_GRADING_STARTED.format(count="some"))
        for report in encounter.reports.all():
            if report.status == Report.Status.VERIFIED:
                has_result = report.dr_result or report.amd_result or report.glaucoma_result
                report.status = Report.Status.PARSED if has_result else Report.Status.MANUAL_ENTRY
            elif report.status == Report.Status.UNUSABLE:
                report.status = Report.Status.MANUAL_ENTRY
            report.verified_by = None
            report.verified_at = None
            report.save(update_fields=["status", "verified_by", "verified_at"])
        encounter.status = Encounter.Status.AWAITING
        encounter.verified_by = None
        encounter.verified_at = None
        encounter.needs_manual_entry = encounter.reports.filter(status=Report.Status.MANUAL_ENTRY).exists()
        encounter.save(update_fields=["status", "verified_by", "verified_at", "needs_manual_entry"])
    return encounter


def _delete_quietly(files) -> None:
    for alias, name in files:
        if name:
            try:
                storages[alias].delete(name)
            except Exception:
                log.warning("Could not delete %s file %s", alias, name, exc_info=True)


__all__ = [
    "ImageDecision",
    "PatientFields",
    "ReportDecision",
    "default_diseases",
    "encounter_unverify",
    "encounter_verify",
]
