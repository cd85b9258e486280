import uuid

import pytest
from django.core.files.storage import storages

from accounts.models import Area, Disease, Role
from common.api import ServiceError
from tests.factories import CameraFactory, LabUnitFactory
from uploads import actions, hooks
from uploads.audit import Origin
from uploads.models import AuditEvent, GradingStatus, Image
from uploads.signals import image_metadata_changed

pytestmark = pytest.mark.django_db


def origin(user):
    return Origin(actor=user, ip="192.0.2.7", user_agent="pytest-agent")


# --- Metadata ---------------------------------------------------------------------------------------------------------


def test_metadata_change_records_who_when_and_old_to_new(
    make_image, uploader, lab_unit, django_capture_on_commit_callbacks
):
    unit2 = LabUnitFactory(hospital=lab_unit.hospital)
    uploader.lab_units.add(unit2)
    camera = CameraFactory(name="Topcon NW400")
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, is_pregraded=True)
    received = []
    image_metadata_changed.connect(lambda **kw: received.append(kw), weak=False, dispatch_uid="t")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            result = actions.images_metadata_update(
                user=uploader,
                image_ids=[image.pk],
                data={
                    "lab_unit": unit2.code,
                    "camera": camera.pk,
                    "area": "right",
                    "disease": "GLAUCOMA",
                    "mydriatic": True,
                },
                origin=origin(uploader),
            )
    finally:
        image_metadata_changed.disconnect(dispatch_uid="t")
    assert len(result.updated) == 1
    image.refresh_from_db()
    assert (image.lab_unit, image.camera, image.area.code, image.disease.code, image.mydriatic) == (
        unit2,
        camera,
        "right",
        "GLAUCOMA",
        True,
    )
    event = AuditEvent.objects.get(action="image.metadata_changed")
    assert (event.actor, event.actor_username, event.ip, event.user_agent) == (
        uploader,
        uploader.username,
        "192.0.2.7",
        "pytest-agent",
    )
    changes = event.details["changes"]
    assert changes["camera"] == {"from": None, "to": camera.pk, "from_label": "Not set", "to_label": "Topcon NW400"}
    assert changes["lab_unit"]["from"] == lab_unit.pk and changes["lab_unit"]["to"] == unit2.pk
    assert changes["disease"]["from_label"] == "Diabetic Retinopathy" and changes["disease"]["to_label"] == "Glaucoma"
    assert changes["mydriatic"]["to_label"] == "Mydriatic"
    assert "Camera: Not set → Topcon NW400" in event.summary
    assert "hospital" not in changes  # same hospital
    assert received and received[0]["image_ids"] == [image.pk] and "disease" in received[0]["fields"]


def test_moving_to_a_lab_unit_outside_the_scope_is_refused(make_image, uploader, lab_unit, other_lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(
            user=uploader,
            image_ids=[image.pk],
            data={"lab_unit": other_lab_unit.pk, "camera": CameraFactory().pk},
            origin=origin(uploader),
        )
    assert exc.value.status_code == 403 and exc.value.message == "You don't have access to the selected lab unit"
    image.refresh_from_db()
    assert image.lab_unit == lab_unit and image.camera is None
    assert not AuditEvent.objects.filter(action="image.metadata_changed").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, actions.MSG_NOTHING_TO_CHANGE),
        ({"camera": ""}, actions.MSG_NOTHING_TO_CHANGE),
        (
            {"camera": "no-such-camera"},
            "Unknown camera: 'no-such-camera'. See /api/reference/ for the values you may use.",
        ),
        (
            {"hospital": "no-such-hospital"},
            "Unknown hospital: 'no-such-hospital'. See /api/reference/ for the values you may use.",
        ),
        ({"mydriatic": "perhaps"}, "Mydriatic must be yes or no (true/false), got 'perhaps'."),
        ({"disease": None}, "Disease cannot be emptied: choose a value or leave the field out."),
    ],
)
def test_bad_metadata_values(make_image, uploader, lab_unit, data, message):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(user=uploader, image_ids=[image.pk], data=data, origin=origin(uploader))
    assert exc.value.message == message


