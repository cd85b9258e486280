"""The AI model registry (name + version, never merged) and the choice of the human grader of an import."""

from __future__ import annotations

import unicodedata

from django.db import IntegrityError, transaction

from accounts import access
from accounts.models import LabUnit, Role, User
from common.api import Conflict, ServiceError
from grading.models import AIModel

MAX_NAME = 120
MAX_VERSION = 60
MAX_DESCRIPTION = 2000

# Which roles may be the grader of an import, per grader type (docs/permissions.md).
GRADER_ROLES: dict[str, tuple[str, ...]] = {
    "resident": (Role.RESIDENT, Role.OPHTHALMOLOGIST),
    "resident2": (Role.OPHTHALMOLOGIST,),
}

MSG_MODEL_FIELDS = "An AI import needs the AI model's name and version (for example 'EyeArt' and '2.1')."
MSG_MODEL_EXISTS = "The AI model {name} {version} is already registered: select it instead."
MSG_GRADER_REQUIRED = "Choose the grader: the {type} grades of this file were made by whom?"
MSG_GRADER_UNKNOWN = "Unknown grader {value!r}: give the user's id or username (a user with the {roles} role)."
MSG_GRADER_ROLE = "{username} cannot be the {type} grader: that needs the {roles} role."
MSG_GRADER_LAB_UNIT = (
    "{username} is not assigned to the lab unit {lab_unit}, so they cannot be the grader of its images. Choose a "
    "grader of that lab unit, or ask an administrator to assign them."
)


def _clean(value, limit: int, label: str) -> str:
    text = unicodedata.normalize("NFC", str(value or "")).strip()
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    if len(text) > limit:
        raise ServiceError(f"The AI model {label} is too long (max {limit} characters).")
    return text


def _roles_text(grader_type: str) -> str:
    return " or ".join(Role(r).label.lower() for r in GRADER_ROLES[grader_type])


@transaction.atomic
def ai_model_create(*, name, version, description: str = "") -> AIModel:
    """Register a new AI model version. Names are compared ignoring case, versions exactly: "2.1" and "2.1.0" are two
    models, never merged."""
    name = _clean(name, MAX_NAME, "name")
    version = _clean(version, MAX_VERSION, "version")
    description = _clean(description, MAX_DESCRIPTION, "description") if description else ""
    if not name or not version:
        raise ServiceError(MSG_MODEL_FIELDS)
    existing = AIModel.objects.filter(name__iexact=name, version=version).first()
    if existing is not None:
        raise Conflict(MSG_MODEL_EXISTS.format(name=existing.name, version=existing.version))
    try:
        with transaction.atomic():
            return AIModel.objects.create(name=name, version=version, description=description)
    except IntegrityError:
        raise Conflict(MSG_MODEL_EXISTS.format(name=name, version=version)) from None


def ai_model_resolve(*, model_id=None, name=None, version=None, description: str = "") -> AIModel:
    """The AI model of an import: an existing one by id, or by name + version (selected when registered, created when
    not). Safe against two imports creating the same model at once (the unique constraint decides)."""
    if model_id not in (None, ""):
        try:
            return AIModel.objects.get(pk=int(str(model_id).strip()))
        except (AIModel.DoesNotExist, ValueError):
            raise ServiceError(
                f"Unknown AI model {str(model_id)[:40]!r}: choose one of the registered models or give a name and version."
            ) from None
    name = _clean(name, MAX_NAME, "name")
    version = _clean(version, MAX_VERSION, "version")
    if not name or not version:
        raise ServiceError(MSG_MODEL_FIELDS)
    existing = AIModel.objects.filter(name__iexact=name, version=version).first()
    if existing is not None:
        return existing
    description = _clean(description, MAX_DESCRIPTION, "description") if description else ""
    try:
        with transaction.atomic():
            return AIModel.objects.create(name=name, version=version, description=description)
    except IntegrityError:
        return AIModel.objects.get(name__iexact=name, version=version)


def grader_resolve(*, value, grader_type: str, lab_unit: LabUnit) -> User:
    """The user who made the grades: they hold the role the grader type needs and work in the lab unit."""
    roles = GRADER_ROLES[grader_type]
    text = str(value or "").strip()
    if not text:
        raise ServiceError(MSG_GRADER_REQUIRED.format(type=grader_type))
    lookup = {"pk": int(text)} if text.isdigit() else {"username": text}
    user = User.objects.filter(is_active=True, **lookup).first()
    if user is None:
        raise ServiceError(MSG_GRADER_UNKNOWN.format(value=text[:60], roles=_roles_text(grader_type)))
    if not any(access.users_with_role(role).filter(pk=user.pk).exists() for role in roles):
        raise ServiceError(
            MSG_GRADER_ROLE.format(username=user.username, type=grader_type, roles=_roles_text(grader_type))
        )
    if not any(access.users_with_role(role, lab_unit).filter(pk=user.pk).exists() for role in roles):
        raise ServiceError(MSG_GRADER_LAB_UNIT.format(username=user.username, lab_unit=lab_unit))
    return user
