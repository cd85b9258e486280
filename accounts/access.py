"""The one access policy: which actions a user may take and which hospitals / lab units they may see.

Every view, API and queryset goes through this module. Admins (the ``admin`` role or a superuser) see everything;
everyone else works only inside the lab units they are assigned to. Objects outside a user's scope are answered with
404 by the callers, never with their data. The matrix is documented in docs/permissions.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Model, QuerySet
from django.http import Http404

from accounts.models import Hospital, LabUnit, Role

R = Role

# action -> roles that may take it (admins may take every action).
ACTIONS: dict[str, frozenset[str]] = {
    "upload_images": frozenset({R.DATA_MANAGER, R.UPLOADER, R.OPTOMETRIST}),
    "upload_pregraded": frozenset({R.DATA_MANAGER, R.UPLOADER}),
    "upload_zip": frozenset({R.DATA_MANAGER, R.UPLOADER}),
    "import_grades": frozenset({R.DATA_MANAGER}),
    "view_images": frozenset({R.DATA_MANAGER, R.UPLOADER, R.OPTOMETRIST, R.RESIDENT, R.OPHTHALMOLOGIST}),
    "manage_images": frozenset({R.DATA_MANAGER, R.UPLOADER}),
    "verify_encounters": frozenset({R.DATA_MANAGER}),
    "view_identifiers": frozenset({R.DATA_MANAGER}),
    "view_all_jobs_in_scope": frozenset({R.DATA_MANAGER}),
    "grade": frozenset({R.RESIDENT, R.OPHTHALMOLOGIST}),
    "grade_secondary": frozenset({R.OPHTHALMOLOGIST}),
    "arbitrate": frozenset({R.OPHTHALMOLOGIST}),
    "view_quality": frozenset({R.DATA_MANAGER, R.OPHTHALMOLOGIST}),
    "view_audit": frozenset(),
}


def roles_of(user) -> frozenset[str]:
    """The user's role codes, read once per user object (one query per request)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_access_roles", None)
    if cached is None:
        cached = frozenset(user.role_rows.values_list("role", flat=True))
        if user.is_superuser:
            cached = cached | {R.ADMIN}
        user._access_roles = cached
    return cached


def is_admin(user) -> bool:
    return R.ADMIN in roles_of(user)


def has_role(user, *roles: str) -> bool:
    return bool(roles_of(user) & set(roles))


def can(user, action: str) -> bool:
    if action not in ACTIONS:
        raise KeyError(f"Unknown action {action!r}")
    held = roles_of(user)
    return R.ADMIN in held or bool(held & ACTIONS[action])


def lab_unit_ids(user) -> frozenset[int] | None:
    """Ids of the lab units the user works in; ``None`` means every lab unit (admins)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    if is_admin(user):
        return None
    cached = getattr(user, "_access_lab_units", None)
    if cached is None:
        cached = frozenset(user.lab_units.values_list("id", flat=True))
        user._access_lab_units = cached
    return cached


def lab_units(user) -> QuerySet[LabUnit]:
    qs = LabUnit.objects.select_related("hospital")
    ids = lab_unit_ids(user)
    return qs if ids is None else qs.filter(id__in=ids)


def hospitals(user) -> QuerySet[Hospital]:
    ids = lab_unit_ids(user)
    qs = Hospital.objects.all()
    return qs if ids is None else qs.filter(lab_units__id__in=ids).distinct()


def can_use_lab_unit(user, lab_unit: LabUnit | int | None) -> bool:
    if lab_unit is None:
        return False
    ids = lab_unit_ids(user)
    lab_unit_id = lab_unit if isinstance(lab_unit, int) else lab_unit.pk
    return ids is None or lab_unit_id in ids


def scope(qs: QuerySet, user, field: str = "lab_unit") -> QuerySet:
    """Restrict ``qs`` to rows whose ``field`` (a LabUnit foreign key path) is in the user's lab units."""
    ids = lab_unit_ids(user)
    if ids is None:
        return qs
    return qs.filter(**{f"{field}__in": ids})


def get_in_scope(qs: QuerySet, user, field: str = "lab_unit", **lookup) -> Model:
    """One object inside the user's scope, or 404 (never a hint that it exists elsewhere)."""
    try:
        return scope(qs, user, field).get(**lookup)
    except (qs.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc


def users_with_role(role: str, lab_unit: LabUnit | None = None) -> QuerySet:
    from accounts.models import User

    qs = User.objects.filter(is_active=True, role_rows__role=role)
    if lab_unit is not None:
        qs = qs.filter(lab_units=lab_unit)
    return qs.distinct().order_by("username")


def role_labels(codes: Iterable[str]) -> list[str]:
    return [R(code).label for code in sorted(codes) if code in R.values]