def test_a_hospital_alone_is_not_enough(make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(
            user=uploader, image_ids=[image.pk], data={"hospital": lab_unit.hospital.code}, origin=origin(uploader)
        )
    assert exc.value.message == actions.MSG_HOSPITAL_ONLY


def test_hospital_must_match_the_lab_unit(make_image, uploader, lab_unit):
    other_hospital_unit = LabUnitFactory()
    uploader.lab_units.add(other_hospital_unit)
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with pytest.raises(ServiceError, match="does not belong to the selected hospital"):
        actions.images_metadata_update(
            user=uploader,
            image_ids=[image.pk],
            data={"lab_unit": other_hospital_unit.pk, "hospital": lab_unit.hospital_id},
            origin=origin(uploader),
        )
    actions.images_metadata_update(
        user=uploader,
        image_ids=[image.pk],
        data={"lab_unit": other_hospital_unit.pk, "hospital": other_hospital_unit.hospital.code},
        origin=origin(uploader),
    )
    image.refresh_from_db()
    assert image.hospital_id == other_hospital_unit.hospital_id and image.lab_unit == other_hospital_unit


def test_bulk_update_applies_to_all_or_none(make_image, uploader, lab_unit, other_lab_unit, make_user):
    stranger = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    mine = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(3)]
    theirs = make_image(lab_unit=other_lab_unit, uploaded_by=stranger, files=False)
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(
            user=uploader, image_ids=[*(i.pk for i in mine), theirs.pk], data={"area": "both"}, origin=origin(uploader)
        )
    assert (
        exc.value.status_code == 404
        and str(theirs.pk) in exc.value.message
        and "Nothing was changed." in exc.value.message
    )
    assert not Image.objects.filter(area__code="both").exists()
    result = actions.images_metadata_update(
        user=uploader, image_ids=[i.pk for i in mine], data={"area": "both"}, origin=origin(uploader)
    )
    assert len(result.updated) == 3 and Image.objects.filter(area__code="both").count() == 3
    assert AuditEvent.objects.filter(action="image.metadata_changed").count() == 3


def test_bulk_on_51_images_is_refused(make_image, uploader, lab_unit, client):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(51)]
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(
            user=uploader, image_ids=[i.pk for i in images], data={"area": "both"}, origin=origin(uploader)
        )
    assert exc.value.message == "Bulk actions take at most 50 images at a time; 51 were selected. Select fewer images."
    client.force_login(uploader)
    response = client.post(
        "/images/bulk",
        {"action": "update", "ids": [i.pk for i in images], "area": Area.objects.get(code="both").pk},
        follow=True,
    )
    assert "Bulk actions take at most 50 images at a time; 51 were selected." in response.content.decode()
    response = client.post("/images/bulk", {"action": "delete", "ids": [i.pk for i in images]})
    assert response.status_code == 400 and "at most 50 images" in response.content.decode()
    assert Image.objects.count() == 51 and not Image.objects.filter(area__code="both").exists()


