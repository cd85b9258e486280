"""Fixtures of the image dashboard tests: images stored through the storage API with real (synthetic) pixels."""

import io
import itertools
import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.utils import timezone
from PIL import Image as PILImage

from accounts.models import Area, Disease
from tests.images import jpeg_bytes
from uploads import hooks, panels
from uploads.models import Image

_seq = itertools.count()


def store_image(*, lab_unit, uploaded_by, name=None, width=96, height=64, files=True, **fields) -> Image:
    """An Image row as the upload path leaves it: original and thumbnail in the default storage."""
    n = next(_seq)
    image_id = uuid.uuid4()
    file_name = thumb_name = ""
    data = b""
    if files:
        data = jpeg_bytes(width=width, height=height, seed=n)
        store = storages["default"]
        file_name = store.save(f"test/{image_id.hex}.jpg", ContentFile(data))
        thumb = io.BytesIO()
        PILImage.open(io.BytesIO(data)).convert("RGB").save(thumb, "JPEG")
        thumb_name = store.save(f"thumbs/test/{image_id.hex}.jpg", ContentFile(thumb.getvalue()))
    values = {
        "id": image_id,
        "file": file_name or f"test/{image_id.hex}.jpg",
        "thumbnail": thumb_name,
        "original_name": name or f"fundus-{n:05d}.jpg",
        "md5": uuid.uuid4().hex,
        "size": len(data) or 1000,
        "mime": "image/jpeg",
        "width": width,
        "height": height,
        "hospital_id": lab_unit.hospital_id,
        "lab_unit": lab_unit,
        "disease": fields.pop("disease", None) or Disease.objects.get(code="DR"),
        "area": fields.pop("area", None) or Area.objects.get(code="left"),
        "uploaded_by": uploaded_by,
    }
    values.update(fields)
    uploaded_at = values.pop("uploaded_at", None)
    image = Image.objects.create(**values)
    if uploaded_at is not None:
        Image.objects.filter(pk=image.pk).update(uploaded_at=uploaded_at)
        image.uploaded_at = uploaded_at
    return image


@pytest.fixture
def make_image(db):
    return store_image


@pytest.fixture(autouse=True)
def isolated_hooks(monkeypatch):
    """Tests see only the providers and panels they register themselves, so pinned query counts and exported
    columns do not change when another app registers its own."""
    monkeypatch.setattr(hooks, "_grades_checks", [])
    monkeypatch.setattr(hooks, "_export_columns", {})
    monkeypatch.setattr(panels, "_panels", [])


@pytest.fixture
def now():
    return timezone.now()
