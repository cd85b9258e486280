"""Accounts: roles, quotas, provisioning, the demo seed, and the log-in / log-out / change-password pages."""

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts import access
from accounts.models import Camera, Hospital, LabUnit, Role, User, UserRole
from accounts.services import DEMO_PASSWORD, DEMO_USERS, demo_seed

pytestmark = pytest.mark.django_db


def test_a_user_may_hold_several_roles(make_user, lab_unit):
    user = make_user(Role.UPLOADER, Role.RESIDENT, lab_units=[lab_unit])
    assert access.roles_of(user) == {Role.UPLOADER, Role.RESIDENT}
    assert access.can(user, "upload_images")  # as uploader
    assert access.can(user, "grade")  # as resident
    assert not access.can(user, "arbitrate")
    assert not access.is_admin(user)


def test_superuser_is_an_admin_without_a_role_row(make_user):
    user = make_user()
    user.is_superuser = True
    user.save()
    user = User.objects.get(pk=user.pk)
    assert access.is_admin(user)
    assert access.lab_unit_ids(user) is None
    assert all(access.can(user, action) for action in access.ACTIONS)


def test_unknown_action_is_a_programming_error(uploader):
    with pytest.raises(KeyError):
        access.can(uploader, "fly")


@pytest.mark.parametrize(
    ("site_default", "override", "expected"),
    [(50, None, 50), (50, 10, 10), (50, 0, 0), (0, None, 0), (0, 7, 7)],
)
def test_effective_quota_is_the_override_or_the_site_default(settings, make_user, site_default, override, expected):
    settings.DIRECT_UPLOAD_LIFETIME_QUOTA = site_default
    user = make_user(Role.UPLOADER, upload_quota=override)
    assert user.effective_upload_quota == expected  # 0 means unlimited


def test_adduser_creates_a_user_with_roles_and_lab_units(lab_unit, other_lab_unit, capsys):
    call_command(
        "adduser",
        "grader1",
        "--password",
        "s3cret-pass!",
        "--role",
        "resident",
        "--role",
        "uploader",
        "--lab-unit",
        str(lab_unit.pk),
        "--lab-unit",
        other_lab_unit.code,
    )
    user = User.objects.get(username="grader1")
    assert user.check_password("s3cret-pass!")
    assert set(user.role_rows.values_list("role", flat=True)) == {"resident", "uploader"}
    assert set(user.lab_units.all()) == {lab_unit, other_lab_unit}
    assert not user.is_staff and not user.is_superuser
    assert "Created grader1" in capsys.readouterr().out


def test_adduser_updates_an_existing_user_to_exactly_the_given_roles(lab_unit, other_lab_unit):
    call_command("adduser", "u", "--password", "first-pass-1", "--role", "resident", "--lab-unit", lab_unit.code)
    call_command("adduser", "u", "--role", "ophthalmologist", "--lab-unit", other_lab_unit.code)
    user = User.objects.get(username="u")
    assert user.check_password("first-pass-1")  # kept: no --password given
    assert list(user.role_rows.values_list("role", flat=True)) == ["ophthalmologist"]
    assert list(user.lab_units.all()) == [other_lab_unit]
    assert User.objects.filter(username="u").count() == 1


def test_adduser_admin_role_may_use_the_admin_site():
    call_command("adduser", "boss", "--password", "boss-pass-123", "--role", "admin")
    user = User.objects.get(username="boss")
    assert user.is_staff and user.is_superuser
    client = Client()
    client.force_login(user)
    assert client.get("/admin/accounts/user/").status_code == 200
    call_command("adduser", "boss", "--role", "uploader")
    user.refresh_from_db()
    assert not user.is_staff and not user.is_superuser


def test_adduser_refuses_an_unknown_lab_unit_and_changes_nothing():
    with pytest.raises(CommandError, match="Unknown lab unit 'nowhere'"):
        call_command("adduser", "x", "--password", "pw-123456789", "--role", "uploader", "--lab-unit", "nowhere")
    assert not User.objects.filter(username="x").exists()


def test_adduser_refuses_an_unknown_role():
    with pytest.raises(CommandError):
        call_command("adduser", "x", "--role", "pilot")


def test_demo_seed_is_idempotent_and_has_one_user_per_role(capsys):
    demo_seed()
    counts = (Hospital.objects.count(), LabUnit.objects.count(), Camera.objects.count(), User.objects.count())
    roles = UserRole.objects.count()
    call_command("seed_demo")
    assert (Hospital.objects.count(), LabUnit.objects.count(), Camera.objects.count(), User.objects.count()) == counts
    assert UserRole.objects.count() == roles
    assert counts[0] == 2
    assert counts[1] >= 2
    held = set(UserRole.objects.values_list("role", flat=True))
    assert held == set(Role.values)
    out = capsys.readouterr().out
    for username, _roles, _units in DEMO_USERS:
        assert username in out
    assert DEMO_PASSWORD in out
    admin = User.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(DEMO_PASSWORD)
    uploader = User.objects.get(username="uploader")
    assert set(uploader.lab_units.values_list("code", flat=True)) == {"city-retina", "city-diabetes"}


def test_login_and_logout_pages(uploader):
    client = Client()
    assert client.get("/direct/upload").url.startswith("/accounts/login/")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b'name="username"' in page.content
    bad = client.post("/accounts/login/", {"username": uploader.username, "password": "wrong"})
    assert bad.status_code == 200
    assert "didn't match" in bad.content.decode()
    good = client.post("/accounts/login/", {"username": uploader.username, "password": "pw-for-tests"})
    assert good.status_code == 302 and good.url == "/"
    home = client.get("/")
    assert home.status_code == 200 and uploader.username.encode() in home.content
    assert client.get("/accounts/logout/").status_code == 405  # logging out changes state: POST only
    out = client.post("/accounts/logout/")
    assert out.status_code == 302 and out.url == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_change_password_page(uploader):
    client = Client()
    client.force_login(uploader)
    assert client.get("/accounts/password/").status_code == 200
    wrong = client.post(
        "/accounts/password/",
        {"old_password": "nope", "new_password1": "Fresh-pass-2024", "new_password2": "Fresh-pass-2024"},
    )
    assert wrong.status_code == 200 and b"is-invalid" in wrong.content
    ok = client.post(
        "/accounts/password/",
        {"old_password": "pw-for-tests", "new_password1": "Fresh-pass-2024", "new_password2": "Fresh-pass-2024"},
    )
    assert ok.status_code == 302 and ok.url == "/accounts/password/done/"
    uploader.refresh_from_db()
    assert uploader.check_password("Fresh-pass-2024")
    assert client.get("/accounts/password/done/").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/admin/accounts/user/",
        "/admin/accounts/hospital/",
        "/admin/accounts/labunit/",
        "/admin/accounts/camera/",
        "/admin/accounts/disease/",
        "/admin/accounts/area/",
        "/admin/jobs/job/",
        "/admin/uploads/image/",
    ],
)
def test_admin_pages_for_the_reference_data(admin_user, path):
    admin_user.is_superuser = True
    admin_user.save()
    client = Client()
    client.force_login(admin_user)
    assert client.get(path).status_code == 200
