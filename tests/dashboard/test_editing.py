import hashlib
import io
import json

import numpy as np
import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage

from common.api import ServiceError
from uploads import actions, editing
from uploads.audit import Origin
from uploads.models import AuditEvent, GradingStatus, ImageEdit

pytestmark = pytest.mark.django_db


def stored_bytes(name: str) -> bytes:
    with storages["default"].open(name, "rb") as fh:
        return fh.read()


def decoded(name: str) -> PILImage.Image:
    return PILImage.open(io.BytesIO(stored_bytes(name)))


# --- Pure operations --------------------------------------------------------------------------------------------------


def gradient(width=40, height=20) -> PILImage.Image:
    arr = np.zeros((height, width, 3), dtype=np.uint8)
    arr[..., 0] = np.arange(width, dtype=np.uint8)[None, :] * 5
    arr[..., 1] = np.arange(height, dtype=np.uint8)[:, None] * 10
    return PILImage.fromarray(arr)


def test_rotate_is_clockwise_and_swaps_size():
    img = gradient()
    out = editing.apply(img, editing.plan([{"op": "rotate", "degrees": 90}], 40, 20).operations)
    assert out.size == (20, 40)
    # The top-left pixel of the result is the bottom-left pixel of the source (clockwise rotation).
    assert out.getpixel((0, 0)) == img.getpixel((0, 19))


def test_flip_crop_mask_and_adjust():
    img = gradient()
    flipped = editing.apply(img, [{"op": "flip", "axis": "horizontal"}])
    assert flipped.getpixel((0, 0)) == img.getpixel((39, 0))
    plan = editing.plan(
        [
            {"op": "crop", "x": 10, "y": 2, "width": 20, "height": 16},
            {"op": "mask", "x": 0, "y": 0, "width": 5, "height": 5},
        ],
        40,
        20,
    )
    assert (plan.width, plan.height) == (20, 16)
    out = editing.apply(img, plan.operations)
    assert out.size == (20, 16)
    assert out.getpixel((4, 4)) == (0, 0, 0) and out.getpixel((5, 5)) == img.getpixel((15, 7))
    brighter = editing.apply(img, [{"op": "adjust", "brightness": 2.0, "contrast": 1.0}])
    assert brighter.getpixel((10, 0))[0] == min(255, img.getpixel((10, 0))[0] * 2)


@pytest.mark.parametrize(
    ("operations", "message"),
    [
        ("rotate", "The edit must be a list of operations (rotate, flip, crop, mask, adjust)."),
        ([], "The edit has no operations: nothing to save."),
        ([{"op": "rotate", "degrees": 45}], "Step 1 (rotate): 'degrees' must be 90, 180 or 270 (clockwise), got 45."),
        ([{"op": "flip", "axis": "diagonal"}], "Step 1 (flip): 'axis' must be horizontal or vertical, got 'diagonal'."),
        ([{"op": "blur"}], "Step 1: unknown operation 'blur'. Allowed: rotate, flip, crop, mask, adjust."),
        (
            [{"op": "rotate", "degrees": 90}, {"op": "crop", "x": 0, "y": 0, "width": 40, "height": 20}],
            "Step 2 (crop): the region x=0, y=0, 40×20 does not lie inside the image, which is 20×40 pixels at this step.",
        ),
        (
            [{"op": "crop", "x": 0, "y": 0, "width": 8, "height": 8}],
            "Step 1 (crop): the cropped image would be 8×8; keep at least 16×16 pixels.",
        ),
        (
            [{"op": "mask", "x": "a", "y": 0, "width": 8, "height": 8}],
            "Step 1 (mask): 'x' must be a whole number of pixels, got 'a'.",
        ),
        (
            [{"op": "adjust", "brightness": 9}],
            "Step 1 (adjust): 'brightness' must be between 0.2 and 3.0 (1 = unchanged), got 9.",
        ),
        ([{"op": "flip", "axis": "vertical"}] * 51, "Too many operations in one edit (51, max 50)."),
    ],
)
def test_bad_operations_name_the_step_and_what_is_allowed(operations, message):
    with pytest.raises(ServiceError) as exc:
        editing.plan(operations, 40, 20)
    assert exc.value.message.startswith(message)


# --- Saving, refusing, restoring --------------------------------------------------------------------------------------


def test_edit_is_saved_beside_the_original_which_is_never_overwritten(make_image, uploader, lab_unit, run_jobs):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, width=120, height=80)
    original = stored_bytes(image.file.name)
    ops = [{"op": "rotate", "degrees": 90}, {"op": "mask", "x": 0, "y": 0, "width": 10, "height": 10}]
    with run_jobs():
        edited = actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=ops, origin=Origin(actor=uploader, ip="10.0.0.5")
        )
    assert stored_bytes(image.file.name) == original
    assert edited.edited_file.name != image.file.name and edited.edited_file.name.startswith(
        image.file.name.rsplit(".", 1)[0]
    )
    assert decoded(edited.edited_file.name).size == (80, 120)
    edit = ImageEdit.objects.get(image=image)
    assert (edit.width, edit.height, edit.edited_by) == (80, 120, uploader) and edit.operations == ops
    assert decoded(edit.thumbnail.name).format == "JPEG"
    event = AuditEvent.objects.get(action="image.edited", object_id=str(image.pk))
    assert event.ip == "10.0.0.5" and event.details["operations"] == ops

    # A second edit starts again from the original and removes the first edited files after commit.
    first_files = (edited.edited_file.name, edit.thumbnail.name)
    with run_jobs():
        again = actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "flip", "axis": "vertical"}], origin=Origin()
        )
    assert decoded(again.edited_file.name).size == (120, 80)
    assert not any(storages["default"].exists(name) for name in first_files)
    assert stored_bytes(image.file.name) == original
    assert hashlib.md5(stored_bytes(image.file.name)).hexdigest() == hashlib.md5(original).hexdigest()  # noqa: S324


