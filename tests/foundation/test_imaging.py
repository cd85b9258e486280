"""Image cleaning: metadata removed from stored copies (orientation applied first), broken files and decompression
bombs refused, and what that means end to end through the upload API."""

import io
import struct
import zlib
from unittest import mock

import numpy as np
import pytest
from django.core.files.storage import storages
from PIL import Image as PILImage
from PIL import PngImagePlugin

from jobs.models import JobItem
from jobs.registry import ItemRejected
from tests.foundation.conftest import stored_files, upload_file
from tests.images import exif_with, fundus_array, jpeg_bytes, png_bytes
from uploads import imaging
from uploads.models import Image

IDENTIFIER = "Patient Jane Doe"
MSG_CORRUPT = (
    "Corrupt or truncated image: it could not be decoded completely. Only complete JPG/PNG files are accepted."
)


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every segment before the image data."""
    assert data[:2] == b"\xff\xd8"
    pos, out = 2, []
    while pos < len(data):
        marker = data[pos + 1]
        if marker == 0xD9:
            break
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        out.append((marker, data[pos + 4 : pos + 2 + length]))
        if marker == 0xDA:
            break
        pos += 2 + length
    return out


def png_chunks(data: bytes) -> list[bytes]:
    pos, kinds = 8, []
    while pos < len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))


def jpeg_with_everything(orientation: int = 1, width: int = 300, height: int = 200) -> bytes:
    """EXIF (with an identifier), XMP, a comment and an ICC profile."""
    out = io.BytesIO()
    PILImage.fromarray(fundus_array(width, height, seed=5)).save(
        out,
        "JPEG",
        quality=90,
        exif=exif_with(orientation),
        comment=f"{IDENTIFIER} 1970-01-01".encode(),
        xmp=f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>{IDENTIFIER}</dc:creator></x:xmpmeta>'.encode(),
        icc_profile=b"\x00" * 128,
    )
    return out.getvalue()


def test_jpeg_metadata_is_removed_losslessly():
    data = jpeg_with_everything()
    assert IDENTIFIER.encode() in data
    cleaned = imaging.clean(data)
    assert IDENTIFIER.encode() not in cleaned.data
    markers = [m for m, _ in jpeg_segments(cleaned.data)]
    assert 0xE1 not in markers  # EXIF and XMP
    assert 0xFE not in markers  # comment
    assert 0xE2 in markers  # the ICC profile (colour) stays
    stored = PILImage.open(io.BytesIO(cleaned.data))
    assert not dict(stored.getexif()) and "comment" not in stored.info and "xmp" not in stored.info
    assert np.array_equal(pixels(cleaned.data), pixels(data))  # the graded pixels are exactly the camera's
    assert (cleaned.width, cleaned.height, cleaned.mime, cleaned.ext) == (300, 200, "image/jpeg", "jpg")


def test_jpeg_orientation_is_applied_before_metadata_goes():
    data = jpeg_with_everything(orientation=6, width=600, height=400)  # 6: rotate 90° clockwise to display
    cleaned = imaging.clean(data)
    assert (cleaned.width, cleaned.height) == (400, 600)
    stored = PILImage.open(io.BytesIO(cleaned.data))
    assert stored.size == (400, 600)
    assert not dict(stored.getexif()) and "comment" not in stored.info
    assert IDENTIFIER.encode() not in cleaned.data
    assert stored.info.get("icc_profile") == b"\x00" * 128
    decoded = PILImage.open(io.BytesIO(data)).convert("RGB")
    upright = np.asarray(decoded.transpose(PILImage.Transpose.ROTATE_270), dtype=int)
    wrong_way = np.asarray(decoded.transpose(PILImage.Transpose.ROTATE_90), dtype=int)
    stored_pixels = pixels(cleaned.data).astype(int)
    assert np.abs(stored_pixels - upright).mean() < 2  # only the re-encode at quality 95 differs
    assert np.abs(stored_pixels - wrong_way).mean() > 3 * np.abs(stored_pixels - upright).mean()
    assert PILImage.open(io.BytesIO(cleaned.thumbnail)).size == (213, 320)


def test_png_text_chunks_and_exif_are_removed():
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", IDENTIFIER)
    info.add_text("Comment", IDENTIFIER, zip=True)
    info.add_itxt("Description", IDENTIFIER)
    out = io.BytesIO()
    PILImage.fromarray(fundus_array(120, 100, seed=2)).save(out, "PNG", pnginfo=info, exif=exif_with(1), dpi=(72, 72))
    data = out.getvalue()
    assert {b"tEXt", b"zTXt", b"iTXt", b"eXIf"} <= set(png_chunks(data))
    cleaned = imaging.clean(data)
    kinds = set(png_chunks(cleaned.data))
    assert not kinds & {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
    assert IDENTIFIER.encode() not in cleaned.data
    assert b"pHYs" in kinds  # rendering chunks stay
    assert np.array_equal(pixels(cleaned.data), pixels(data))
    assert (cleaned.width, cleaned.height, cleaned.mime) == (120, 100, "image/png")


def test_png_orientation_is_applied():
    out = io.BytesIO()
    PILImage.fromarray(fundus_array(120, 80, seed=2)).save(out, "PNG", exif=exif_with(8))
    cleaned = imaging.clean(out.getvalue())
    assert (cleaned.width, cleaned.height) == (80, 120)
    assert b"eXIf" not in png_chunks(cleaned.data) and IDENTIFIER.encode() not in cleaned.data


def test_data_after_the_end_of_a_jpeg_is_dropped():
    data = jpeg_bytes(seed=1) + b"PK\x03\x04 appended archive with " + IDENTIFIER.encode()
    cleaned = imaging.clean(data)
    assert cleaned.data.endswith(b"\xff\xd9") and IDENTIFIER.encode() not in cleaned.data


def test_mpo_keeps_its_first_image_only():
    first = jpeg_with_everything()
    second = jpeg_bytes(seed=9)
    out = io.BytesIO()
    PILImage.open(io.BytesIO(first)).save(out, "MPO", save_all=True, append_images=[PILImage.open(io.BytesIO(second))])
    data = out.getvalue()
    assert PILImage.open(io.BytesIO(data)).format == "MPO"
    mpo = PILImage.open(io.BytesIO(data))
    mpo.seek(0)
    first_frame = np.asarray(mpo.convert("RGB"))
    cleaned = imaging.clean(data)
    assert PILImage.open(io.BytesIO(cleaned.data)).format == "JPEG"
    assert np.array_equal(pixels(cleaned.data), first_frame)
    assert len(cleaned.data) < len(data) // 2  # the second image is gone
    assert IDENTIFIER.encode() not in cleaned.data


@pytest.mark.parametrize(
    "make",
    [
        lambda: jpeg_bytes(seed=3)[:-4000],  # truncated
        lambda: jpeg_bytes(seed=3)[:600],  # headers only
        lambda: png_bytes(seed=3)[:-300],  # truncated PNG
        lambda: jpeg_bytes(seed=3)[:2000] + bytes(range(256)) * 40,  # garbage image data
    ],
    ids=["truncated-jpeg", "jpeg-headers-only", "truncated-png", "corrupt-jpeg"],
)
def test_broken_files_are_refused(make):
    with pytest.raises(ItemRejected) as refused:
        imaging.clean(make())
    assert refused.value.message == MSG_CORRUPT


def test_png_with_a_bad_checksum_is_refused():
    data = bytearray(png_bytes(seed=4))
    idat = bytes(data).index(b"IDAT")
    data[idat + 10] ^= 0xFF
    with pytest.raises(ItemRejected) as refused:
        imaging.clean(bytes(data))
    assert refused.value.message == MSG_CORRUPT


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims enormous dimensions (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(jpeg_bytes(width=16, height=16))
    sof = bytes(data).index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (png_header_only(8000, 8000), "Image dimensions too large: 8000×8000 pixels (max 60 megapixels)."),
        (jpeg_claiming(9000, 9000), "Image dimensions too large: 9000×9000 pixels (max 60 megapixels)."),
        (png_header_only(60000, 60000), "Image dimensions too large (max 60 megapixels)."),
    ],
    ids=["png-64mp", "jpeg-81mp", "png-3600mp"],
)
def test_decompression_bombs_are_refused_before_any_pixel_is_decoded(settings, data, message):
    settings.IMAGE_MAX_PIXELS = 60_000_000
    assert len(data) < 5000
    no_decode = mock.patch.object(PILImage.Image, "load", side_effect=AssertionError("decoded"))
    no_file_decode = mock.patch("PIL.ImageFile.ImageFile.load", side_effect=AssertionError("decoded"))
    with no_decode as load, no_file_decode as file_load, pytest.raises(ItemRejected) as refused:
        imaging.clean(data)
    assert refused.value.message == message
    assert not load.called and not file_load.called


def test_the_pixel_limit_follows_the_setting(settings):
    settings.IMAGE_MAX_PIXELS = 100 * 100
    with pytest.raises(ItemRejected, match=r"120×120 pixels \(max 0 megapixels\)"):
        imaging.clean(jpeg_bytes(width=120, height=120))
    settings.IMAGE_MAX_PIXELS = 120 * 120
    assert imaging.clean(jpeg_bytes(width=120, height=120)).width == 120


def test_content_decides_the_type_not_the_name():
    cleaned = imaging.clean(png_bytes(seed=1))
    assert cleaned.mime == "image/png" and cleaned.ext == "png"
    assert imaging.check_size_and_type(10, png_bytes(seed=1)[:4096]) == (None, "image/png")
    assert imaging.check_size_and_type(10, b"GIF89a" + b"\x00" * 50) == (
        "Invalid file type: image/gif. Only JPG/PNG allowed.",
        "image/gif",
    )


# --- end to end through the API ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_stored_images_carry_no_metadata(fresh_storages, uploader, upload_fields, api_upload, run_jobs):
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", IDENTIFIER)
    out = io.BytesIO()
    PILImage.fromarray(fundus_array(200, 160, seed=8)).save(out, "PNG", pnginfo=info)
    files = [
        upload_file("rotated.jpg", jpeg_with_everything(orientation=6)),
        upload_file("plain.jpg", jpeg_with_everything(orientation=1)),
        upload_file("texty.png", out.getvalue()),
    ]
    with run_jobs():
        api_upload(uploader, upload_fields, files)
    assert Image.objects.count() == 3
    for image in Image.objects.all():
        with storages["default"].open(image.file.name) as fh:
            data = fh.read()
        assert IDENTIFIER.encode() not in data, image.original_name
        assert not dict(PILImage.open(io.BytesIO(data)).getexif()), image.original_name
        with storages["default"].open(image.thumbnail.name) as fh:
            assert IDENTIFIER.encode() not in fh.read()
    rotated = Image.objects.get(original_name="rotated.jpg")
    assert (rotated.width, rotated.height) == (200, 300)
    # The md5 is that of the bytes as sent (so the same upload is recognised again), the stored copy differs.
    assert len(stored_files("default")) == 6


@pytest.mark.django_db
def test_a_bomb_through_the_api_leaves_nothing(fresh_storages, uploader, upload_fields, api_upload, run_jobs):
    with run_jobs():
        response = api_upload(uploader, upload_fields, [upload_file("bomb.png", png_header_only(60000, 60000))])
    item = JobItem.objects.get(job_id=response.json()["job_id"])
    assert item.status == "error" and item.error.startswith("Image dimensions too large")
    assert Image.objects.count() == 0
    assert stored_files("default") == [] and stored_files("staging") == []
