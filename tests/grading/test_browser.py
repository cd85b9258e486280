"""A real browser: a resident and an ophthalmologist grade the same image differently, an arbitrator resolves it,
and the image's page shows every grade and how consensus was reached."""

from urllib.parse import parse_qs

import pytest

from accounts.models import Area, Disease, Role
from grading.models import Consensus, Grade, GradeOption, GradingTask
from tests.images import jpeg_bytes
from uploads.services import image_store

pytestmark = pytest.mark.browser


@pytest.fixture
def stored_image(lab_unit, uploader):
    """A real stored image: its grading tasks are created by the upload signal, as in production."""
    return image_store(
        data=jpeg_bytes(seed=7),
        original_name="patient-name-in-file.jpg",
        params={
            "hospital_id": lab_unit.hospital_id,
            "lab_unit_id": lab_unit.pk,
            "disease_id": Disease.objects.get(code="DR").pk,
            "area_id": Area.objects.get(code="left").pk,
        },
        uploaded_by=uploader,
    )


@pytest.fixture
def session(browser, live_server):
    contexts = []

    def open_as(user):
        context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(20_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", "pw-for-tests")
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login" not in url)
        return page

    yield open_as
    for context in contexts:
        context.close()


def grade_next(page, key: str, remarks: str = ""):
    """From the queue page: start grading, pick an option with its keyboard key, Save & next with Enter."""
    page.goto("/grading/")
    page.click("[data-queue=DR] button[type=submit]")
    page.wait_for_selector("[data-testid=grade-form]")
    viewer = page.locator("[data-testid=viewer]")
    page.wait_for_function("() => document.querySelector('.fundus-viewer img').naturalWidth > 0")
    assert viewer.get_attribute("data-aid") == "none"
    slot = page.locator("[data-testid=slot]").inner_text()
    if remarks:
        page.fill("#remarks", remarks)
    page.locator("h1").click()  # leave the text box so keys go to the options
    page.keyboard.press(key)
    assert page.locator("input[name=option]:checked").get_attribute("data-key") == key.upper()
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url.endswith("/grading/"))
    return slot


def use_the_viewer(page):
    """The grading page's viewer: buttons (zoom in / out, fit, 100%), wheel, drag, and the red-free (green) view."""
    viewer = page.locator("[data-testid=viewer]")
    page.wait_for_function("() => document.querySelector('.fundus-viewer img').naturalWidth > 0")
    page.wait_for_function("() => document.querySelector('[data-testid=viewer]').dataset.zoom")

    def zoom():
        return float(viewer.get_attribute("data-zoom"))

    fitted = zoom()
    viewer.locator("button[data-action=zoom-in]").click()
    assert zoom() == pytest.approx(fitted * 1.25, rel=0.01)
    viewer.locator("button[data-action=zoom-out]").click()
    assert zoom() == pytest.approx(fitted, rel=0.01)
    viewer.locator("button[data-action=actual]").click()
    assert zoom() == 1
    viewer.locator("button[data-action=fit]").click()
    assert zoom() == pytest.approx(fitted, rel=0.01)
    box = viewer.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -200)
    page.wait_for_function(f"() => Number(document.querySelector('[data-testid=viewer]').dataset.zoom) > {fitted}")
    image = viewer.locator("img")
    before = image.evaluate("el => el.style.transform")
    page.mouse.move(box["x"] + 40, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 3, box["y"] + box["height"] / 3, steps=5)
    page.mouse.up()
    assert image.evaluate("el => el.style.transform") != before
    assert zoom() > fitted  # a drag pans, it does not zoom
    page.click(".fv-aids button[data-aid=redfree]")
    assert viewer.get_attribute("data-aid") == "redfree"
    assert image.evaluate("el => getComputedStyle(el).filter") == 'url("#fv-redfree")'
    page.wait_for_timeout(1100)  # at least one second on the page


