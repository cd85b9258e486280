"""Pseudonymous patients: find or create by keyed hash, keep identifying fields encrypted."""

from __future__ import annotations

from remedio import identity
from remedio.models import Patient


def patient_resolve(*, hospital_id: int, patient_id: str, name: str = "", sex: str = "") -> tuple[Patient, bool]:
    """The patient with this hospital + ID (created when new). Missing name or sex of a known patient is filled in.

    Runs inside the caller's transaction; two workers creating the same patient at once both end with the one row
    (``get_or_create`` retries the read after the unique key refuses the second insert).
    """
    key = identity.patient_key(hospital_id=hospital_id, patient_id=patient_id)
    patient, created = Patient.objects.get_or_create(
        key=key,
        defaults={
            "hospital_id": hospital_id,
            "pseudonym": identity.pseudonym_for(key),
            "name_encrypted": identity.encrypt(name),
            "patient_id_encrypted": identity.encrypt(patient_id.strip()),
            "sex_encrypted": identity.encrypt(sex),
        },
    )
    if not created:
        changed = []
        if name and not patient.name_encrypted:
            patient.name_encrypted = identity.encrypt(name)
            changed.append("name_encrypted")
        if sex and not patient.sex_encrypted:
            patient.sex_encrypted = identity.encrypt(sex)
            changed.append("sex_encrypted")
        if changed:
            patient.save(update_fields=changed)
    return patient, created


def pseudonym_of(*, hospital_id: int, patient_id: str) -> str:
    return identity.pseudonym_for(identity.patient_key(hospital_id=hospital_id, patient_id=patient_id))
