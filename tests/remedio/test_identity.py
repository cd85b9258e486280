"""Pseudonymous patients: stable keyed pseudonyms, identifiers encrypted at rest, keys from settings."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from remedio import identity
from remedio.models import Patient
from remedio.services.patients import patient_resolve


def test_pseudonym_is_stable_and_keyed(settings):
    key = identity.patient_key(hospital_id=1, patient_id="MRN 0042")
    assert key == identity.patient_key(hospital_id=1, patient_id="mrn0042")  # case and spaces do not matter
    assert key != identity.patient_key(hospital_id=2, patient_id="MRN0042")  # another hospital, another patient
    pseudonym = identity.pseudonym_for(key)
    assert pseudonym.startswith("P-") and len(pseudonym) == 13
    assert not set(pseudonym[2:].replace("-", "")) & set("ILOU")
    settings.PATIENT_PSEUDONYM_KEY = "another-key"
    assert identity.patient_key(hospital_id=1, patient_id="MRN0042") != key


def test_encryption_round_trip_and_rotation(settings):
    token = identity.encrypt("Asha Verma")
    assert "Asha" not in token and identity.decrypt(token) == "Asha Verma"
    assert identity.encrypt("") == "" and identity.decrypt("") == ""
    old = settings.PATIENT_ENCRYPTION_KEY
    settings.PATIENT_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{old}"  # a new key first, the old one kept
    assert identity.decrypt(token) == "Asha Verma"
    settings.PATIENT_ENCRYPTION_KEY = Fernet.generate_key().decode()  # the old key lost
    assert identity.decrypt(token) == identity.UNREADABLE


@pytest.mark.django_db
def test_patients_link_across_exports_and_store_no_clear_identifiers(lab_unit):
    from django.db import connection

    first, created = patient_resolve(hospital_id=lab_unit.hospital_id, patient_id="MRN0042", name="Asha Verma")
    again, created_again = patient_resolve(hospital_id=lab_unit.hospital_id, patient_id="mrn0042", sex="F")
    assert created and not created_again and first.pk == again.pk
    again.refresh_from_db()
    assert identity.decrypt(again.sex_encrypted) == "F"
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM remedio_patient")
        row = " ".join(str(value) for value in cursor.fetchone())
    assert "Asha" not in row and "Verma" not in row and "0042" not in row
    assert Patient.objects.get().pseudonym == first.pseudonym


def test_production_requires_the_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PATIENT_", "DJANGO_SETTINGS"))}
    env.update({"DEBUG": "false", "DJANGO_SECRET_KEY": "x", "DATA_DIR": str(tmp_path)})
    code = "import config.settings"
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert result.returncode != 0
    assert "PATIENT_PSEUDONYM_KEY and PATIENT_ENCRYPTION_KEY are required when DEBUG is off." in result.stderr
    env.update({"PATIENT_PSEUDONYM_KEY": "k", "PATIENT_ENCRYPTION_KEY": "not-a-fernet-key"})
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert "PATIENT_ENCRYPTION_KEY must be a Fernet key" in result.stderr
    env["PATIENT_ENCRYPTION_KEY"] = Fernet.generate_key().decode()
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
