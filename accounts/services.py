"""Writes for accounts: reference data, provisioning users, the demo seed."""

from __future__ import annotations

from django.db import transaction

from accounts.models import Area, Camera, Disease, Hospital, LabUnit, Role, User, UserRole

DISEASES = [("DR", "Diabetic Retinopathy"), ("GLAUCOMA", "Glaucoma"), ("AMD", "Age-related Macular Degeneration")]
AREAS = [("left", "Left eye"), ("right", "Right eye"), ("both", "Both eyes")]


def reference_data_ensure() -> None:
    for code, name in DISEASES:
        Disease.objects.get_or_create(code=code, defaults={"name": name})
    for code, name in AREAS:
        Area.objects.get_or_create(code=code, defaults={"name": name})


def _lab_unit_by_id_or_code(value: str) -> LabUnit:
    value = str(value).strip()
    try:
        return LabUnit.objects.get(pk=int(value)) if value.isdigit() else LabUnit.objects.get(code__iexact=value)
    except LabUnit.DoesNotExist:
        raise ValueError(f"Unknown lab unit {value!r}") from None


@transaction.atomic
def user_provision(
    *,
    username: str,
    password: str | None,
    roles: list[str],
    lab_units: list[str] | None = None,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
) -> tuple[User, bool]:
    """Create or update a user with exactly these roles and lab units. Returns ``(user, created)``."""
    unknown = [role for role in roles if role not in Role.values]
    if unknown:
        raise ValueError(f"Unknown role(s): {', '.join(unknown)}. Allowed: {', '.join(Role.values)}")
    units = [_lab_unit_by_id_or_code(value) for value in (lab_units or [])]
    user, created = User.objects.get_or_create(username=username)
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    for field, value in {"email": email, "first_name": first_name, "last_name": last_name}.items():
        if value:
            setattr(user, field, value)
    # The admin role is Django's superuser (the admin site manages everything), and a superuser is an admin: the two
    # are kept equal so provisioning "exactly these roles" also decides who may use the admin site.
    user.is_superuser = user.is_staff = Role.ADMIN in roles
    user.save()
    UserRole.objects.filter(user=user).exclude(role__in=roles).delete()
    for role in roles:
        UserRole.objects.get_or_create(user=user, role=role)
    if lab_units is not None:
        user.lab_units.set(units)
    return user, created


DEMO_PASSWORD = "demo-pass-2024"  # noqa: S105 - the published password of the demo seed, printed by make run
DEMO_HOSPITALS = [
    ("city-eye", "City Eye Hospital", [("city-retina", "Retina Clinic"), ("city-diabetes", "Diabetes Screening Unit")]),
    (
        "rural-vision",
        "Rural Vision Centre",
        [("rural-mobile", "Mobile Screening Van"), ("rural-camp", "Outreach Camp")],
    ),
]
DEMO_CAMERAS = [
    ("remidio-fop", "Remidio Fundus on Phone (FOP)", "Remidio"),
    ("remidio-nm-fop", "Remidio NM-FOP", "Remidio"),
    ("topcon-nw400", "Topcon NW400", "Topcon"),
    ("zeiss-visucam", "Zeiss Visucam 500", "Zeiss"),
]
DEMO_USERS = [
    ("admin", [Role.ADMIN], None),
    ("datamanager", [Role.DATA_MANAGER], ["city-retina", "city-diabetes", "rural-mobile"]),
    ("uploader", [Role.UPLOADER], ["city-retina", "city-diabetes"]),
    ("optometrist", [Role.OPTOMETRIST], ["rural-mobile"]),
    ("resident", [Role.RESIDENT], ["city-retina", "city-diabetes"]),
    ("ophthalmologist", [Role.OPHTHALMOLOGIST], ["city-retina", "city-diabetes", "rural-mobile"]),
    ("arbitrator", [Role.OPHTHALMOLOGIST], ["city-retina", "city-diabetes", "rural-mobile"]),
]


@transaction.atomic
def demo_seed(password: str = DEMO_PASSWORD) -> list[tuple[str, list[str], list[str]]]:
    """Idempotent demo data: two hospitals with lab units, cameras and one user per role."""
    reference_data_ensure()
    for code, name, units in DEMO_HOSPITALS:
        hospital, _ = Hospital.objects.get_or_create(code=code, defaults={"name": name})
        for unit_code, unit_name in units:
            LabUnit.objects.get_or_create(code=unit_code, defaults={"name": unit_name, "hospital": hospital})
    for code, name, manufacturer in DEMO_CAMERAS:
        Camera.objects.get_or_create(code=code, defaults={"name": name, "manufacturer": manufacturer})
    seeded = []
    for username, roles, units in DEMO_USERS:
        user_provision(username=username, password=password, roles=list(roles), lab_units=units)
        seeded.append((username, list(roles), units or ["all lab units"]))
    return seeded
