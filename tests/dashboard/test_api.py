import pytest
from django.core.files.storage import storages
from rest_framework.authtoken.models import Token

from accounts.models import Role
from tests.factories import CameraFactory
from uploads.models import AuditEvent, GradingStatus, Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_client(api_client):
    def login(user):
        token = Token.objects.create(user=user)
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return api_client

    return login


def test_list_filters_and_follows_next_links(token_client, make_image, uploader, lab_unit, other_lab_unit, make_user):
    stranger = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    mine = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(5)]
    make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=GradingStatus.GRADED, files=False)
    make_image(lab_unit=other_lab_unit, uploaded_by=stranger, files=False)
    client = token_client(uploader)
    response = client.get("/api/images/?grading=not_queued&limit=2")
    body = response.json()
    assert response.status_code == 200 and body["count"] == 5 and body["previous"] is None
    seen = [r["id"] for r in body["results"]]
    assert body["next"].startswith("http://testserver/api/images/?grading=not_queued&limit=2&after=")
    while body["next"]:
        body = client.get(body["next"]).json()
        seen += [r["id"] for r in body["results"]]
        assert body["previous"]
    assert sorted(seen) == sorted(str(i.pk) for i in mine) and len(seen) == 5
    first = client.get("/api/images/?grading=not_queued&limit=2").json()["results"][0]
    assert set(first) >= {
        "id",
        "file_name",
        "hospital",
        "lab_unit",
        "camera",
        "disease",
        "area",
        "mydriatic",
        "is_pregraded",
        "grading_status",
        "edited",
        "urls",
    }
    assert first["urls"]["file"] == f"http://testserver/api/images/{first['id']}/file"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit must be a whole number from 1 to 200, got '0'."),
        ("limit=abc", "limit must be a whole number from 1 to 200, got 'abc'."),
        (
            "after=nonsense",
            "This page link is invalid or belongs to another sort order. Start again from the first page.",
        ),
        (
            "disease=XX&sort=big",
            "Unknown disease: 'XX'. Choose one of the diseases you may see (ids or codes). Unknown sort 'big'. Allowed: newest, oldest, name, -name.",
        ),
    ],
)
def test_list_bad_input(token_client, uploader, query, message):
    response = token_client(uploader).get(f"/api/images/?{query}")
    assert response.status_code == 400 and response.json()["detail"] == message


def test_list_query_count_is_constant(token_client, make_image, make_user, lab_unit, django_assert_num_queries):
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    camera = CameraFactory()
    make_image(lab_unit=lab_unit, uploaded_by=manager, camera=camera, files=False)
    client = token_client(manager)
    # token + user, roles, lab unit ids, filter choices (cameras), page rows, the reference rows attached to them
    # (lab units with their hospitals, diseases, areas), count.
    with django_assert_num_queries(9):
        assert client.get(f"/api/images/?camera={camera.code}").status_code == 200
    for _ in range(40):
        make_image(lab_unit=lab_unit, uploaded_by=manager, camera=camera, files=False)
    with django_assert_num_queries(9):
        body = client.get(f"/api/images/?camera={camera.code}&limit=30").json()
    assert len(body["results"]) == 30
    with django_assert_num_queries(9):
        assert len(client.get(body["next"]).json()["results"]) == 11


