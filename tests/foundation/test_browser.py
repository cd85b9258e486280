"""The upload flow in headless Chromium: log in, drop files, see refusals, follow the job, read the results.

Set FGC_SCREENSHOT_DIR to keep a screenshot of every page the flow passes through.
"""

import base64
import os
from pathlib import Path

import pytest

from accounts.models import Role
from tests.factories import HospitalFactory, LabUnitFactory
from tests.foundation.conftest import GIF_BYTES
from tests.images import jpeg_bytes

pytestmark = pytest.mark.browser

DROP_FILES = """
async (files) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: f.type }));
  }
  const target = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    target.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
  }
}
"""


def shot(page, tmp_path, name: str) -> None:
    folder = Path(os.environ.get("FGC_SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def as_drop(name: str, data: bytes, mime: str) -> dict:
    return {"name": name, "type": mime, "b64": base64.b64encode(data).decode()}


def fill_fields(page, lab_unit, camera):
    page.click(f"label[for=hospital-{lab_unit.hospital_id}]")
    page.select_option("#lab_unit", str(lab_unit.pk))
    page.select_option("#camera", str(camera.pk))
    page.select_option("#disease", label="Diabetic Retinopathy")
    page.select_option("#area", label="Left eye")


@pytest.mark.worker
def test_drop_three_files_follow_the_job_and_read_the_results(
    celery_worker_process, page, login, uploader, lab_unit, camera, tmp_path
):
    page.goto("/accounts/login/")
    shot(page, tmp_path, "01-login")
    login(uploader)
    page.goto("/direct/upload")
    fill_fields(page, lab_unit, camera)
    page.click("label[for=mydriatic]")
    assert page.inner_text("#mydriatic-label") == "Mydriatic"
    page.evaluate(
        DROP_FILES,
        [
            as_drop("left eye.jpg", jpeg_bytes(seed=501, width=800, height=800), "image/jpeg"),
            as_drop("animation.gif", GIF_BYTES, "image/gif"),
            as_drop("right <eye>.jpg", jpeg_bytes(seed=502, width=800, height=800), "image/jpeg"),
        ],
    )
    rows = page.locator("#file-list .file-row")
    rows.nth(2).wait_for()
    assert rows.count() == 3
    refused = page.locator('#file-list .file-row[data-state="refused"]')
    assert refused.count() == 1
    reason = "Invalid file type: image/gif. Only JPG/PNG allowed."
    assert refused.get_attribute("data-filename") == "animation.gif"
    assert refused.get_attribute("title") == reason  # on hover
    assert refused.locator(".reason").inner_text() == reason  # and in text
    assert page.locator('#file-list .file-row[data-state="ready"]').count() == 2
    assert "2 file(s) ready, 1 refused" in page.inner_text("#file-summary")
    assert page.locator("#file-list").get_by_text("right <eye>.jpg").count() == 1  # shown as text, not markup
    shot(page, tmp_path, "02-upload-with-files")

    page.click("#submit-upload")
    page.wait_for_url("**/direct/upload/processing/**")
    assert page.locator("#job-id").inner_text() in page.url
    # The end state, before the page moves on to the results.
    page.wait_for_function(
        "() => document.getElementById('poll-note').textContent.startsWith('Finished')", timeout=90_000
    )
    assert page.locator("#job-status .status-badge").get_attribute("data-status") == "error"
    assert page.inner_text("#progress-bar") == "100%"
    widths = page.eval_on_selector_all(
        "#progress .progress", "(bars) => bars.map((bar) => parseFloat(bar.style.width).toFixed(1))"
    )
    assert widths == ["66.7", "33.3", "0.0"]  # completed (green), failed (red), running
    assert page.locator("#view-results").is_visible()
    badges = page.locator("#items .status-badge")
    assert [badges.nth(i).get_attribute("data-status") for i in range(3)] == ["completed", "completed", "error"]
    assert "text-bg-success" in badges.nth(0).get_attribute("class")
    assert "text-bg-danger" in badges.nth(2).get_attribute("class")
    assert page.inner_text("#error-count") == "1 error(s)"
    shot(page, tmp_path, "03-processing-finished")

    page.wait_for_url("**/direct/upload/results/**", timeout=15_000)
    assert page.inner_text("#total-count") == "3"
    assert page.inner_text("#success-count") == "2"
    assert page.inner_text("#failed-count") == "1"
    assert page.inner_text("#rejected-count") == "1"
    failure = page.locator("#failures tbody tr")
    assert failure.count() == 1
    assert failure.locator("td").nth(0).inner_text() == "animation.gif"
    assert failure.locator("td").nth(1).inner_text() == reason
    assert page.locator("#successes img.thumb").count() == 2
    page.wait_for_function(
        "() => [...document.querySelectorAll('#successes img.thumb')].every((img) => img.complete && img.naturalWidth > 0)"
    )
    shot(page, tmp_path, "04-results")

    page.goto("/jobs")
    assert page.locator("tbody tr").count() == 1
    shot(page, tmp_path, "05-recent-jobs")
    page.goto("/")
    shot(page, tmp_path, "06-home")


def test_hospital_pills_filter_lab_units(page, login, make_user, tmp_path):
    north, south = HospitalFactory(name="North Eye Hospital"), HospitalFactory(name="South Clinic")
    n1 = LabUnitFactory(hospital=north, name="Retina unit")
    n2 = LabUnitFactory(hospital=north, name="Diabetes unit")
    s1 = LabUnitFactory(hospital=south, name="Outreach van")
    user = make_user(Role.UPLOADER, lab_units=[n1, n2, s1])
    login(user)
    page.goto("/direct/upload")

    def offered():
        return page.eval_on_selector_all(
            "#lab_unit option", "(os) => os.filter((o) => o.value && !o.hidden && !o.disabled).map((o) => o.text)"
        )

    assert offered() == []  # no hospital chosen yet
    page.click(f"label[for=hospital-{north.pk}]")
    assert sorted(offered()) == ["Diabetes unit", "Retina unit"]
    page.select_option("#lab_unit", str(n1.pk))
    page.click(f"label[for=hospital-{south.pk}]")
    assert offered() == ["Outreach van"]
    assert page.input_value("#lab_unit") == str(s1.pk)  # the only unit of that hospital is chosen for you
    page.click(f"label[for=hospital-{north.pk}]")
    assert page.input_value("#lab_unit") == ""  # a unit of another hospital never stays selected
    shot(page, tmp_path, "07-hospital-pills")


def test_the_page_checks_fields_size_and_count_before_sending(
    page, login, uploader, lab_unit, camera, settings, tmp_path
):
    login(uploader)
    page.goto("/direct/upload")
    page.click("#submit-upload")
    assert page.inner_text("#form-error") == "All fields are required"
    fill_fields(page, lab_unit, camera)
    page.click("#submit-upload")
    assert page.inner_text("#form-error") == "No selected file"
    big = b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024 + 10)
    page.evaluate(DROP_FILES, [as_drop("huge.jpg", big, "image/jpeg"), as_drop("notes.txt", b"hello", "text/plain")])
    page.locator("#file-list .file-row").nth(1).wait_for()
    reasons = page.locator("#file-list .reason").all_inner_texts()
    assert reasons == ["File too large (max 5MB)", "Invalid file type: text/plain. Only JPG/PNG allowed."]
    shot(page, tmp_path, "08-refused-before-sending")


def test_quota_is_checked_before_sending(page, login, make_user, lab_unit, camera):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit], upload_quota=1)
    login(user)
    page.goto("/direct/upload")
    page.evaluate(
        DROP_FILES,
        [as_drop(f"{n}.jpg", jpeg_bytes(seed=600 + n, width=64, height=64), "image/jpeg") for n in range(2)],
    )
    page.locator("#file-list .file-row").nth(1).wait_for()
    assert page.locator("#file-list .reason").all_inner_texts() == ["Upload quota exceeded"]
