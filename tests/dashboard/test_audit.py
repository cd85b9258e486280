import uuid

import pytest
from django.test import RequestFactory

from accounts.models import Role
from jobs.models import Job
from uploads import services
from uploads.models import AuditEvent, Image

pytestmark = pytest.mark.django_db


def test_a_direct_upload_is_recorded_with_ip_and_user_agent(api_client, uploader, upload_fields, jpeg_file, run_jobs):
    api_client.force_authenticate(uploader)
    with run_jobs():
        response = api_client.post(
            "/api/direct/upload",
            {**upload_fields, "files": [jpeg_file("left.jpg")]},
            format="multipart",
            REMOTE_ADDR="198.51.100.4",
            HTTP_USER_AGENT="UploadScript/2.1",
        )
    assert response.status_code == 202
    image = Image.objects.get()
    event = AuditEvent.objects.get(action="image.uploaded")
    assert (event.object_type, event.object_id, event.lab_unit_id) == ("image", str(image.pk), image.lab_unit_id)
    assert (event.actor, event.ip, event.user_agent) == (uploader, "198.51.100.4", "UploadScript/2.1")
    assert event.details["md5"] == image.md5 and event.details["job_id"] == str(Job.objects.get().pk)
    assert event.summary == "Uploaded left.jpg (direct upload)"


def test_audit_record_service_for_other_apps(uploader, lab_unit):
    request = RequestFactory().post("/import", REMOTE_ADDR="192.0.2.44", HTTP_USER_AGENT="Browser/9")
    request.user = uploader
    job_id = uuid.uuid4()
    event = services.audit_record(
        action="grades.imported",
        request=request,
        object_type="job",
        object_id=job_id,
        lab_unit_id=lab_unit.pk,
        summary="Imported 120 resident grades",
        details={"rows": 120, "job": job_id},
    )
    event.refresh_from_db()
    assert (event.actor, event.actor_username, event.ip, event.user_agent) == (
        uploader,
        uploader.username,
        "192.0.2.44",
        "Browser/9",
    )
    assert event.object_id == str(job_id) and event.details == {"rows": 120, "job": str(job_id)}
    assert event.action_label == "Grades imported"
    # A background job passes what it stored when the request came in.
    later = services.audit_record(action="grades.imported", actor=uploader, ip="192.0.2.45", user_agent="Worker")
    assert (later.ip, later.user_agent, later.actor) == ("192.0.2.45", "Worker", uploader)


def test_the_trail_survives_the_actor_and_the_image(make_image, make_user, lab_unit, client, run_jobs):
    temp = make_user(Role.UPLOADER, lab_units=[lab_unit])
    image = make_image(lab_unit=lab_unit, uploaded_by=temp)
    client.force_login(temp)
    with run_jobs():
        client.post("/images/bulk", {"action": "delete", "ids": [image.pk], "confirm_count": "1"})
    temp.delete()
    events = AuditEvent.objects.filter(object_id=str(image.pk)).order_by("created_at", "id")
    assert [e.action for e in events] == ["image.uploaded", "image.deleted"]
    assert all(e.actor is None and e.actor_username == temp.username for e in events)
    assert events[1].details["file_name"] == image.original_name


def test_admin_searches_the_audit_trail(client, make_image, uploader, admin_user, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="needle-eye.jpg")
    services.audit_record(action="grades.imported", actor=admin_user, ip="10.1.2.3", summary="Imported 5 AI grades")
    client.force_login(admin_user)
    listing = client.get("/admin/uploads/auditevent/")
    assert listing.status_code == 200
    by_object = client.get("/admin/uploads/auditevent/", {"q": str(image.pk)}).content.decode()
    assert "needle-eye.jpg" in by_object and "Imported 5 AI grades" not in by_object
    by_ip = client.get("/admin/uploads/auditevent/", {"q": "10.1.2.3"}).content.decode()
    assert "Imported 5 AI grades" in by_ip and "needle-eye.jpg" not in by_ip
    by_user = client.get("/admin/uploads/auditevent/", {"q": uploader.username}).content.decode()
    assert "needle-eye.jpg" in by_user
    by_action = client.get("/admin/uploads/auditevent/", {"action": "grades.imported"}).content.decode()
    assert "Imported 5 AI grades" in by_action and "needle-eye.jpg" not in by_action
    event = AuditEvent.objects.get(action="grades.imported")
    detail = client.get(f"/admin/uploads/auditevent/{event.pk}/change/")
    assert detail.status_code == 200
    assert client.post(f"/admin/uploads/auditevent/{event.pk}/delete/").status_code == 403
    assert client.get("/admin/uploads/auditevent/add/").status_code == 403


def test_only_admins_see_the_audit_admin(client, make_user, lab_unit):
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit], is_staff=True)
    client.force_login(manager)
    assert client.get("/admin/uploads/auditevent/").status_code == 403
