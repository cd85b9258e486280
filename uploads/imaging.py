"""Image checks and cleaning: type by content, full decode, decompression-bomb guard, metadata removal, thumbnails.

Stored images carry no EXIF, XMP, IPTC, comments or text chunks. When an EXIF orientation is present it is applied to
the pixels first (a re-encode); otherwise metadata is removed losslessly, segment by segment, so the graded pixels are
exactly the camera's.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import magic
from django.conf import settings
from PIL import Image as PILImage
from PIL import ImageOps

from jobs.registry import ItemRejected

ALLOWED_MIME = {"image/jpeg": "jpg", "image/png": "png"}
# What Pillow must recognise for each sniffed type. MPO is a JPEG followed by further JPEGs (some cameras and phones);
# only its first image is kept.
PIL_FORMATS = {"image/jpeg": {"JPEG", "MPO"}, "image/png": {"PNG"}}
SNIFF_BYTES = 4096

MSG_TOO_LARGE = "File too large (max {max_mb}MB)"
MSG_INVALID_TYPE = "Invalid file type: {mime}. Only JPG/PNG allowed."
MSG_CORRUPT = (
    "Corrupt or truncated image: it could not be decoded completely. Only complete JPG/PNG files are accepted."
)
MSG_BOMB = "Image dimensions too large: {width}×{height} pixels (max {max_mp} megapixels)."
MSG_BOMB_UNKNOWN = "Image dimensions too large (max {max_mp} megapixels)."
MSG_MISMATCH = "Invalid file type: the content is {actual}, not {declared}. Only JPG/PNG allowed."

EXIF_ORIENTATION = 0x0112

# JPEG segments kept: APP0 (JFIF), APP2 ICC profile (colour), APP14 Adobe (colour transform). Everything else in
# APP1..APP15 and COM (EXIF, XMP, IPTC, maker notes, comments) is dropped.
_KEEP_APP = {0xE0: (b"JFIF\x00", b"JFXX\x00"), 0xE2: (b"ICC_PROFILE\x00",), 0xEE: (b"Adobe",)}
# PNG chunks kept: critical ones and those that only affect rendering. Text, time, EXIF and private chunks go.
_KEEP_PNG = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"sBIT", b"pHYs", b"bKGD"}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def sniff_mime(head: bytes) -> str:
    if not head:
        return "application/x-empty"
    return magic.from_buffer(head[:SNIFF_BYTES], mime=True)


def max_file_bytes() -> int:
    return settings.DIRECT_UPLOAD_MAX_FILE_SIZE_MB * 1024 * 1024


def check_size_and_type(size: int, head: bytes) -> tuple[str | None, str]:
    """Cheap request-time checks. Returns ``(error, mime)``; ``error`` is None when the file may go on."""
    if size > max_file_bytes():
        return MSG_TOO_LARGE.format(max_mb=settings.DIRECT_UPLOAD_MAX_FILE_SIZE_MB), ""
    mime = sniff_mime(head)
    if mime not in ALLOWED_MIME:
        return MSG_INVALID_TYPE.format(mime=mime), mime
    return None, mime


@dataclass
class CleanImage:
    data: bytes
    mime: str
    ext: str
    width: int
    height: int
    thumbnail: bytes


def clean(data: bytes) -> CleanImage:
    """Decode ``data`` completely and return a metadata-free copy plus a JPEG thumbnail (one decode serves both).

    Raises ItemRejected with a user-facing message for anything that is not a complete, reasonably sized JPG/PNG.
    """
    mime = sniff_mime(data[:SNIFF_BYTES])
    if mime not in ALLOWED_MIME:
        raise ItemRejected(MSG_INVALID_TYPE.format(mime=mime))
    max_pixels = settings.IMAGE_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            img = PILImage.open(io.BytesIO(data))
            if img.format not in PIL_FORMATS[mime]:
                raise ItemRejected(MSG_MISMATCH.format(actual=img.format, declared=mime))
            width, height = img.size
            # Checked on the header, before a single pixel is decoded.
            if width * height > max_pixels:
                raise ItemRejected(MSG_BOMB.format(width=width, height=height, max_mp=max_pixels // 1_000_000))
            orientation = img.getexif().get(EXIF_ORIENTATION, 1)
            scaled = mime == "image/jpeg" and orientation in (None, 1)
            if scaled:
                # Every byte of the compressed stream is still decoded (a truncated or corrupt file fails exactly as
                # in a full-size decode); only the inverse DCT runs at the reduced scale the thumbnail needs. The
                # stored copy is the original stream, so full-size pixels are not needed here.
                img.draft(img.mode, (settings.THUMBNAIL_SIZE, settings.THUMBNAIL_SIZE))
            img.load()
    except ItemRejected:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise ItemRejected(MSG_BOMB_UNKNOWN.format(max_mp=max_pixels // 1_000_000)) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError) as exc:
        raise ItemRejected(MSG_CORRUPT) from exc

    # Pillow writes some of ``info`` (comments, XMP, EXIF) back when it encodes: only the colour profile may follow
    # the pixels into a re-encoded copy or a thumbnail.
    icc = img.info.get("icc_profile")
    img.info = {"icc_profile": icc} if icc else {}
    if orientation not in (None, 1):
        img = ImageOps.exif_transpose(img)
        img.info = {"icc_profile": icc} if icc else {}
        stored = _encode(img, mime)
        width, height = img.size
    else:
        try:
            stored = strip_jpeg(data) if mime == "image/jpeg" else strip_png(data)
        except ItemRejected:
            # The decoder accepted the file but its container is irregular (stray bytes between segments, ...):
            # keep the decoded pixels rather than refuse a readable image.
            stored = _encode(_full_size(data, icc) if scaled else img, mime)
    return CleanImage(
        data=stored, mime=mime, ext=ALLOWED_MIME[mime], width=width, height=height, thumbnail=make_thumbnail(img)
    )


def _full_size(data: bytes, icc: bytes | None) -> PILImage.Image:
    img = PILImage.open(io.BytesIO(data))
    img.load()
    img.info = {"icc_profile": icc} if icc else {}
    return img


def _encode(img: PILImage.Image, mime: str) -> bytes:
    """Re-encode pixels (after applying the orientation). Only the colour profile is carried over, no metadata."""
    out = io.BytesIO()
    icc = img.info.get("icc_profile")
    extra = {"icc_profile": icc} if icc else {}
    if mime == "image/jpeg":
        rgb = img if img.mode in ("RGB", "L", "CMYK") else img.convert("RGB")
        rgb.save(out, "JPEG", quality=95, subsampling=0, optimize=False, **extra)
    else:
        img.save(out, "PNG", **extra)
    return out.getvalue()


def make_thumbnail(img: PILImage.Image, size: int | None = None) -> bytes:
    """A JPEG no larger than ``size`` on its longest side, resized from the decoded pixels (no second decode)."""
    size = size or settings.THUMBNAIL_SIZE
    source = img if img.mode in ("RGB", "L") else img.convert("RGB")
    width, height = source.size
    scale = min(1.0, size / max(width, height, 1))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    thumb = source.resize(target, PILImage.Resampling.BILINEAR, reducing_gap=2.0) if scale < 1 else source
    out = io.BytesIO()
    (thumb if thumb.mode == "RGB" else thumb.convert("RGB")).save(out, "JPEG", quality=82)
    return out.getvalue()


def strip_jpeg(data: bytes) -> bytes:
    """Copy a JPEG without its metadata segments; the entropy-coded data is copied byte for byte."""
    if data[:2] != b"\xff\xd8":
        raise ItemRejected(MSG_CORRUPT)
    out = bytearray(b"\xff\xd8")
    pos, n = 2, len(data)
    while pos < n:
        if data[pos] != 0xFF:
            raise ItemRejected(MSG_CORRUPT)
        marker = data[pos + 1] if pos + 1 < n else None
        if marker is None:
            raise ItemRejected(MSG_CORRUPT)
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            out += b"\xff\xd9"
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            out += data[pos : pos + 2]
            pos += 2
            continue
        if pos + 4 > n:
            raise ItemRejected(MSG_CORRUPT)
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segment = data[pos : pos + 2 + length]
        if marker == 0xDA:
            # Start of scan: image data (and any further scans) up to the end-of-image marker is kept whole. Inside
            # entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so the first FF D9 ends the
            # image. Whatever follows it (appended payloads, the extra images of an MPO) is dropped.
            end = data.find(b"\xff\xd9", pos + 2 + length)
            out += data[pos:] if end < 0 else data[pos : end + 2]
            if end < 0:
                out += b"\xff\xd9"
            break
        keep = True
        if 0xE0 <= marker <= 0xEF:
            prefixes = _KEEP_APP.get(marker)
            keep = bool(prefixes) and segment[4:].startswith(prefixes)
        elif marker == 0xFE:
            keep = False
        if keep:
            out += segment
        pos += 2 + length
    return bytes(out)


def strip_png(data: bytes) -> bytes:
    """Copy a PNG keeping only its critical and rendering chunks."""
    if not data.startswith(_PNG_SIGNATURE):
        raise ItemRejected(MSG_CORRUPT)
    out = bytearray(_PNG_SIGNATURE)
    pos, n = len(_PNG_SIGNATURE), len(data)
    while pos + 8 <= n:
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            raise ItemRejected(MSG_CORRUPT)
        if kind in _KEEP_PNG:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    return bytes(out)
