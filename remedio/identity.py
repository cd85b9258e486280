"""Patient identity: the pseudonymous key and display pseudonym, and encryption of identifying fields at rest.

- ``patient_key``: HMAC-SHA256 (key ``PATIENT_PSEUDONYM_KEY``) of the hospital and the normalised patient ID, so the
  same patient in a later export of the same hospital links to the same row, while the ID itself is not stored in
  clear and cannot be recovered from the key without the secret.
- ``pseudonym_for``: a short, readable code derived from the key (``P-XXXXX-XXXXX``), shown to everyone instead of
  the name.
- ``encrypt`` / ``decrypt``: Fernet (AES-128-CBC + HMAC-SHA256) with ``PATIENT_ENCRYPTION_KEY``; several keys rotate.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# Crockford's base32: no I, L, O, U, so a pseudonym read aloud or copied by hand is not mistaken.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
UNREADABLE = "[unreadable: encryption key changed]"


def normalise_patient_id(value: str) -> str:
    """IDs are compared without case or white space ("mrn 0042" and "MRN0042" are the same patient)."""
    return re.sub(r"\s+", "", str(value or "")).upper()


def patient_key(*, hospital_id: int, patient_id: str) -> str:
    message = f"{hospital_id}\x1f{normalise_patient_id(patient_id)}".encode()
    return hmac.new(settings.PATIENT_PSEUDONYM_KEY.encode(), message, hashlib.sha256).hexdigest()


def pseudonym_for(key: str) -> str:
    """``P-`` and ten Crockford base32 characters (50 bits) taken from the patient key."""
    number = int(key[:13], 16) >> 2  # 52 bits -> 50 bits
    chars = []
    for _ in range(10):
        chars.append(_CROCKFORD[number & 31])
        number >>= 5
    code = "".join(reversed(chars))
    return f"P-{code[:5]}-{code[5:]}"


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(key.strip().encode()) for key in keys.split(",") if key.strip()])


def encrypt(value) -> str:
    """A Fernet token for ``value`` (text); the empty string stays empty."""
    text = "" if value is None else str(value)
    if not text:
        return ""
    return _fernet(settings.PATIENT_ENCRYPTION_KEY).encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet(settings.PATIENT_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return UNREADABLE

