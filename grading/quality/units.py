"""Who the patient of an image is, for the eye and patient units of analysis, without grading importing the app that
knows patients.

Patients exist only for images that came in a ZIP archive (their encounter = one patient visit). An app that knows
them registers the path, from ``uploads.Image``, to a value identifying the visit (``register_patient_path``); the
ZIP ingestion's one-to-one ``encounter_link`` from Image to its encounter image is used when nothing is registered.
Images without a patient count as one patient (and one eye) each, and the figures say how many did.
"""

from __future__ import annotations

from django.core.exceptions import FieldDoesNotExist

_paths: list[str] = []

DEFAULT_PATH = "encounter_link__encounter_id"


def register_patient_path(path: str) -> None:
    """``path``: an ORM lookup path from Image to a value identifying one patient visit (e.g. its encounter id)."""
    if path not in _paths:
        _paths.append(path)


def patient_path() -> str | None:
    if _paths:
        return _paths[0]
    from uploads.models import Image

    try:
        Image._meta.get_field(DEFAULT_PATH.split("__", 1)[0])
    except FieldDoesNotExist:
        return None
    return DEFAULT_PATH
