"""The access policy module, GET /api/reference/ and token authentication."""

import pytest
from django.http import Http404
from django.test import Client
from rest_framework.test import APIClient

from accounts import access
from accounts.models import Area, Camera, Disease, LabUnit, Role
from jobs.models import Job
from tests.factories import LabUnitFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", [r for r in Role.values if r != Role.ADMIN])
def test_every_role_may_take_exactly_its_actions(make_user, role):
    user = make_user(role)
    for action, roles in access.ACTIONS.items():
        assert access.can(user, action) == (role in roles), (role, action)


def test_admin_may_take_every_action_everywhere(admin_user, lab_unit, other_lab_unit):
    assert all(access.can(admin_user, action) for action in access.ACTIONS)
    assert access.lab_unit_ids(admin_user) is None
    assert set(access.lab_units(admin_user)) == {lab_unit, other_lab_unit}


def test_scope_and_get_in_scope(make_user, lab_unit, other_lab_unit):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit])
    assert access.lab_unit_ids(user) == {lab_unit.pk}
    assert list(access.scope(LabUnit.objects.all(), user, "pk")) == [lab_unit]
    assert access.can_use_lab_unit(user, lab_unit)
    assert access.can_use_lab_unit(user, lab_unit.pk)
    assert not access.can_use_lab_unit(user, other_lab_unit)
    assert not access.can_use_lab_unit(user, None)
    assert access.get_in_scope(LabUnit.objects.all(), user, "pk", pk=lab_unit.pk) == lab_unit
    with pytest.raises(Http404):
        access.get_in_scope(LabUnit.objects.all(), user, "pk", pk=other_lab_unit.pk)
    with pytest.raises(Http404):
        access.get_in_scope(LabUnit.objects.all(), user, "pk", pk="not-a-number")
    assert list(access.hospitals(user)) == [lab_unit.hospital]


def test_a_user_without_lab_units_sees_nothing(make_user, lab_unit):
    user = make_user(Role.UPLOADER)
    assert access.lab_unit_ids(user) == frozenset()
    assert not access.lab_units(user).exists()


def test_users_with_role(make_user, lab_unit, other_lab_unit):
    a = make_user(Role.RESIDENT, lab_units=[lab_unit])
    make_user(Role.RESIDENT, lab_units=[other_lab_unit])
    inactive = make_user(Role.RESIDENT, lab_units=[lab_unit])
    inactive.is_active = False
    inactive.save()
    assert list(access.users_with_role(Role.RESIDENT, lab_unit)) == [a]
    assert access.users_with_role(Role.RESIDENT).count() == 2


def test_roles_and_lab_units_are_read_once_per_request_user(make_user, lab_unit, django_assert_num_queries):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit])
    with django_assert_num_queries(2):
        for _ in range(5):
            access.can(user, "upload_images")
            access.lab_unit_ids(user)


# --- /api/reference/ -------------------------------------------------------------------------------------------------


def test_reference_lists_what_the_caller_may_use(make_user, lab_unit, other_lab_unit, camera):
    same_hospital = LabUnitFactory(hospital=lab_unit.hospital)
    user = make_user(Role.UPLOADER, lab_units=[lab_unit, same_hospital])
    client = APIClient()
    client.force_authenticate(user)
    doc = client.get("/api/reference/").json()
    assert [h["id"] for h in doc["hospitals"]] == [lab_unit.hospital_id]
    hospital = doc["hospitals"][0]
    assert hospital["code"] == lab_unit.hospital.code
    assert {u["id"] for u in hospital["lab_units"]} == {lab_unit.pk, same_hospital.pk}
    assert {"id", "code", "name"} <= set(hospital["lab_units"][0])
    assert {c["code"] for c in doc["cameras"]} == set(Camera.objects.values_list("code", flat=True))
    assert [d["code"] for d in doc["diseases"]] == ["DR", "GLAUCOMA", "AMD"]
    assert [a["code"] for a in doc["areas"]] == ["left", "right", "both"]
    assert doc["roles"] == ["uploader"]
    assert Disease.objects.count() == 3 and Area.objects.count() == 3


def test_reference_for_an_admin_lists_every_hospital(admin_user, lab_unit, other_lab_unit):
    client = APIClient()
    client.force_authenticate(admin_user)
    doc = client.get("/api/reference/").json()
    assert {h["id"] for h in doc["hospitals"]} == {lab_unit.hospital_id, other_lab_unit.hospital_id}


def test_api_refuses_anonymous_callers():
    client = APIClient()
    assert client.get("/api/reference/").status_code in (401, 403)
    assert client.post("/api/direct/upload", {}).status_code in (401, 403)
    assert Job.objects.count() == 0


# --- token auth ------------------------------------------------------------------------------------------------------


def test_token_auth_round_trip(uploader, upload_fields, jpeg_file, run_jobs):
    client = APIClient()
    refused = client.post("/api/auth/token/", {"username": uploader.username, "password": "wrong"})
    assert refused.status_code == 400
    assert "token" not in refused.json()
    response = client.post("/api/auth/token/", {"username": uploader.username, "password": "pw-for-tests"})
    assert response.status_code == 200
    token = response.json()["token"]
    assert client.post("/api/auth/token/", {"username": uploader.username, "password": "pw-for-tests"}).json() == {
        "token": token
    }

    scripted = APIClient()
    assert scripted.get("/api/reference/").status_code == 401
    scripted.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert scripted.get("/api/reference/").status_code == 200
    with run_jobs():
        upload = scripted.post(
            "/api/direct/upload", {**upload_fields, "files": [jpeg_file("a.jpg")]}, format="multipart"
        )
    assert upload.status_code == 202
    status = scripted.get(upload.json()["status_url"]).json()
    assert status["status"] == "done" and status["uploader"] == uploader.username

    scripted.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert scripted.get("/api/reference/").status_code == 401


def test_token_page_creates_and_rotates_the_token(uploader):
    client = Client()
    client.force_login(uploader)
    assert b"You have no token yet" in client.get("/accounts/token/").content
    first = client.post("/accounts/token/")
    key = uploader.auth_token.key
    assert key.encode() in first.content
    client.post("/accounts/token/")
    uploader.refresh_from_db()
    assert uploader.auth_token.key != key


def test_openapi_schema_is_served(uploader):
    client = APIClient()
    client.force_authenticate(uploader)
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/direct/upload" in paths
    assert "/api/upload-jobs/{job_id}/status" in paths
    assert "/api/reference/" in paths
    assert "/api/auth/token/" in paths
