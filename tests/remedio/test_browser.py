"""ZIP ingestion in headless Chromium: a data manager uploads a Remidio export, follows the job to its results,
verifies the encounter, and the photograph appears in a grader's queue."""

import pytest

from accounts.models import Role
from remedio.models import Encounter
from tests.remedio import export

pytestmark = pytest.mark.browser

NAME = "Kavya Nair"
PATIENT_ID = "MRN77001"


def test_upload_verify_and_grade(page, login, make_user, lab_unit, camera):
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    grader = make_user(Role.RESIDENT, lab_units=[lab_unit])
    spec = export.ReportSpec(name=NAME, patient_id=PATIENT_ID, dr="dr+", glaucoma=None)
    visit = export.EncounterSpec(
        name=NAME,
        patient_id=PATIENT_ID,
        images=[{"disc_side": "right"}, {"disc_side": "left", "band_text": f"{NAME} {PATIENT_ID}"}],
        reports=[{"rasterised": False, "spec": spec}],
    )
    archive = export.export_zip([visit])

    login(manager)
    page.goto("/upload_files")
    page.click(f"label[for=hospital-{lab_unit.hospital_id}]")
    page.select_option("#lab_unit", str(lab_unit.pk))
    page.select_option("#camera", str(camera.pk))
    page.set_input_files(
        "#files",
        [
            {"name": f"{PATIENT_ID}_01-02-2024_10.02.16.099_AM.zip", "mimeType": "application/zip", "buffer": archive},
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an archive"},
        ],
    )
    page.locator("#file-list li").nth(1).wait_for()
    page.click("#submit-upload")
    page.wait_for_url("**/direct/upload/results/**", timeout=60_000)
    body = page.inner_text("body")
    assert "1 encounter imported (2 photographs, 1 report), awaiting verification." in body
    assert "notes.txt" in body  # refused in the browser, and accounted for in the job
    assert PATIENT_ID not in body and NAME not in body

    encounter = Encounter.objects.get()
    page.goto("/encounters/")
    page.click(f"tr[data-encounter='{encounter.pk}'] a")
    page.wait_for_url(f"**/encounters/{encounter.pk}/")
    assert page.input_value("#patient_id") == PATIENT_ID  # identifiers for the data manager only
    plain, banded = encounter.images.order_by("position")
    # The suggested eye is preselected; the verifier sets field and gradability and confirms the mask.
    assert page.is_checked(f"#lat-{plain.image_id}-right") and page.is_checked(f"#lat-{banded.image_id}-left")
    assert page.locator(".photo").nth(1).locator(".mask-box").count() == 1
    for link, field in ((plain, "disc"), (banded, "macula")):
        page.click(f"label[for=field-{link.image_id}-{field}]")
        page.click(f"label[for=gradable-{link.image_id}-yes]")
    assert page.is_checked("#disease-DR") and not page.is_checked("#disease-GLAUCOMA")  # from the DR-only report
    page.click("#verify")
    page.wait_for_url("**/encounters/?lab_unit=*")
    assert "verified: " in page.inner_text("body")
    assert page.locator("#no-encounters").is_visible()

    page.context.clear_cookies()
    login(grader)
    page.goto("/grading/")
    queue = page.locator("[data-queue=DR]")
    assert queue.locator("[data-testid=available]").inner_text() == "2"  # both photographs, waiting for this grader
    queue.locator("button[type=submit]").click()
    page.wait_for_url("**/grading/tasks/**")
    viewer = page.locator("[data-testid=viewer]").first.get_attribute("data-src")
    assert any(str(link.image_id) in viewer for link in (plain, banded))
    assert NAME not in page.inner_text("body") and PATIENT_ID not in page.inner_text("body")
