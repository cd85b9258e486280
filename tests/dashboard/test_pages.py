import re

import pytest
from django.urls import reverse

from accounts.models import Role
from tests.factories import CameraFactory
from uploads import panels
from uploads.models import GradingStatus

pytestmark = pytest.mark.django_db


def test_dashboard_lists_the_users_images_with_status_and_pregraded_badge(
    client, make_image, uploader, lab_unit, other_lab_unit
):
    mine = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="visible.jpg", grading_status=GradingStatus.GRADED)
    pre = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="pre.jpg", is_pregraded=True)
    make_image(lab_unit=other_lab_unit, uploaded_by=uploader, name="elsewhere.jpg")
    client.force_login(uploader)
    html = client.get("/images/").content.decode()
    assert "visible.jpg" in html and "pre.jpg" in html and "elsewhere.jpg" not in html
    card = html[html.index(f'data-id="{pre.pk}"') :]
    assert 'class="badge badge-pregraded"' in card[: card.index("</div>\n    </div>")]
    assert f'data-id="{mine.pk}"' in html and 'data-grading="graded"' in html
    assert "2 images match" in html
    assert 'data-testid="kpi-total">2<' in html


def test_dashboard_table_view_and_filters_stay_in_the_links(client, make_image, uploader, lab_unit):
    for _ in range(3):
        make_image(lab_unit=lab_unit, uploaded_by=uploader, name="x.jpg", files=False)
    client.force_login(uploader)
    response = client.get("/images/?view=table&q=x&per_page=24")
    html = response.content.decode()
    assert response.status_code == 200 and '<table class="table' in html
    grid = re.search(r'id="view-grid" href="([^"]*)"|href="([^"]*)" id="view-grid"', html)
    link = grid.group(1) or grid.group(2)
    assert "q=x" in link and "per_page=24" in link and "view=table" not in link


def test_dashboard_pages_through_with_keyset_links(client, make_image, uploader, lab_unit):
    for _ in range(30):
        make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False)
    client.force_login(uploader)
    html = client.get("/images/?per_page=24").content.decode()
    nxt = re.search(r'href="([^"]+)" id="page-next"', html).group(1).replace("&amp;", "&")
    assert "after=" in nxt and "per_page=24" in nxt
    page2 = client.get("/images/" + nxt).content.decode()
    assert "Page 2" in page2 and page2.count('class="card h-100 shadow-sm image-card"') == 6


def test_dashboard_bad_filters_answer_400_with_every_message(client, uploader):
    client.force_login(uploader)
    response = client.get("/images/?camera=nope&grading=done&per_page=1000&after=zzz")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Unknown camera: &#x27;nope&#x27;" in html
    assert "Unknown grading status &#x27;done&#x27;" in html
    assert "Images per page must be one of 24, 48" in html


def test_dashboard_bad_cursor_message(client, uploader):
    client.force_login(uploader)
    response = client.get("/images/?after=zzz")
    assert response.status_code == 400
    assert "This page link is invalid or belongs to another sort order" in response.content.decode()


def test_dashboard_needs_a_role_that_sees_images(client, make_user):
    nobody = make_user()
    client.force_login(nobody)
    assert client.get("/images/").status_code == 403
    client.logout()
    assert client.get("/images/").status_code == 302


def test_dashboard_query_count_does_not_grow_with_rows(
    client, make_image, make_user, lab_unit, django_assert_num_queries
):
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    camera = CameraFactory()
    make_image(lab_unit=lab_unit, uploaded_by=manager, camera=camera, files=False)
    client.force_login(manager)
    client.get("/images/")  # warm the session
    # session, user, roles, lab units, KPI (1 grouped query), filter choices (lab units, cameras, diseases, areas,
    # uploaders), page rows (1 query with its joins), filtered count.
    with django_assert_num_queries(12):
        assert client.get(f"/images/?camera={camera.pk}&view=table").status_code == 200
    for _ in range(30):
        make_image(lab_unit=lab_unit, uploaded_by=manager, camera=camera, files=False)
    with django_assert_num_queries(12):
        assert client.get(f"/images/?camera={camera.pk}&view=table").status_code == 200
    with django_assert_num_queries(12):
        assert client.get(f"/images/?camera={camera.pk}").status_code == 200


def test_menu_has_the_dashboard_entry(client, uploader):
    client.force_login(uploader)
    html = client.get("/").content.decode()
    assert f'<a class="dropdown-item" href="{reverse("uploads:dashboard")}">Direct Upload Dashboard</a>' in html


# --- Image page -------------------------------------------------------------------------------------------------------


