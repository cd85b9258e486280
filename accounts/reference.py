"""Reference data for scripts (GET /api/reference/). Feature apps add sections (grade schemes, ...) by registering a
provider, so accounts knows no feature app."""

from collections.abc import Callable

from accounts import access
from accounts.models import Area, Camera, Disease

_providers: dict[str, Callable] = {}


def register(section: str, provider: Callable) -> None:
    """``provider(user) -> JSON-able`` adds ``section`` to the reference document."""
    _providers[section] = provider


def reference_for(user) -> dict:
    hospitals: dict[int, dict] = {}
    for unit in access.lab_units(user):
        entry = hospitals.setdefault(
            unit.hospital_id,
            {"id": unit.hospital_id, "code": unit.hospital.code, "name": unit.hospital.name, "lab_units": []},
        )
        entry["lab_units"].append({"id": unit.pk, "code": unit.code, "name": unit.name})
    doc = {
        "hospitals": sorted(hospitals.values(), key=lambda h: h["name"]),
        "cameras": [{"id": c.pk, "code": c.code, "name": c.name} for c in Camera.objects.all()],
        "diseases": [{"id": d.pk, "code": d.code, "name": d.name} for d in Disease.objects.all()],
        "areas": [{"id": a.pk, "code": a.code, "name": a.name} for a in Area.objects.all()],
        "roles": sorted(access.roles_of(user)),
    }
    for section, provider in _providers.items():
        doc[section] = provider(user)
    return doc
