"""Concurrent uploads on PostgreSQL with real threads: the quota and the duplicate check hold under races."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Role, User
from jobs.models import JobItem
from tests.foundation.conftest import stored_files, upload_file
from tests.images import jpeg_bytes
from uploads import imaging, services
from uploads.models import Image

pytestmark = [pytest.mark.postgres]


def run_in_threads(*targets):
    """Run each target in its own thread (each with its own database connection); re-raise the first failure."""
    results, errors = [None] * len(targets), []

    def wrap(index, target):
        try:
            results[index] = target()
        except BaseException as exc:  # reported to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=wrap, args=(i, t)) for i, t in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    if errors:
        raise errors[0]
    return results


def poster(user, fields, files):
    def post():
        client = APIClient()
        client.force_authenticate(user)
        response = client.post("/api/direct/upload", {**fields, "files": files}, format="multipart")
        assert response.status_code == 202, response.content
        return response.json()["job_id"]

    return post


def test_two_concurrent_uploads_cannot_together_pass_the_quota(
    postgres_only, transactional_db, fresh_storages, make_user, lab_unit, upload_fields, monkeypatch
):
    user = make_user(Role.UPLOADER, lab_units=[lab_unit], upload_quota=2)
    # Both requests have staged their files before either reserves quota: without the row lock both would read
    # "0 used" and take two each.
    barrier = threading.Barrier(2, timeout=30)
    staged_in_thread = threading.local()
    real_stage = services.stage_file

    def stage_then_meet(uploaded):
        name = real_stage(uploaded)
        staged_in_thread.count = getattr(staged_in_thread, "count", 0) + 1
        if staged_in_thread.count == 2:
            barrier.wait()
        return name

    monkeypatch.setattr(services, "stage_file", stage_then_meet)
    first, second = run_in_threads(
        poster(
            user, upload_fields, [upload_file("a1.jpg", jpeg_bytes(seed=1)), upload_file("a2.jpg", jpeg_bytes(seed=2))]
        ),
        poster(
            user, upload_fields, [upload_file("b1.jpg", jpeg_bytes(seed=3)), upload_file("b2.jpg", jpeg_bytes(seed=4))]
        ),
    )
    items = list(JobItem.objects.filter(job_id__in=[first, second]))
    assert sorted(i.status for i in items) == ["completed", "completed", "error", "error"]
    assert {i.error for i in items if i.status == "error"} == {"Upload quota exceeded"}
    assert Image.objects.count() == 2
    assert User.objects.get(pk=user.pk).upload_count == 2
    assert stored_files("staging") == []


def test_the_same_bytes_in_two_concurrent_requests_make_exactly_one_image(
    postgres_only, transactional_db, fresh_storages, uploader, upload_fields, monkeypatch
):
    data = jpeg_bytes(seed=42)
    # Both workers have passed the first duplicate check before either stores: only the unique MD5 constraint can
    # decide, and the loser must say "Duplicate file" and leave nothing in the image store.
    barrier = threading.Barrier(2, timeout=30)
    real_clean = imaging.clean

    def clean_then_meet(raw):
        cleaned = real_clean(raw)
        barrier.wait()
        return cleaned

    monkeypatch.setattr(imaging, "clean", clean_then_meet)
    first, second = run_in_threads(
        poster(uploader, upload_fields, [upload_file("left.jpg", data)]),
        poster(uploader, upload_fields, [upload_file("same-again.jpg", data)]),
    )
    items = list(JobItem.objects.filter(job_id__in=[first, second]))
    assert sorted((i.status, i.error) for i in items) == [("completed", ""), ("error", "Duplicate file")]
    assert Image.objects.count() == 1
    image = Image.objects.get()
    assert sorted(stored_files("default")) == sorted([image.file.name, image.thumbnail.name])
    assert len(stored_files("duplicates")) == 1
    assert stored_files("staging") == []
    uploader.refresh_from_db()
    assert uploader.upload_count == 1
