"""Writes of the image dashboard: metadata changes, pixel edits, restore, deletion; single and bulk.

Each function is its own outermost transaction and is all-or-nothing: a refused request (bad value, image outside
the user's scope, too many images, missing confirmation) changes nothing. Every change is recorded in the audit
trail with who, when, IP and user agent, and old → new values. Stored files are removed only after the deleting
transaction commits, so a rollback never leaves rows pointing at missing files.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import ProtectedError, RestrictedError
from django.utils import timezone

from accounts import access
from accounts.models import Area, Camera, Disease, Hospital, LabUnit
from common.api import Conflict, Forbidden, ServiceError
from uploads import audit, editing, hooks, imaging, selectors
from uploads.audit import Action, Entry, Origin
from uploads.filters import MAX_SELECTION, parse_ids
from uploads.models import GradingStatus, Image, ImageEdit
from uploads.signals import image_metadata_changed

log = logging.getLogger(__name__)

MSG_NOT_ALLOWED = (
    "Your role does not allow changing images. Ask an administrator for the uploader or data manager role."
)
MSG_NO_ACCESS = "You don't have access to the selected lab unit"
MSG_WRONG_HOSPITAL = "The selected lab unit does not belong to the selected hospital."
MSG_HOSPITAL_ONLY = (
    "To move images to another hospital, choose one of its lab units: the lab unit decides where an image belongs."
)
MSG_NOTHING_TO_CHANGE = "Choose at least one field to change (lab unit, camera, disease, area or mydriatic)."
MSG_NO_IMAGES = "Select at least one image."
MSG_PREGRADED = (
    "Pre-graded images cannot be edited: their grades refer to the original pixels. You can still edit their metadata."
)
MSG_GRADING_STARTED = (
    "This image can no longer be edited: its grading has started ({status}). Pixels may only change while the image "
    "is not in grading or still awaiting its first grade."
)
MSG_NO_EDIT = "This image has no edited version: it already shows the original."
MSG_CONFIRM_COUNT = (
    "Confirm the deletion of {n} image{s}: deleted images and their files cannot be recovered. "
    "Send confirm_count={n} to confirm."
)
MSG_GRADED_NOT_ADMIN = (
    "{n} of the selected images {have} grades ({names}): only an admin can delete graded images. "
    "Remove {them} from the selection."
)
MSG_GRADED_CONFIRM = (
    "{n} of the selected images {have} grades ({names}). Deleting them also deletes their grades and consensus. "
    "Confirm a second time to go ahead (confirm_graded=true)."
)
MSG_PROTECTED = "These images cannot be deleted because other records still refer to them: {what}."

EDITABLE_STATUSES = (GradingStatus.NOT_QUEUED, GradingStatus.AWAITING)
METADATA_FIELDS = ("lab_unit", "camera", "disease", "area", "mydriatic")
FIELD_LABELS = {
    "hospital": "Hospital",
    "lab_unit": "Lab unit",
    "camera": "Camera",
    "disease": "Disease",
    "area": "Area",
    "mydriatic": "Mydriatic",
}


class NotFound(ServiceError):
    status_code = 404


def _require_manage(user) -> None:
    if not access.can(user, "manage_images"):
        raise Forbidden(MSG_NOT_ALLOWED)


def _names(images: Iterable[Image], limit: int = 5) -> str:
    names = [image.original_name for image in images]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _ids(raw, *, require: bool = True) -> list[uuid.UUID]:
    values = [str(value).strip() for value in (raw or []) if str(value).strip()]
    errors: list[str] = []
    ids = parse_ids(values, errors, limit=MAX_SELECTION)
    if errors:
        raise ServiceError(" ".join(errors))
    if require and not ids:
        raise ServiceError(MSG_NO_IMAGES)
    return ids


def _locked_in_scope(user, ids: list[uuid.UUID]) -> list[Image]:
    images = selectors.images_for_update(user, ids)
    if len(images) != len(ids):
        found = {image.pk for image in images}
        missing = [str(pk) for pk in ids if pk not in found]
        raise NotFound(
            f"Image{'s' if len(missing) > 1 else ''} not found: {', '.join(missing[:10])}"
            f"{' …' if len(missing) > 10 else ''}. Nothing was changed.",
            missing=missing,
        )
    return images


# --- Metadata ---------------------------------------------------------------------------------------------------------


@dataclass
class MetadataChange:
    """Resolved target values; None means "leave unchanged"."""

    lab_unit: LabUnit | None = None
    camera: Camera | None = None
    disease: Disease | None = None
    area: Area | None = None
    mydriatic: bool | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, name) is None for name in METADATA_FIELDS)


def _lookup(model, value, label: str):
    text = str(value).strip()
    try:
        if text.isdigit():
            return model.objects.get(pk=int(text))
        return model.objects.get(code__iexact=text)
    except model.DoesNotExist:
        raise ServiceError(f"Unknown {label}: {text!r}. See /api/reference/ for the values you may use.") from None


def _bool(value, label: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on", "y", "mydriatic"}:
        return True
    if text in {"0", "false", "no", "off", "n", "non-mydriatic", "non_mydriatic", "non mydriatic"}:
        return False
    raise ServiceError(f"{label} must be yes or no (true/false), got {str(value)[:40]!r}.")


def metadata_resolve(*, user, data: Mapping) -> MetadataChange:
    """Read a metadata change (ids or codes) from form or API data; empty values mean "leave unchanged".

    The lab unit must be inside the user's scope; a hospital, when given, must be the lab unit's hospital.
    """
    change = MetadataChange()

    def given(name: str):
        if name not in data:
            return None
        value = data.get(name)
        if value is None:
            raise ServiceError(f"{FIELD_LABELS[name]} cannot be emptied: choose a value or leave the field out.")
        return value if isinstance(value, bool) or str(value).strip() else None

    for name, model in (("camera", Camera), ("disease", Disease), ("area", Area)):
        value = given(name)
        if value is not None:
            setattr(change, name, _lookup(model, value, name))
    lab_unit_value = given("lab_unit")
    hospital_value = given("hospital")
    if lab_unit_value is not None:
        change.lab_unit = _lookup(LabUnit, lab_unit_value, "lab unit")
        if not access.can_use_lab_unit(user, change.lab_unit):
            raise Forbidden(MSG_NO_ACCESS)
    if hospital_value is not None:
        hospital = _lookup(Hospital, hospital_value, "hospital")
        if change.lab_unit is None:
            raise ServiceError(MSG_HOSPITAL_ONLY)
        if change.lab_unit.hospital_id != hospital.pk:
            raise ServiceError(MSG_WRONG_HOSPITAL)
    value = given("mydriatic")
    if value is not None:
        change.mydriatic = _bool(value, "Mydriatic")
    return change


def _label(kind: str, pk, names: dict) -> str:
    if pk is None:
        return "Not set"
    if kind == "mydriatic":
        return "Mydriatic" if pk else "Non mydriatic"
    return names.get(kind, {}).get(pk, f"#{pk}")


@dataclass
class UpdateResult:
    updated: list[Image] = field(default_factory=list)
    unchanged: list[Image] = field(default_factory=list)
    changes: dict = field(default_factory=dict)


def images_metadata_update(*, user, image_ids, data: Mapping, origin: Origin) -> UpdateResult:
    """Apply one metadata change to up to 50 images (also allowed on pre-graded images), all or nothing.

    Each changed image gets an audit event with every changed field's old → new value (ids and names).
    """
    _require_manage(user)
    ids = _ids(image_ids)
    change = metadata_resolve(user=user, data=data)
    if change.empty:
        raise ServiceError(MSG_NOTHING_TO_CHANGE)
    result = UpdateResult()
    with transaction.atomic():
        images = _locked_in_scope(user, ids)
        new = {
            "hospital": change.lab_unit.hospital_id if change.lab_unit else None,
            "lab_unit": change.lab_unit.pk if change.lab_unit else None,
            "camera": change.camera.pk if change.camera else None,
            "disease": change.disease.pk if change.disease else None,
            "area": change.area.pk if change.area else None,
            "mydriatic": change.mydriatic,
        }
        wanted = {name: value for name, value in new.items() if value is not None}
        diffs: dict[uuid.UUID, dict] = {}
        for image in images:
            diff = {}
            for name, value in wanted.items():
                attr = name if name == "mydriatic" else f"{name}_id"
                old = getattr(image, attr)
                if old != value:
                    diff[name] = (old, value)
                    setattr(image, attr, value)
            if diff:
                diffs[image.pk] = diff
                result.updated.append(image)
            else:
                result.unchanged.append(image)
        if result.updated:
            fields = sorted({name for diff in diffs.values() for name in diff})
            Image.objects.bulk_update(result.updated, fields)
            names = _reference_names(
                {name: {v for d in diffs.values() if name in d for v in d[name]} for name in wanted}
            )
            entries = []
            for image in result.updated:
                detail = {
                    name: {
                        "from": old,
                        "to": value,
                        "from_label": _label(name, old, names),
                        "to_label": _label(name, value, names),
                    }
                    for name, (old, value) in diffs[image.pk].items()
                }
                summary = "; ".join(
                    f"{FIELD_LABELS[n]}: {d['from_label']} → {d['to_label']}" for n, d in detail.items()
                )
                entries.append(
                    Entry(
                        action=Action.IMAGE_METADATA_CHANGED,
                        object_type="image",
                        object_id=str(image.pk),
                        lab_unit_id=image.lab_unit_id,
                        summary=summary,
                        details={"changes": detail, "bulk": len(images) > 1},
                    )
                )
                result.changes[image.pk] = detail
            audit.record_many(entries, origin)
            changed_ids = [image.pk for image in result.updated]
            transaction.on_commit(
                lambda: image_metadata_changed.send(sender=Image, image_ids=changed_ids, fields=fields)
            )
    return result


def _reference_names(ids_by_kind: dict[str, set]) -> dict[str, dict]:
    models = {"hospital": Hospital, "lab_unit": LabUnit, "camera": Camera, "disease": Disease, "area": Area}
    names: dict[str, dict] = {}
    for kind, ids in ids_by_kind.items():
        ids = {pk for pk in ids if pk is not None and not isinstance(pk, bool)}
        if kind in models and ids:
            qs = models[kind].objects.filter(pk__in=ids)
            if kind == "lab_unit":
                names[kind] = {unit.pk: f"{unit.name} ({unit.code})" for unit in qs}
            else:
                names[kind] = {obj.pk: obj.name for obj in qs}
    return names


# --- Pixel edits ------------------------------------------------------------------------------------------------------


def edit_refusal(image: Image) -> str | None:
    """Why the pixels of ``image`` may not change now, or None when they may."""
    if image.is_pregraded:
        return MSG_PREGRADED
    if image.grading_status not in EDITABLE_STATUSES:
        return MSG_GRADING_STARTED.format(status=GradingStatus(image.grading_status).label.lower())
    return None


def _delete_files(names: Iterable[str]) -> list[str]:
    store = storages["default"]
    removed = []
    for name in names:
        if not name:
            continue
        try:
            store.delete(name)
            removed.append(name)
        except Exception:  # a file that cannot be removed must not undo a committed change: log it for an operator
            log.warning("Could not delete stored file %s", name, exc_info=True)
    return removed


def _lock_editable(image_id) -> Image:
    locked = Image.objects.select_for_update().get(pk=image_id)
    reason = edit_refusal(locked)
    if reason:
        raise Conflict(reason)
    return locked


def image_edit_save(*, user, image_id, operations, origin: Origin) -> Image:
    """Render ``operations`` on the original and store the result as the image's edited version.

    The original file is only read. New files get new names; the previous edited files are removed after commit.
    The editability check is repeated under a row lock, so an image that entered grading meanwhile is refused.
    """
    _require_manage(user)
    image = selectors.image_get(user, image_id)
    reason = edit_refusal(image)
    if reason:
        raise Conflict(reason)
    plan = editing.plan(operations, image.width, image.height)
    store = storages["default"]
    with store.open(image.file.name, "rb") as fh:
        data = fh.read()
    encoded, result = editing.render(data, image.mime, plan.operations)
    thumbnail = imaging.make_thumbnail(result)
    stem, _, ext = image.file.name.rpartition(".")
    token = uuid.uuid4().hex[:12]
    edited_name = store.save(f"{stem}-edited-{token}.{ext}", ContentFile(encoded))
    thumb_name = ""
    try:
        thumb_name = store.save(f"thumbs/{stem}-edited-{token}.jpg", ContentFile(thumbnail))
        with transaction.atomic():
            locked = _lock_editable(image.pk)
            previous = ImageEdit.objects.filter(image=locked).first()
            old_files = [locked.edited_file.name, previous.thumbnail.name if previous else ""]
            Image.objects.filter(pk=locked.pk).update(edited_file=edited_name)
            now = timezone.now()
            ImageEdit.objects.update_or_create(
                image=locked,
                defaults={
                    "operations": plan.operations,
                    "thumbnail": thumb_name,
                    "width": plan.width,
                    "height": plan.height,
                    "edited_by": user,
                    "edited_at": now,
                },
            )
            audit.record(
                Entry(
                    action=Action.IMAGE_EDITED,
                    object_type="image",
                    object_id=str(locked.pk),
                    lab_unit_id=locked.lab_unit_id,
                    summary=f"Edited: {describe(plan.operations)} ({plan.width}×{plan.height})",
                    details={"operations": plan.operations, "width": plan.width, "height": plan.height},
                ),
                origin,
            )
            transaction.on_commit(lambda: _delete_files(old_files))
    except BaseException:
        _delete_files([edited_name, thumb_name])
        raise
    return selectors.image_for_page(user, image.pk)


def image_edit_restore(*, user, image_id, origin: Origin) -> Image:
    """Drop the edited version: the original shows again. Its files are removed after commit."""
    _require_manage(user)
    image = selectors.image_get(user, image_id)
    with transaction.atomic():
        locked = _lock_editable(image.pk)
        if not locked.edited_file:
            raise Conflict(MSG_NO_EDIT)
        previous = ImageEdit.objects.filter(image=locked).first()
        old_files = [locked.edited_file.name, previous.thumbnail.name if previous else ""]
        Image.objects.filter(pk=locked.pk).update(edited_file="")
        ImageEdit.objects.filter(image=locked).delete()
        audit.record(
            Entry(
                action=Action.IMAGE_RESTORED,
                object_type="image",
                object_id=str(locked.pk),
                lab_unit_id=locked.lab_unit_id,
                summary="Original restored; the edited version was removed",
                details={"operations": previous.operations if previous else []},
            ),
            origin,
        )
        transaction.on_commit(lambda: _delete_files(old_files))
    return selectors.image_for_page(user, image.pk)


def describe(operations: list[dict]) -> str:
    words = []
    for op in operations:
        kind = op["op"]
        if kind == "rotate":
            words.append(f"rotate {op['degrees']}°")
        elif kind == "flip":
            words.append(f"flip {op['axis']}")
        elif kind in ("crop", "mask"):
            words.append(f"{kind} {op['width']}×{op['height']} at {op['x']},{op['y']}")
        else:
            words.append(f"brightness {op['brightness']:g}, contrast {op['contrast']:g}")
    return ", ".join(words)


# --- Deletion ---------------------------------------------------------------------------------------------------------


@dataclass
class DeletePreview:
    images: list[Image]
    graded: list[Image]
    files: list[str]

    @property
    def count(self) -> int:
        return len(self.images)


def _files_of(images: list[Image]) -> list[str]:
    edit_thumbs = dict(
        ImageEdit.objects.filter(image_id__in=[image.pk for image in images]).values_list("image_id", "thumbnail")
    )
    files = []
    for image in images:
        files += [
            name
            for name in (image.file.name, image.thumbnail.name, image.edited_file.name, edit_thumbs.get(image.pk, ""))
            if name
        ]
    return files


def images_delete_preview(*, user, image_ids) -> DeletePreview:
    """What a deletion would remove: the images, which of them have grades, and their stored files."""
    _require_manage(user)
    ids = _ids(image_ids)
    images = list(selectors.images_visible_to(user).filter(pk__in=ids).order_by("original_name"))
    if len(images) != len(ids):
        found = {image.pk for image in images}
        missing = [str(pk) for pk in ids if pk not in found]
        raise NotFound(f"Image{'s' if len(missing) > 1 else ''} not found: {', '.join(missing[:10])}.", missing=missing)
    graded_ids = hooks.images_with_grades(images)
    return DeletePreview(images=images, graded=[i for i in images if i.pk in graded_ids], files=_files_of(images))


@dataclass
class DeleteResult:
    """``files``: the stored files deleted with the images. They are removed after commit; ``files_removed`` fills
    in then (a file that could not be removed is logged for an operator)."""

    deleted: int
    files: list[str]
    files_removed: list[str] = field(default_factory=list)


def _tombstone(image: Image, files: list[str], had_grades: bool) -> dict:
    return {
        "file_name": image.original_name,
        "md5": image.md5,
        "size": image.size,
        "mime": image.mime,
        "width": image.width,
        "height": image.height,
        "hospital_id": image.hospital_id,
        "lab_unit_id": image.lab_unit_id,
        "camera_id": image.camera_id,
        "disease_id": image.disease_id,
        "area_id": image.area_id,
        "mydriatic": image.mydriatic,
        "source": image.source,
        "is_pregraded": image.is_pregraded,
        "dataset_label": image.dataset_label,
        "uploaded_by_id": image.uploaded_by_id,
        "uploaded_at": image.uploaded_at,
        "grading_status": image.grading_status,
        "had_grades": had_grades,
        "edited": bool(image.edited_file),
        "files_removed": files,
    }


def images_delete(
    *, user, image_ids, confirm_count: int | None, confirm_graded: bool = False, origin: Origin
) -> DeleteResult:
    """Delete up to 50 images with their files, all or nothing.

    ``confirm_count`` must equal the number of images (the confirmation names the count). Images with grades may be
    deleted by admins only, and only with ``confirm_graded`` (a second, explicit confirmation); their grades go with
    them. Each image leaves a tombstone in the audit trail. Files are removed from storage after commit.
    """
    _require_manage(user)
    ids = _ids(image_ids)
    with transaction.atomic():
        images = _locked_in_scope(user, ids)
        n = len(images)
        try:
            confirmed = int(confirm_count) if confirm_count not in (None, "") else None
        except (TypeError, ValueError):
            confirmed = None
        if confirmed != n:
            raise ServiceError(MSG_CONFIRM_COUNT.format(n=n, s="" if n == 1 else "s"), confirm_count=n)
        graded_ids = hooks.images_with_grades(images)
        graded = [image for image in images if image.pk in graded_ids]
        if graded:
            words = {
                "n": len(graded),
                "have": "has" if len(graded) == 1 else "have",
                "them": "it" if len(graded) == 1 else "them",
                "names": _names(graded),
            }
            if not access.is_admin(user):
                raise Forbidden(MSG_GRADED_NOT_ADMIN.format(**words), graded=[str(i.pk) for i in graded])
            if not confirm_graded:
                raise Conflict(MSG_GRADED_CONFIRM.format(**words), graded=[str(i.pk) for i in graded])
        edit_thumbs = dict(ImageEdit.objects.filter(image_id__in=ids).values_list("image_id", "thumbnail"))
        files_by_image = {
            image.pk: [
                name
                for name in (image.file.name, image.thumbnail.name, image.edited_file.name, edit_thumbs.get(image.pk))
                if name
            ]
            for image in images
        }
        audit.record_many(
            [
                Entry(
                    action=Action.IMAGE_DELETED,
                    object_type="image",
                    object_id=str(image.pk),
                    lab_unit_id=image.lab_unit_id,
                    summary=f"Deleted {image.original_name}"
                    + (" with its grades" if image.pk in graded_ids else "")
                    + f"; {len(files_by_image[image.pk])} files removed from storage",
                    details=_tombstone(image, files_by_image[image.pk], image.pk in graded_ids),
                )
                for image in images
            ],
            origin,
        )
        try:
            Image.objects.filter(pk__in=ids).delete()
        except (ProtectedError, RestrictedError) as exc:
            what = sorted({obj._meta.verbose_name_plural for obj in exc.args[1]})
            raise Conflict(MSG_PROTECTED.format(what=", ".join(str(w) for w in what))) from None
        files = [name for names in files_by_image.values() for name in names]
        result = DeleteResult(deleted=n, files=files)
        transaction.on_commit(lambda: result.files_removed.extend(_delete_files(files)))
    return result