def test_image_page_shows_viewer_metadata_history_and_panels(client, make_image, uploader, lab_unit, monkeypatch):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="eye.jpg", is_pregraded=True)

    def grades_panel(img, user):
        return {
            "title": "Grades",
            "template": "uploads/message.html",
            "context": {"title": f"Panel for {img.pk}", "message": "m"},
        }

    panels.register(grades_panel)
    client.force_login(uploader)
    html = client.get(f"/images/{image.pk}").content.decode()
    assert f'class="fundus-viewer" id="viewer" data-src="/images/{image.pk}/file"' in html
    assert "badge-pregraded" in html and "Pre-graded images cannot be edited" in html
    assert 'id="edit-image-disabled"' in html
    assert f"Panel for {image.pk}" in html
    assert 'data-action="image.uploaded"' in html


def test_image_page_query_count_is_constant(
    client, make_image, uploader, lab_unit, django_assert_num_queries, monkeypatch
):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    panels.register(lambda img, user: None)
    client.force_login(uploader)
    client.get(f"/images/{image.pk}")
    # session, user, roles, lab units, image (with its edit), history, form choices (lab units, cameras, diseases,
    # areas).
    with django_assert_num_queries(10):
        assert client.get(f"/images/{image.pk}").status_code == 200
    for i in range(5):
        client.post(f"/images/{image.pk}/metadata", {"mydriatic": "yes" if i % 2 == 0 else "no"})
    with django_assert_num_queries(10):
        assert client.get(f"/images/{image.pk}").status_code == 200


def test_image_of_another_lab_unit_is_404(client, make_image, uploader, other_lab_unit, make_user):
    owner = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    image = make_image(lab_unit=other_lab_unit, uploaded_by=owner)
    client.force_login(uploader)
    for url in (
        f"/images/{image.pk}",
        f"/images/{image.pk}/file",
        f"/images/{image.pk}/thumbnail",
        f"/images/{image.pk}/edit",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/images/{image.pk}/metadata", {"mydriatic": "yes"}).status_code == 404


def test_deleted_image_page_is_410_with_when_and_by_whom(client, make_image, uploader, lab_unit, run_jobs):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client.force_login(uploader)
    with run_jobs():
        client.post("/images/bulk", {"action": "delete", "ids": [image.pk], "confirm_count": "1"})
    response = client.get(f"/images/{image.pk}")
    assert response.status_code == 410
    text = response.content.decode()
    assert "This image was deleted on" in text and f"by {uploader.username}" in text
    assert "Deleted images cannot be recovered" in text


def test_deleted_image_of_another_lab_unit_is_a_plain_404(
    client, make_image, make_user, uploader, other_lab_unit, run_jobs
):
    owner = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    image = make_image(lab_unit=other_lab_unit, uploaded_by=owner)
    client.force_login(owner)
    with run_jobs():
        client.post("/images/bulk", {"action": "delete", "ids": [image.pk], "confirm_count": "1"})
    client.force_login(uploader)
    assert client.get(f"/images/{image.pk}").status_code == 404


def test_full_resolution_is_streamed_after_the_access_check(client, make_image, uploader, lab_unit):
    from django.core.files.storage import storages

    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, width=300, height=200)
    client.force_login(uploader)
    response = client.get(f"/images/{image.pk}/file")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert (
        response.streaming and b"".join(response.streaming_content) == storages["default"].open(image.file.name).read()
    )
    assert client.get(f"/images/{image.pk}/edited").status_code == 404


def test_metadata_form_on_the_image_page(client, make_image, uploader, lab_unit, make_user):
    other = make_user()
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    camera = CameraFactory()
    client.force_login(uploader)
    response = client.post(f"/images/{image.pk}/metadata", {"camera": camera.pk, "mydriatic": "yes"}, follow=True)
    html = response.content.decode()
    assert "Metadata saved: Camera Not set → " + camera.name in html
    assert "Mydriatic Non mydriatic → Mydriatic" in html
    image.refresh_from_db()
    assert image.camera == camera and image.mydriatic
    assert other  # a user with no role cannot change anything (checked in the service tests)


def test_metadata_form_to_a_lab_unit_outside_the_scope(client, make_image, uploader, lab_unit, other_lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client.force_login(uploader)
    response = client.post(f"/images/{image.pk}/metadata", {"lab_unit": other_lab_unit.pk})
    assert response.status_code == 403
    assert "You don&#x27;t have access to the selected lab unit" in response.content.decode()
    image.refresh_from_db()
    assert image.lab_unit == lab_unit


def test_export_page_refuses_bad_format(client, uploader):
    client.force_login(uploader)
    response = client.get("/images/export?format=pdf")
    assert response.status_code == 400
    assert "Unknown export format &#x27;pdf&#x27;. Allowed: csv, xlsx." in response.content.decode()
