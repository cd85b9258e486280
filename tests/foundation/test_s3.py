"""Images stored on an S3 endpoint (moto's server on loopback) through django-storages, exactly as in production."""

import io
import socket
import urllib.request

import pytest
from django.test import Client
from PIL import Image as PILImage

from jobs.models import JobItem
from tests.foundation.conftest import jpeg, upload_file
from tests.foundation.test_imaging import IDENTIFIER, jpeg_segments, jpeg_with_everything
from uploads.models import Image

pytestmark = pytest.mark.s3

BUCKET = "fundus-test"
CREDENTIALS = {"access_key": "testing", "secret_key": "testing"}  # moto accepts any key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(settings):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["access_key"],
            aws_secret_access_key=CREDENTIALS["secret_key"],
        )
        client.create_bucket(Bucket=BUCKET)
        options = {
            "bucket_name": BUCKET,
            "endpoint_url": endpoint,
            "region_name": "us-east-1",
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
            **CREDENTIALS,
        }
        settings.STORAGES = {
            **settings.STORAGES,
            **{
                name: {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {**options, "location": area}}
                for name, area in {
                    "default": "images",
                    "staging": "staging",
                    "duplicates": "duplicates",
                    "restricted": "restricted",
                }.items()
            },
        }
        yield client
    finally:
        server.stop()


def keys(client, prefix: str) -> list[str]:
    listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


@pytest.mark.django_db
def test_upload_to_s3_and_serve_through_the_permission_checked_view(s3, uploader, upload_fields, api_upload, run_jobs):
    original = jpeg_with_everything(orientation=1)
    with run_jobs():
        response = api_upload(
            uploader,
            upload_fields,
            [upload_file("with-exif.jpg", original), jpeg("plain.jpg", seed=5)],
        )
    assert response.status_code == 202
    items = JobItem.objects.filter(job_id=response.json()["job_id"]).order_by("position")
    assert [i.status for i in items] == ["completed", "completed"], [i.error for i in items]

    image = Image.objects.get(original_name="with-exif.jpg")
    stored = keys(s3, "images/")
    assert f"images/{image.file.name}" in stored and f"images/{image.thumbnail.name}" in stored
    assert len(stored) == 4  # two images, two thumbnails
    assert keys(s3, "staging/") == []  # staged bytes removed once stored

    body = s3.get_object(Bucket=BUCKET, Key=f"images/{image.file.name}")["Body"].read()
    assert IDENTIFIER.encode() not in body
    assert 0xE1 not in [marker for marker, _ in jpeg_segments(body)]  # no EXIF / XMP segment
    assert not dict(PILImage.open(io.BytesIO(body)).getexif())

    client = Client()
    client.force_login(uploader)
    served = client.get(f"/images/{image.pk}/file")
    # On S3 the permission-checked view answers with a short-lived signed URL, never a public one.
    assert served.status_code == 302 and "Signature=" in served["Location"] and "Expires=" in served["Location"]
    with urllib.request.urlopen(served["Location"], timeout=10) as signed:  # noqa: S310 - the local S3 endpoint
        assert signed.headers["Content-Type"] == "image/jpeg" and signed.read() == body
    thumb = client.get(f"/images/{image.pk}/thumbnail")
    assert thumb.status_code == 302
    with urllib.request.urlopen(thumb["Location"], timeout=10) as signed_thumb:  # noqa: S310
        assert signed_thumb.read() == s3.get_object(Bucket=BUCKET, Key=f"images/{image.thumbnail.name}")["Body"].read()
    client.logout()
    anonymous = client.get(f"/images/{image.pk}/file")
    assert "Signature" not in anonymous.get("Location", "")  # strangers get the login page, never a signed URL

    # A duplicate goes to the audit area of the bucket, never next to the images.
    with run_jobs():
        again = api_upload(uploader, upload_fields, [upload_file("again.jpg", original)])
    assert JobItem.objects.get(job_id=again.json()["job_id"]).error == "Duplicate file"
    assert len(keys(s3, "duplicates/")) == 1 and keys(s3, "images/") == stored
