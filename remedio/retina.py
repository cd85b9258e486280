"""What the product can tell about a fundus photograph before a person looks: burnt-in text in the dark corner band
(to mask) and which eye it is likely to be (a suggestion, never a decision).

Both work on a reduced copy (JPEG DCT scaling: about 1/8 of the decoding cost) and report boxes in the pixels of the
full, orientation-corrected image.

- **Burnt-in text**: the camera writes name, ID and date in white or yellow on the black surround of the round fundus
  field. The fundus field is the largest bright region; text is bright strokes outside it. Strokes close together are
  grouped into boxes, padded, and masked (filled black) in the graded copy.
- **Laterality**: the optic disc is the brightest round region and lies on the nasal side: on the right of the image
  for a right eye (OD), on the left for a left eye (OS). The confidence grows with the disc's distance from the centre
  and its contrast; a disc near the centre (disc-centred field) gives no suggestion.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageOps
from scipy import ndimage

WORK_SIZE = 320  # longest side of the reduced copy (at least; JPEG scaling goes in steps of 1/2)
BACKGROUND = 30  # brightest value (0-255) still counted as the black surround
TEXT_LEVEL = 110  # strokes of burnt-in text are at least this bright
MIN_TEXT_PIXELS = 12  # on the reduced copy
MIN_SUGGESTION_OFFSET = 0.12  # disc offset from the centre (in fundus radii) below which no side is suggested


@dataclass
class Analysis:
    width: int
    height: int
    text_boxes: list[list[int]] = field(default_factory=list)
    text_confidence: float | None = None
    laterality: str = ""
    laterality_confidence: float | None = None


def open_oriented(data: bytes | io.BufferedIOBase, reduce_to: int | None = None) -> Image.Image:
    """Decode (reduced when asked, through the JPEG decoder's own scaling) and apply the EXIF orientation."""
    img = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
    if reduce_to and img.format == "JPEG":
        img.draft("RGB", (reduce_to, reduce_to))
    # One decoded copy at a time (a 2866 x 2866 photograph is 25 MB of pixels): convert only when needed, turn in place.
    if img.mode == "RGB":
        img.load()
    else:
        img = img.convert("RGB")
    ImageOps.exif_transpose(img, in_place=True)
    return img


def analyse(data: bytes) -> Analysis:
    """Text boxes and a laterality suggestion for an image file (JPEG or PNG)."""
    full = Image.open(io.BytesIO(data))
    orientation = full.getexif().get(0x0112, 1)
    width, height = full.size
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    small = open_oriented(data, reduce_to=WORK_SIZE)
    if max(small.size) > WORK_SIZE * 2:
        small.thumbnail((WORK_SIZE * 2, WORK_SIZE * 2), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.uint8)
    scale_x, scale_y = width / rgb.shape[1], height / rgb.shape[0]
    result = Analysis(width=width, height=height)

    bright = rgb.max(axis=2)
    fundus = _fundus_region(bright)
    boxes, confidence = _text_boxes(bright, fundus)
    result.text_boxes = [
        [
            max(0, int(x0 * scale_x)),
            max(0, int(y0 * scale_y)),
            min(width, int(np.ceil(x1 * scale_x))),
            min(height, int(np.ceil(y1 * scale_y))),
        ]
        for x0, y0, x1, y1 in boxes
    ]
    result.text_confidence = confidence
    result.laterality, result.laterality_confidence = _laterality(rgb, fundus)
    return result


def _fundus_region(bright: np.ndarray) -> np.ndarray:
    """The round field of view: the largest region brighter than the surround, with thin strokes (text) removed."""
    mask = bright > BACKGROUND
    size = max(3, min(bright.shape) // 60)
    mask = ndimage.binary_opening(mask, structure=np.ones((size, size)))
    labels, count = ndimage.label(mask)
    if count == 0:
        return np.zeros_like(mask)
    sizes = ndimage.sum(mask, labels, index=range(1, count + 1))
    region = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(region)


def _text_boxes(bright: np.ndarray, fundus: np.ndarray) -> tuple[list[tuple[int, int, int, int]], float | None]:
    height, width = bright.shape
    margin = max(2, min(height, width) // 50)
    outside = ndimage.distance_transform_edt(~fundus) > margin
    strokes = (bright >= TEXT_LEVEL) & outside
    if int(strokes.sum()) < MIN_TEXT_PIXELS:
        return [], None
    # Letters of one line (and lines of one block) merge into one region.
    grow = max(3, min(height, width) // 40)
    merged = ndimage.binary_dilation(strokes, structure=np.ones((grow, grow * 2)))
    labels, _count = ndimage.label(merged)
    boxes, total = [], 0
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        pixels = int((strokes[found] & (labels[found] == index)).sum())
        if pixels < MIN_TEXT_PIXELS:
            continue
        ys, xs = found
        pad = max(2, min(height, width) // 100)
        boxes.append(
            (max(0, xs.start - pad), max(0, ys.start - pad), min(width, xs.stop + pad), min(height, ys.stop + pad))
        )
        total += pixels
    if not boxes:
        return [], None
    return boxes, round(min(0.99, 0.5 + total / (MIN_TEXT_PIXELS * 40)), 2)


def _laterality(rgb: np.ndarray, fundus: np.ndarray) -> tuple[str, float | None]:
    if fundus.sum() < 0.05 * fundus.size:
        return "", None
    _ys, xs = np.nonzero(fundus)
    cx = (xs.min() + xs.max()) / 2
    radius = max(1.0, (xs.max() - xs.min()) / 2)
    inner = ndimage.distance_transform_edt(fundus) > max(1, int(radius * 0.08))
    if not inner.any():
        return "", None
    luminance = rgb[..., 0] * 0.3 + rgb[..., 1] * 0.59 + rgb[..., 2] * 0.11
    smooth = ndimage.gaussian_filter(luminance, sigma=max(1.0, radius * 0.05))
    smooth = np.where(inner, smooth, -1)
    peak_y, peak_x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    offset = (peak_x - cx) / radius
    background = float(np.median(luminance[inner]))
    contrast = (float(smooth[peak_y, peak_x]) - background) / max(1.0, 255 - background)
    if abs(offset) < MIN_SUGGESTION_OFFSET or contrast < 0.1:
        return "", None
    confidence = min(1.0, (abs(offset) - MIN_SUGGESTION_OFFSET) / 0.35) * min(1.0, contrast * 2.5)
    return ("right" if offset > 0 else "left"), round(max(0.05, min(0.99, confidence)), 2)


def render_masked(original: bytes, boxes: list[list[int]]) -> bytes:
    """The graded copy: the original's pixels (orientation applied) with every box filled black, as a JPEG."""
    img = open_oriented(original)
    icc = Image.open(io.BytesIO(original)).info.get("icc_profile")
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], fill=(0, 0, 0))
    out = io.BytesIO()
    extra = {"icc_profile": icc} if icc else {}
    img.save(out, "JPEG", quality=95, **extra)
    return out.getvalue()


def valid_boxes(boxes, width: int, height: int) -> list[list[int]]:
    """Boxes clipped to the image, as ``[x0, y0, x1, y1]`` integers; raises ValueError for malformed input."""
    out = []
    for box in boxes or []:
        if not isinstance(box, list | tuple) or len(box) != 4:
            raise ValueError("Each mask box is [x0, y0, x1, y1] in pixels.")
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        x0, x1 = sorted((max(0, min(width, x0)), max(0, min(width, x1))))
        y0, y1 = sorted((max(0, min(height, y0)), max(0, min(height, y1))))
        if x1 - x0 < 1 or y1 - y0 < 1:
            raise ValueError("A mask box must cover at least one pixel inside the image.")
        out.append([x0, y0, x1, y1])
    return out
