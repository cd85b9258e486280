"""Helpers for the foundation tests: fresh file storages per test, upload shortcuts, storage listings."""

from __future__ import annotations

import pytest
from django.core.files.storage import storages
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.images import jpeg_bytes, png_bytes

AREAS = ("default", "staging", "duplicates", "restricted")


@pytest.fixture
def fresh_storages(settings, tmp_path):
    """Every named storage in an empty directory of its own, so a test can list exactly what it left behind."""
    settings.STORAGES = {
        **settings.STORAGES,
        **{
            name: {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": tmp_path / name}}
            for name in AREAS
        },
    }
    return tmp_path


def stored_files(name: str) -> list[str]:
    """Every file in a named storage, as storage names, found through the storage API."""
    storage = storages[name]
    found: list[str] = []

    def walk(prefix: str) -> None:
        try:
            dirs, files = storage.listdir(prefix)
        except FileNotFoundError:
            return
        found.extend(f"{prefix}/{f}" if prefix else f for f in files)
        for d in dirs:
            walk(f"{prefix}/{d}" if prefix else d)

    walk("")
    return sorted(found)


def upload_file(name: str, data: bytes, content_type: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def jpeg(name: str = "fundus.jpg", seed: int = 0, **kwargs) -> SimpleUploadedFile:
    return upload_file(name, jpeg_bytes(seed=seed, **kwargs), "image/jpeg")


def png(name: str = "fundus.png", seed: int = 0, **kwargs) -> SimpleUploadedFile:
    return upload_file(name, png_bytes(seed=seed, **kwargs), "image/png")


GIF_BYTES = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
    b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


@pytest.fixture
def api_upload(api_client):
    """``api_upload(user, fields, [files])`` → the response of POST /api/direct/upload as that user."""

    def post(user, fields, files, **extra):
        api_client.force_authenticate(user)
        return api_client.post("/api/direct/upload", {**fields, "files": list(files)}, format="multipart", **extra)

    return post