def test_detail_patch_and_history(token_client, make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, is_pregraded=True)
    client = token_client(uploader)
    detail = client.get(f"/api/images/{image.pk}").json()
    assert detail["pixels_editable"] is False and detail["pixels_edit_refusal"].startswith(
        "Pre-graded images cannot be edited"
    )
    assert detail["edit"] is None
    camera = CameraFactory()
    response = client.patch(f"/api/images/{image.pk}", {"camera": camera.code, "mydriatic": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["camera"]["code"] == camera.code and response.json()["mydriatic"] is True
    history = client.get(f"/api/images/{image.pk}/history").json()
    assert [h["action"] for h in history] == ["image.metadata_changed", "image.uploaded"]
    assert history[0]["details"]["changes"]["camera"]["to_label"] == camera.name


def test_patch_bad_input(token_client, make_image, uploader, lab_unit, other_lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client = token_client(uploader)
    response = client.patch(f"/api/images/{image.pk}", {"lab_unit": other_lab_unit.code}, format="json")
    assert response.status_code == 403 and response.json()["detail"] == "You don't have access to the selected lab unit"
    response = client.patch(f"/api/images/{image.pk}", {"md5": "x", "grading_status": "graded"}, format="json")
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == "Unknown or read-only field(s): grading_status, md5. Editable: hospital, lab_unit, camera, disease, area, mydriatic."
    )
    image.refresh_from_db()
    assert image.lab_unit == lab_unit and image.grading_status == GradingStatus.NOT_QUEUED


def test_residents_can_read_but_not_change(token_client, make_image, uploader, resident, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client = token_client(resident)
    assert client.get(f"/api/images/{image.pk}").status_code == 200
    assert client.patch(f"/api/images/{image.pk}", {"area": "right"}, format="json").status_code == 403
    assert client.delete(f"/api/images/{image.pk}").status_code == 403
    assert (
        client.post(
            f"/api/images/{image.pk}/edit", {"operations": [{"op": "rotate", "degrees": 90}]}, format="json"
        ).status_code
        == 403
    )


def test_another_lab_units_image_is_404_everywhere(token_client, make_image, uploader, other_lab_unit, make_user):
    owner = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    image = make_image(lab_unit=other_lab_unit, uploaded_by=owner)
    client = token_client(uploader)
    for method, url, data in (
        ("get", f"/api/images/{image.pk}", None),
        ("patch", f"/api/images/{image.pk}", {"area": "right"}),
        ("delete", f"/api/images/{image.pk}", None),
        ("get", f"/api/images/{image.pk}/file", None),
        ("get", f"/api/images/{image.pk}/history", None),
        ("post", f"/api/images/{image.pk}/edit", {"operations": [{"op": "rotate", "degrees": 90}]}),
    ):
        response = getattr(client, method)(url, data, format="json") if data else getattr(client, method)(url)
        assert response.status_code == 404, (method, url)
        assert response.json()["detail"] == "Image not found."
    assert Image.objects.filter(pk=image.pk, area__code="left").exists()


def test_file_variants(token_client, make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client = token_client(uploader)
    original = client.get(f"/api/images/{image.pk}/file")
    assert (
        original.status_code == 200
        and b"".join(original.streaming_content) == storages["default"].open(image.file.name).read()
    )
    assert client.get(f"/api/images/{image.pk}/file?variant=edited").status_code == 404
    assert client.get(f"/api/images/{image.pk}/file?variant=thumbnail")["Content-Type"] == "image/jpeg"
    bad = client.get(f"/api/images/{image.pk}/file?variant=huge")
    assert bad.status_code == 400 and bad.json()["detail"].startswith(
        "Unknown variant 'huge'. Allowed: current, original"
    )
    download = client.get(f"/api/images/{image.pk}/file?download=1")
    assert download["Content-Disposition"] == f'attachment; filename="{image.pk}.jpg"'


def test_edit_and_restore_through_the_api(token_client, make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, width=100, height=60)
    client = token_client(uploader)
    response = client.post(
        f"/api/images/{image.pk}/edit",
        {"operations": [{"op": "crop", "x": 10, "y": 10, "width": 50, "height": 40}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["edited"] is True and body["edit"]["width"] == 50 and body["edit"]["edited_by"] == uploader.username
    current = client.get(f"/api/images/{image.pk}/file")
    assert current.status_code == 200
    bad = client.post(f"/api/images/{image.pk}/edit", {"operations": [{"op": "rotate", "degrees": 30}]}, format="json")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("Step 1 (rotate)")
    restored = client.delete(f"/api/images/{image.pk}/edit")
    assert restored.status_code == 200 and restored.json()["edited"] is False
    again = client.delete(f"/api/images/{image.pk}/edit")
    assert (
        again.status_code == 409
        and again.json()["detail"] == "This image has no edited version: it already shows the original."
    )


def test_editing_a_pregraded_image_through_the_api_is_409(token_client, make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, is_pregraded=True)
    response = token_client(uploader).post(
        f"/api/images/{image.pk}/edit", {"operations": [{"op": "rotate", "degrees": 90}]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"].startswith("Pre-graded images cannot be edited")


def test_bulk_update_and_delete(token_client, make_image, uploader, lab_unit, run_jobs):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader) for _ in range(3)]
    ids = [str(i.pk) for i in images]
    client = token_client(uploader)
    response = client.post(
        "/api/images/bulk",
        {"action": "update", "ids": ids, "changes": {"area": "both", "mydriatic": "yes"}},
        format="json",
    )
    assert response.status_code == 200 and response.json()["updated"] == 3
    assert Image.objects.filter(area__code="both", mydriatic=True).count() == 3
    unconfirmed = client.post("/api/images/bulk", {"action": "delete", "ids": ids}, format="json")
    assert unconfirmed.status_code == 400
    assert unconfirmed.json() == {
        "detail": "Confirm the deletion of 3 images: deleted images and their files cannot be recovered. Send confirm_count=3 to confirm.",
        "confirm_count": 3,
    }
    with run_jobs():
        done = client.post("/api/images/bulk", {"action": "delete", "ids": ids, "confirm_count": 3}, format="json")
    assert done.status_code == 200 and done.json()["deleted"] == 3 and len(done.json()["files"]) == 6
    assert not Image.objects.exists()
    gone = client.get(f"/api/images/{ids[0]}")
    assert gone.status_code == 410 and gone.json()["detail"].startswith("This image was deleted on")


def test_bulk_bad_input(token_client, make_image, uploader, lab_unit):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(51)]
    client = token_client(uploader)
    too_many = client.post(
        "/api/images/bulk",
        {"action": "update", "ids": [str(i.pk) for i in images], "changes": {"area": "both"}},
        format="json",
    )
    assert too_many.status_code == 400
    assert (
        too_many.json()["detail"]
        == "Bulk actions take at most 50 images at a time; 51 were selected. Select fewer images."
    )
    assert (
        client.post("/api/images/bulk", {"action": "archive", "ids": [str(images[0].pk)]}, format="json").json()[
            "detail"
        ]
        == "Unknown action 'archive'. Allowed: update, delete."
    )
    assert (
        client.post("/api/images/bulk", {"action": "update", "ids": "abc"}, format="json").json()["detail"]
        == "ids must be a list of image ids (at most 50)."
    )
    assert (
        client.post(
            "/api/images/bulk", {"action": "update", "ids": [], "changes": {"area": "both"}}, format="json"
        ).json()["detail"]
        == "Select at least one image."
    )
    assert not Image.objects.filter(area__code="both").exists()


def test_delete_of_a_graded_image_needs_an_admin_and_confirmation(
    token_client, make_image, uploader, admin_user, lab_unit, run_jobs
):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=GradingStatus.GRADED)
    assert token_client(uploader).delete(f"/api/images/{image.pk}").status_code == 403
    client = token_client(admin_user)
    response = client.delete(f"/api/images/{image.pk}")
    assert response.status_code == 409 and response.json()["graded"] == [str(image.pk)]
    with run_jobs():
        assert client.delete(f"/api/images/{image.pk}?confirm_graded=true").status_code == 200
    assert AuditEvent.objects.get(action="image.deleted").details["had_grades"] is True


def test_summary_and_schema(token_client, make_image, uploader, lab_unit):
    make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False)
    client = token_client(uploader)
    assert client.get("/api/images/summary").json()["total"] == 1
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in (
        "/api/images/",
        "/api/images/{image_id}",
        "/api/images/{image_id}/file",
        "/api/images/bulk",
        "/api/images/export",
    ):
        assert path in paths, path


def test_unauthenticated_calls_are_refused(api_client):
    assert api_client.get("/api/images/").status_code in (401, 403)
