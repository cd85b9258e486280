"""The whole pre-graded flow in headless Chromium: upload images on Pre-Graded Upload, see them badged, import an AI
grade workbook on Pre-Graded Grades, map the values the scheme does not know on the mapping screen, read the summary.

Set FGC_SCREENSHOT_DIR to keep a screenshot of the main steps.
"""

import base64
import os
from pathlib import Path

import pytest

from grading.models import Grade
from pregraded.models import GradeImport, PregradedVerification, ValueMapping
from tests.images import jpeg_bytes
from tests.pregraded.conftest import xlsx_xlsxwriter
from uploads.models import Image

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
    page.screenshot(path=str(folder / f"pregraded-{name}.png"), full_page=True)


def as_drop(name: str, data: bytes) -> dict:
    return {"name": name, "type": "image/jpeg", "b64": base64.b64encode(data).decode()}


def test_upload_import_map_and_read_the_summary(page, login, data_manager, lab_unit, camera, tmp_path):
    login(data_manager)

    # 1. Pre-Graded Upload: the direct upload form plus a dataset label.
    page.goto("/pregraded/upload")
    page.click(f"label[for=hospital-{lab_unit.hospital_id}]")
    page.select_option("#lab_unit", str(lab_unit.pk))
    page.select_option("#camera", str(camera.pk))
    page.select_option("#disease", label="Diabetic Retinopathy")
    page.select_option("#area", label="Left eye")
    page.fill("#dataset_label", "Outreach 2024")
    page.evaluate(
        DROP_FILES,
        [as_drop(f"EYE_{i}.jpg", jpeg_bytes(seed=900 + i, width=160, height=160)) for i in range(3)],
    )
    page.locator('#file-list .file-row[data-state="ready"]').nth(2).wait_for()
    page.click("#submit-upload")
    page.wait_for_url("**/processing/**")
    page.wait_for_function(
        "() => document.getElementById('poll-note').textContent.startsWith('Finished')", timeout=60_000
    )
    images = list(Image.objects.filter(is_pregraded=True))
    assert len(images) == 3 and {i.dataset_label for i in images} == {"Outreach 2024"}
    assert PregradedVerification.objects.filter(image__in=images).count() == 3

    # 2. The images are listed with the yellow badge.
    page.goto("/images/")
    badges = page.locator(".badge-pregraded")
    assert badges.count() == 3
    color = badges.first.evaluate("(el) => getComputedStyle(el).backgroundColor")
    assert color == "rgb(255, 193, 7)"
    shot(page, tmp_path, "01-dashboard")

    # 3. Pre-Graded Grades: AI grades with a new model version and a workbook with values to map.
    page.goto("/pregraded/grades")
    page.click("label[for=grader-type-ai]")
    assert page.locator("#grader-field").is_hidden() and page.locator("#ai-model-fields").is_visible()
    assert page.locator(".template-link[data-type=ai]").is_visible()
    page.click("#submit-import")  # the page says what is missing before sending anything
    assert page.inner_text("#form-error") == "All fields are required"
    page.select_option("#lab_unit", str(lab_unit.pk))
    page.select_option("#disease", label="Diabetic Retinopathy")
    page.fill("#ai_model_name", "RetinaNet")
    page.fill("#ai_model_version", "3.2")
    workbook = xlsx_xlsxwriter(
        [
            ("Exported grades",),
            (),
            ("Image Name", "AI Grade", "AI Probability"),
            ("eye_0.JPG", "Mild", 0.12),
            ("EYE_1.jpg", "Moderat", 0.55),
            ("EYE_2.jpg", "Moderat", 0.61),
            ("missing.jpg", "Mild", 0.3),
            ("EYE_2.jpg", "zz", 0.3),
        ]
    )
    page.set_input_files(
        "#file",
        {
            "name": "grades.xlsx",
            "mimeType": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "buffer": workbook,
        },
    )
    page.click("#submit-import")

    # 4. The mapping screen: "Moderat" and "zz" are not recognised, "Mild" is; nothing is imported until every
    # value is mapped.
    page.wait_for_selector("#mapping-form")
    assert page.locator("#mapping-table .mapping-row").count() == 3
    unmapped = page.locator('#mapping-table .mapping-row[data-needs="1"]')
    assert [unmapped.nth(i).get_attribute("data-value") for i in range(2)] == ["Moderat", "zz"]
    moderat = page.locator('#mapping-table .mapping-row[data-value="Moderat"]')
    assert moderat.locator("td").nth(1).inner_text() == "2"
    assert moderat.locator("select").input_value() == "option:2"  # suggested: similar wording
    assert "Similar wording" in moderat.inner_text()
    mild = page.locator('#mapping-table .mapping-row[data-value="Mild"]')
    assert mild.locator("select").input_value() == "option:1" and "Recognised by the scheme" in mild.inner_text()
    assert page.locator("#submit-mapping").is_disabled()
    assert page.inner_text("#mapping-left") == "1 value(s) still to map"
    shot(page, tmp_path, "02-mapping")
    page.locator('#mapping-table .mapping-row[data-value="zz"] select').select_option("skip")
    assert page.locator("#submit-mapping").is_enabled()
    assert page.inner_text("#mapping-left") == "Every value is mapped."
    assert Grade.objects.count() == 0
    page.click("#submit-mapping")

    # 5. The summary (the job ran in the background; the page follows it).
    page.wait_for_selector("#summary-counts", timeout=60_000)
    assert page.inner_text("#imported-count") == "3"
    assert page.inner_text("#failed-count") == "2"
    failures = page.locator("#failures tbody tr")
    assert [failures.nth(i).get_attribute("data-code") for i in range(2)] == ["image_not_found", "duplicate_row"]
    assert failures.nth(0).locator("td").nth(0).inner_text() == "7"  # the row as the spreadsheet numbers it
    shot(page, tmp_path, "03-summary")
    imp = GradeImport.objects.get()
    assert imp.status == "done" and imp.header_row == 3
    grades = {g.image.original_name: g for g in Grade.objects.select_related("image", "option", "ai_model")}
    assert grades["EYE_1.jpg"].option.code == "2" and grades["EYE_1.jpg"].raw_value == "Moderat"
    assert grades["EYE_0.jpg"].probability == pytest.approx(0.12)
    assert str(grades["EYE_0.jpg"].ai_model) == "RetinaNet 3.2"
    assert ValueMapping.objects.get(key="moderat").option.code == "2"
