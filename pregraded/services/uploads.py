"""Pre-graded image uploads: the direct-upload job with the images marked pre-graded and an optional dataset label."""

from __future__ import annotations

import unicodedata

from common.api import ServiceError

MAX_DATASET_LABEL = 120


def upload_params(*, dataset_label) -> dict:
    """The extra job parameters of a pre-graded upload. The label names the batch (no control characters)."""
    label = unicodedata.normalize("NFC", str(dataset_label or "")).strip()
    label = "".join(ch for ch in label if unicodedata.category(ch)[0] != "C")
    if len(label) > MAX_DATASET_LABEL:
        raise ServiceError(f"The dataset label is too long (max {MAX_DATASET_LABEL} characters).")
    return {"is_pregraded": True, "dataset_label": label, "source": "pregraded"}
