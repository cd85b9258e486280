"""Synthetic test images: fundus-like JPEGs and PNGs, with or without EXIF; never real patient data."""

import io

import numpy as np
from PIL import Image


def fundus_array(width: int = 512, height: int = 512, seed: int = 0, disc_side: str = "right") -> np.ndarray:
    """An orange disc on black with a bright optic disc and some noise, so every seed gives different bytes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx, r = height / 2, width / 2, min(width, height) * 0.45
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2
    img = np.zeros((height, width, 3), dtype=np.float32)
    img[inside] = (200, 80, 30)
    dx = r * 0.55 if disc_side == "right" else -r * 0.55
    disc = (yy - cy) ** 2 + (xx - (cx + dx)) ** 2 <= (r * 0.12) ** 2
    img[disc] = (255, 230, 170)
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg_bytes(width: int = 512, height: int = 512, seed: int = 0, exif: Image.Exif | None = None, quality: int = 90) -> bytes:
    out = io.BytesIO()
    kwargs = {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    Image.fromarray(fundus_array(width, height, seed)).save(out, "JPEG", **kwargs)
    return out.getvalue()


def png_bytes(width: int = 256, height: int = 256, seed: int = 0, text: dict | None = None) -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.fromarray(fundus_array(width, height, seed)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def exif_with(orientation: int = 1, **tags) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = tags.get("make", "Remidio")
    exif[0x013B] = tags.get("artist", "Patient Jane Doe")  # a stand-in identifier that must not survive
    return exif
