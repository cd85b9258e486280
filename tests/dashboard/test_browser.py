"""The dashboard's user flows in a real browser."""

import re

import pytest

from accounts.models import Area, Disease
from tests.dashboard.conftest import store_image
from uploads.models import AuditEvent, Image, ImageEdit

pytestmark = pytest.mark.browser


def test_filter_select_and_bulk_edit(page, login, uploader, lab_unit, camera):
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    dr = [store_image(lab_unit=lab_unit, uploaded_by=uploader, name=f"dr-{i}.jpg", camera=camera) for i in range(3)]
    gl = [
        store_image(lab_unit=lab_unit, uploaded_by=uploader, name=f"gl-{i}.jpg", camera=camera, disease=glaucoma)
        for i in range(2)
    ]
    login(uploader)
    page.goto("/images/")
    assert page.locator(".image-card").count() == 5
    assert page.locator("#result-count").inner_text() == "5 images match"

    page.select_option("#f-disease", str(glaucoma.pk))
    page.click("#apply-filters")
    page.wait_for_url(re.compile(rf"disease={glaucoma.pk}"))
    assert "view=" not in page.url and "per_page=" not in page.url  # defaults stay out of shared links
    assert page.locator(".image-card").count() == 2
    assert sorted(page.locator(".image-name").all_inner_texts()) == ["gl-0.jpg", "gl-1.jpg"]

    page.click("#select-visible")
    assert page.locator("#selected-count").inner_text() == "2"
    assert page.locator(".image-card.selected").count() == 2
    page.click("#bulk-edit-open")
    page.wait_for_selector("#bulk-edit.show")
    # Submitting without any field says what to do instead of sending an empty change.
    page.click("#bulk-edit-submit")
    assert "Choose at least one field" in page.locator("#bulk-edit-error").inner_text()
    page.select_option("#b-area", str(Area.objects.get(code="both").pk))
    page.select_option("#b-mydriatic", "yes")
    page.click("#bulk-edit-submit")
    page.wait_for_selector(".alert-success")
    assert "Metadata changed on 2 images." in page.locator(".alert-success").inner_text()
    assert f"disease={glaucoma.pk}" in page.url  # back on the same filtered view
    # The selection survives the round trip, so a further action can follow.
    assert page.locator("#selected-count").inner_text() == "2"

    for image in gl:
        image.refresh_from_db()
        assert image.area.code == "both" and image.mydriatic
    for image in dr:
        image.refresh_from_db()
        assert image.area.code == "left" and not image.mydriatic
    assert AuditEvent.objects.filter(action="image.metadata_changed").count() == 2

    # Table view keeps the filters; clearing the selection hides the bulk bar.
    page.click("#view-table")
    page.wait_for_url(re.compile(r"view=table"))
    assert f"disease={glaucoma.pk}" in page.url and page.locator("table#results tbody tr").count() == 2
    page.click("#clear-selection")
    assert page.locator("#bulk-bar").is_hidden()


def test_zoom_edit_toggle_and_restore(page, login, uploader, lab_unit, camera):
    image = store_image(lab_unit=lab_unit, uploaded_by=uploader, name="eye.jpg", camera=camera, width=400, height=300)
    login(uploader)
    page.goto(f"/images/{image.pk}")
    viewer = page.locator("#viewer")
    page.wait_for_function(
        "document.querySelector('#viewer img').complete && document.querySelector('#viewer').dataset.zoom"
    )
    fitted = float(viewer.get_attribute("data-zoom"))
    page.click("#viewer [data-action=zoom-in]")
    page.click("#viewer [data-action=zoom-in]")
    assert float(viewer.get_attribute("data-zoom")) > fitted * 1.5
    page.click("#viewer [data-aid=redfree]")
    assert viewer.get_attribute("data-aid") == "redfree"

    page.click("#edit-image")
    page.wait_for_selector("#editor[data-ready='1']")
    page.click("#rotate-right")
    assert page.locator("#editor-size").inner_text() == "300×400"
    # Drag a region on the image and mask it.
    box = page.locator("#editor-canvas").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 4, steps=5)
    page.mouse.up()
    assert page.locator("#selection-info").inner_text().startswith("Region ")
    page.click("#apply-mask")
    page.fill("#brightness", "1.2")
    page.dispatch_event("#brightness", "input")
    steps = page.locator("#editor-steps li").all_inner_texts()
    assert steps[0] == "Rotate 90° clockwise" and steps[1].startswith("Mask ") and steps[2].startswith("Brightness 1.2")
    page.click("#save-edit")
    page.wait_for_url(re.compile(rf"/images/{image.pk}(\?.*)?$"))
    assert "Edited version saved" in page.locator(".alert-success").inner_text()

    image.refresh_from_db()
    edit = ImageEdit.objects.get(image=image)
    assert [op["op"] for op in edit.operations] == ["rotate", "mask", "adjust"]
    assert (edit.width, edit.height) == (300, 400)

    def shown():
        page.wait_for_function("document.querySelector('#viewer img').complete")
        return page.evaluate(
            "(() => { const i = document.querySelector('#viewer img'); return [i.getAttribute('src'), i.naturalWidth, i.naturalHeight]; })()"
        )

    src, w, h = shown()
    assert src.endswith("/edited") and (w, h) == (300, 400)
    page.click("#show-original")
    page.wait_for_function("document.querySelector('#viewer img').getAttribute('src').endsWith('/file')")
    src, w, h = shown()
    assert (w, h) == (400, 300)
    page.click("#show-edited")
    page.wait_for_function("document.querySelector('#viewer img').getAttribute('src').endsWith('/edited')")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#restore-original")
    page.wait_for_selector("#version-label")
    assert "Original restored" in page.locator(".alert-success").inner_text()
    assert page.locator("#show-original").count() == 0
    src, w, h = shown()
    assert src.endswith("/file") and (w, h) == (400, 300)
    image.refresh_from_db()
    assert not image.edited_file and not ImageEdit.objects.filter(image=image).exists()
    assert list(
        AuditEvent.objects.filter(object_id=str(image.pk)).order_by("created_at", "id").values_list("action", flat=True)
    ) == ["image.uploaded", "image.edited", "image.restored"]
    assert Image.objects.filter(pk=image.pk).exists()