def test_two_graders_disagree_and_an_arbitrator_resolves(
    session, stored_image, lab_unit, make_user, resident, ophthalmologist, arbitrator
):
    assert GradingTask.objects.filter(image=stored_image).count() == 2

    page = session(resident)
    assert grade_next(page, "1", remarks="Few microaneurysms") == "Primary"
    assert "Nothing left in the DR queue" in page.content()
    # Shift+S skips: the task goes back to the queue for others, and the grader moves on.
    glaucoma = image_store(
        data=jpeg_bytes(width=96, height=96, seed=8),
        original_name="second.jpg",
        params={
            "hospital_id": lab_unit.hospital_id,
            "lab_unit_id": lab_unit.pk,
            "disease_id": Disease.objects.get(code="GLAUCOMA").pk,
        },
        uploaded_by=stored_image.uploaded_by,
    )
    page.goto("/grading/")
    page.click("[data-queue=GLAUCOMA] button[type=submit]")
    page.wait_for_selector("[data-testid=grade-form]")
    page.locator("h1").click()
    page.keyboard.press("Shift+S")
    page.wait_for_url(lambda url: url.endswith("/grading/"))
    assert "Nothing left in the GLAUCOMA queue" in page.content()
    skipped = GradingTask.objects.get(image=glaucoma, slot="primary")
    assert (skipped.status, skipped.leased_to_id) == ("pending", None)
    assert not Grade.objects.filter(image=glaucoma).exists()

    page = session(ophthalmologist)
    page.goto("/grading/")
    page.click("[data-queue=DR] button[type=submit]")
    page.wait_for_selector("[data-testid=grade-form]")
    # Blind: nothing of the primary grade on the secondary's page.
    assert page.locator("[data-testid=other-grades]").count() == 0
    assert "Few microaneurysms" not in page.content()
    assert "patient-name-in-file" not in page.content()
    use_the_viewer(page)
    severe = GradeOption.objects.get(scheme__code="icdr", code="3")
    page.click(f"label[for=opt-{severe.pk}]")  # by mouse this time
    with page.expect_request(lambda r: r.method == "POST" and "/grading/tasks/" in r.url) as posted:
        page.click("#save-next")
    page.wait_for_url(lambda url: url.endswith("/grading/"))
    # Time spent: the page counts the seconds it was visible and sends them with the grade, which records them.
    sent = parse_qs(posted.value.post_data)["seconds_spent"][0]
    assert int(sent) >= 1
    assert Grade.objects.get(image=stored_image, grader_type="secondary").seconds_spent == int(sent)
    assert GradingTask.objects.get(image=stored_image, slot="arbitration").status == "pending"

    page = session(arbitrator)
    page.goto("/grading/")
    page.click("[data-queue=DR] button[type=submit]")
    page.wait_for_selector("[data-testid=other-grades]")
    both = page.locator("[data-testid=other-grades]").inner_text()
    assert "1 · Mild NPDR" in both and "3 · Severe NPDR" in both and "Few microaneurysms" in both
    assert page.locator("[data-testid=slot]").inner_text() == "Arbitration"
    page.locator("h1").click()
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: url.endswith("/grading/"))

    consensus = Consensus.objects.get(image=stored_image, is_current=True)
    assert (consensus.method, consensus.option.code) == ("adjudication", "2")

    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    page = session(manager)
    page.goto(f"/grading/images/{stored_image.pk}")
    panel = page.locator("[data-testid=grades-panel]")
    text = panel.inner_text()
    assert "Consensus: 2 · Moderate NPDR" in text and "adjudication" in text
    for user in (resident, ophthalmologist, arbitrator):
        assert user.username in text
    assert panel.locator("[data-grade-id]").count() == 3
    assert [
        panel.locator(f"[data-grader-type={kind}]").count() for kind in ("primary", "secondary", "arbitration")
    ] == [1, 1, 1]
    # The image page (uploads) carries the same grades panel.
    page.goto(f"/images/{stored_image.pk}")
    panel = page.locator("[data-testid=grades-panel]")
    text = panel.inner_text()
    assert "Consensus: 2 · Moderate NPDR" in text and panel.locator("[data-grade-id]").count() == 3
    stored_image.refresh_from_db()
    assert stored_image.grading_status == "graded"