def test_bulk_update_from_the_dashboard_form(client, make_image, uploader, lab_unit):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(2)]
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    client.force_login(uploader)
    response = client.post(
        "/images/bulk",
        {
            "action": "update",
            "ids": [i.pk for i in images],
            "disease": glaucoma.pk,
            "camera": "",
            "next": "/images/?q=fundus",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/images/?q=fundus"
    assert Image.objects.filter(disease=glaucoma).count() == 2
    # An outside "next" is never followed.
    response = client.post(
        "/images/bulk", {"action": "update", "ids": [images[0].pk], "area": "right", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/images/"


# --- Deletion ---------------------------------------------------------------------------------------------------------


def test_delete_needs_the_count_confirmed_and_removes_files(make_image, uploader, lab_unit, run_jobs):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader) for _ in range(3)]
    ids = [i.pk for i in images]
    names = [n for i in images for n in (i.file.name, i.thumbnail.name)]
    with pytest.raises(ServiceError) as exc:
        actions.images_delete(user=uploader, image_ids=ids, confirm_count=None, origin=origin(uploader))
    assert exc.value.message.startswith("Confirm the deletion of 3 images") and exc.value.extra == {"confirm_count": 3}
    with pytest.raises(ServiceError):
        actions.images_delete(user=uploader, image_ids=ids, confirm_count=2, origin=origin(uploader))
    assert Image.objects.count() == 3 and all(storages["default"].exists(n) for n in names)
    with run_jobs():
        result = actions.images_delete(user=uploader, image_ids=ids, confirm_count=3, origin=origin(uploader))
    assert result.deleted == 3 and sorted(result.files_removed) == sorted(names)
    assert not Image.objects.exists() and not any(storages["default"].exists(n) for n in names)
    tombstones = AuditEvent.objects.filter(action="image.deleted")
    assert tombstones.count() == 3
    stone = tombstones.get(object_id=str(images[0].pk))
    assert stone.details["file_name"] == images[0].original_name and stone.details["md5"] == images[0].md5
    assert stone.details["files_removed"] == [images[0].file.name, images[0].thumbnail.name]
    assert stone.lab_unit == lab_unit and stone.ip == "192.0.2.7"


def test_edited_files_are_removed_with_the_image(make_image, uploader, lab_unit, run_jobs):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    with run_jobs():
        edited = actions.image_edit_save(
            user=uploader, image_id=image.pk, operations=[{"op": "rotate", "degrees": 90}], origin=Origin()
        )
    files = [image.file.name, image.thumbnail.name, edited.edited_file.name, edited.edit.thumbnail.name]
    with run_jobs():
        result = actions.images_delete(user=uploader, image_ids=[image.pk], confirm_count=1, origin=origin(uploader))
    assert sorted(result.files_removed) == sorted(files)
    assert not any(storages["default"].exists(n) for n in files)


def test_a_rolled_back_delete_keeps_the_files(
    make_image, uploader, lab_unit, monkeypatch, django_capture_on_commit_callbacks
):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(actions.audit, "record_many", boom)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        actions.images_delete(user=uploader, image_ids=[image.pk], confirm_count=1, origin=origin(uploader))
    assert Image.objects.filter(pk=image.pk).exists() and storages["default"].exists(image.file.name)


def test_deleting_an_image_of_another_lab_unit_by_id_is_404(
    make_image, uploader, other_lab_unit, make_user, client, api_client
):
    owner = make_user(Role.UPLOADER, lab_units=[other_lab_unit])
    image = make_image(lab_unit=other_lab_unit, uploaded_by=owner)
    with pytest.raises(ServiceError) as exc:
        actions.images_delete(user=uploader, image_ids=[image.pk], confirm_count=1, origin=origin(uploader))
    assert exc.value.status_code == 404
    client.force_login(uploader)
    assert client.post("/images/bulk", {"action": "delete", "ids": [image.pk], "confirm_count": "1"}).status_code == 404
    api_client.force_authenticate(uploader)
    assert api_client.delete(f"/api/images/{image.pk}").status_code == 404
    assert (
        api_client.post(
            "/api/images/bulk", {"action": "delete", "ids": [str(image.pk)], "confirm_count": 1}, format="json"
        ).status_code
        == 404
    )
    assert Image.objects.filter(pk=image.pk).exists()


def test_graded_images_only_by_admins_with_a_second_confirmation(make_image, uploader, lab_unit, admin_user, run_jobs):
    graded = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="graded.jpg", grading_status=GradingStatus.GRADED)
    plain = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    ids = [graded.pk, plain.pk]
    with pytest.raises(ServiceError) as exc:
        actions.images_delete(
            user=uploader, image_ids=ids, confirm_count=2, confirm_graded=True, origin=origin(uploader)
        )
    assert exc.value.status_code == 403
    assert (
        exc.value.message
        == "1 of the selected images has grades (graded.jpg): only an admin can delete graded images. Remove it from the selection."
    )
    with pytest.raises(ServiceError) as exc:
        actions.images_delete(user=admin_user, image_ids=ids, confirm_count=2, origin=origin(admin_user))
    assert exc.value.status_code == 409 and "Confirm a second time" in exc.value.message
    assert exc.value.extra["graded"] == [str(graded.pk)]
    assert Image.objects.count() == 2
    with run_jobs():
        result = actions.images_delete(
            user=admin_user, image_ids=ids, confirm_count=2, confirm_graded=True, origin=origin(admin_user)
        )
    assert result.deleted == 2
    assert AuditEvent.objects.get(action="image.deleted", object_id=str(graded.pk)).details["had_grades"] is True


def test_a_registered_grades_check_marks_images_as_graded(make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=GradingStatus.AWAITING)
    hooks.register_grades_check(lambda ids: {image.pk, uuid.uuid4()})
    with pytest.raises(ServiceError) as exc:
        actions.images_delete(user=uploader, image_ids=[image.pk], confirm_count=1, origin=origin(uploader))
    assert exc.value.status_code == 403


def test_delete_confirmation_page_names_the_count_and_files(client, make_image, uploader, lab_unit, run_jobs):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader, name=f"del-{i}.jpg") for i in range(2)]
    client.force_login(uploader)
    page = client.post("/images/bulk", {"action": "delete", "ids": [i.pk for i in images], "next": "/images/?q=del"})
    html = page.content.decode()
    assert page.status_code == 200 and "Delete 2 images?" in html and "4 stored files" in html
    assert 'name="confirm_count" value="2"' in html and "del-0.jpg" in html
    assert Image.objects.count() == 2
    with run_jobs():
        done = client.post(
            "/images/bulk",
            {"action": "delete", "ids": [i.pk for i in images], "confirm_count": "2", "next": "/images/?q=del"},
            follow=True,
        )
    assert "Deleted 2 images and their 4 stored files." in done.content.decode()
    assert not any(storages["default"].exists(i.file.name) for i in images)
    assert not Image.objects.exists()


def test_delete_confirmation_page_for_graded_images(client, make_image, uploader, lab_unit, admin_user):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, grading_status=GradingStatus.IN_ARBITRATION)
    client.force_login(uploader)
    html = client.post("/images/bulk", {"action": "delete", "ids": [image.pk]}).content.decode()
    assert "only an admin can delete graded images" in html and 'id="confirm-delete"' not in html
    client.force_login(admin_user)
    html = client.post("/images/bulk", {"action": "delete", "ids": [image.pk]}).content.decode()
    assert 'name="confirm_graded"' in html and "grades and consensus will be deleted too" in html
    refused = client.post("/images/bulk", {"action": "delete", "ids": [image.pk], "confirm_count": "1"})
    assert refused.status_code == 409 and Image.objects.exists()


def test_roles_without_manage_get_403(client, make_image, uploader, resident, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader)
    client.force_login(resident)
    assert client.post("/images/bulk", {"action": "delete", "ids": [image.pk]}).status_code == 403
    with pytest.raises(ServiceError) as exc:
        actions.images_metadata_update(
            user=resident, image_ids=[image.pk], data={"area": "both"}, origin=origin(resident)
        )
    assert exc.value.status_code == 403