def test_restore_original_removes_the_edit_and_its_files(make_image, uploader, lab_unit, run_jobs):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with run_jobs():
        edited = actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "flip", "axis": "horizontal"}], origin=Origin()
        )
    files = (edited.edited_file.name, edited.edit.thumbnail.name)
    with run_jobs():
        restored = actions.image_edit_restore(user=uploader, image_id=image.pk, origin=Origin(actor=uploader))
    assert not restored.edited_file and not ImageEdit.objects.filter(image=image).exists()
    assert not any(storages["default"].exists(name) for name in files)
    assert storages["default"].exists(image.file.name)
    assert AuditEvent.objects.filter(action="image.restored", object_id=str(image.pk)).exists()
    with pytest.raises(ServiceError, match="no edited version"):
        actions.image_edit_restore(user=uploader, image_id=image.pk, origin=Origin())


def test_editing_a_pregraded_image_is_refused(make_image, uploader, lab_unit, client):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, is_pregraded=True)
    with pytest.raises(ServiceError) as exc:
        actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "rotate", "degrees": 90}], origin=Origin()
        )
    assert exc.value.status_code == 409
    assert exc.value.message == actions.MSG_PREGRADED
    client.force_login(uploader)
    response = client.post(f"/images/{image.pk}/edit", {"operations": json.dumps([{"op": "rotate", "degrees": 90}])})
    assert response.status_code == 409 and "Pre-graded images cannot be edited" in response.content.decode()
    assert client.get(f"/images/{image.pk}/edit").status_code == 409
    image.refresh_from_db()
    assert not image.edited_file and not ImageEdit.objects.exists()


@pytest.mark.parametrize("status", [GradingStatus.IN_PROGRESS, GradingStatus.IN_ARBITRATION, GradingStatus.GRADED])
def test_editing_is_refused_once_grading_started(make_image, uploader, lab_unit, status):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=status)
    folder = image.file.name.rsplit("/", 1)[0]
    before = set(storages["default"].listdir(folder)[1])
    with pytest.raises(ServiceError) as exc:
        actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "rotate", "degrees": 90}], origin=Origin()
        )
    assert exc.value.status_code == 409
    assert exc.value.message.startswith("This image can no longer be edited: its grading has started")
    assert set(storages["default"].listdir(folder)[1]) == before
    assert not ImageEdit.objects.exists()


@pytest.mark.parametrize("status", [GradingStatus.NOT_QUEUED, GradingStatus.AWAITING])
def test_editing_is_allowed_before_grading_starts(make_image, uploader, lab_unit, status):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=status)
    edited = actions.image_edit_save(
        user=uploader, image_id=image.pk, operations=[{"op": "rotate", "degrees": 180}], origin=Origin()
    )
    assert edited.edited_file


def test_an_image_that_entered_grading_while_rendering_is_refused_and_leaves_no_file(
    make_image, uploader, lab_unit, monkeypatch
):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    saved = []
    real_render = editing.render

    def render_then_grading_starts(data, mime, operations):
        result = real_render(data, mime, operations)
        type(image).objects.filter(pk=image.pk).update(grading_status=GradingStatus.IN_PROGRESS)
        return result

    monkeypatch.setattr(editing, "render", render_then_grading_starts)
    store = storages["default"]
    real_save = store.save
    monkeypatch.setattr(
        store, "save", lambda name, content, **kw: saved.append(real_save(name, content, **kw)) or saved[-1]
    )
    with pytest.raises(ServiceError, match="grading has started"):
        actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "rotate", "degrees": 90}], origin=Origin()
        )
    assert saved and not any(store.exists(name) for name in saved)
    assert not ImageEdit.objects.exists()


def test_roles_without_manage_cannot_edit(make_image, resident, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with pytest.raises(ServiceError) as exc:
        actions.image_edit_save(
            user=resident, image_id=image.pk, operations=[{"op": "rotate", "degrees": 90}], origin=Origin()
        )
    assert exc.value.status_code == 403


def test_editor_page_saves_and_redirects_to_the_image(client, make_image, uploader, lab_unit, run_jobs):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client.force_login(uploader)
    page = client.get(f"/images/{image.pk}/edit")
    assert page.status_code == 200 and f'data-src="/images/{image.pk}/file"' in page.content.decode()
    with run_jobs():
        response = client.post(
            f"/images/{image.pk}/edit", {"operations": json.dumps([{"op": "rotate", "degrees": 270}])}
        )
    assert response.status_code == 302 and response["Location"].startswith(f"/images/{image.pk}")
    image.refresh_from_db()
    assert image.edited_file
    bad = client.post(
        f"/images/{image.pk}/edit",
        {"operations": json.dumps([{"op": "crop", "x": 0, "y": 0, "width": 9999, "height": 20}])},
    )
    assert bad.status_code == 400 and "does not lie inside the image" in bad.content.decode()
    garbled = client.post(f"/images/{image.pk}/edit", {"operations": "{not json"})
    assert garbled.status_code == 400 and "could not be read" in garbled.content.decode()
