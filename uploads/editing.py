"""Pixel editing: rotate, flip, crop, brightness/contrast and masking a region (to hide burnt-in text).

An edit is a list of operations applied, in order, to the ORIGINAL pixels; the result is stored as the image's
edited version beside the original, which is never overwritten. Editing again starts from the original with the
new full list, so quality never degrades through repeated edits and "Restore original" is just deleting the edit.

Operations (coordinates in pixels of the image as it is at that step, i.e. after the earlier operations):
    {"op": "rotate", "degrees": 90 | 180 | 270}          clockwise
    {"op": "flip", "axis": "horizontal" | "vertical"}
    {"op": "crop", "x": 0, "y": 0, "width": 100, "height": 100}
    {"op": "mask", "x": 0, "y": 0, "width": 100, "height": 100}   filled black
    {"op": "adjust", "brightness": 1.0, "contrast": 1.0}  factors; 1 = unchanged

Brightness and contrast follow the CSS filter definitions (brightness multiplies, contrast scales around mid-grey),
so the editor's live preview shows exactly what is saved.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import ImageDraw

from common.api import ServiceError

MAX_OPERATIONS = 50
MIN_SIDE = 16
FACTOR_RANGE = (0.2, 3.0)
ROTATIONS = (90, 180, 270)
AXES = ("horizontal", "vertical")
OPS = ("rotate", "flip", "crop", "mask", "adjust")

MSG_NOT_LIST = "The edit must be a list of operations (rotate, flip, crop, mask, adjust)."
MSG_EMPTY = 'The edit has no operations: nothing to save. Use "Restore original" to remove an edit.'
MSG_TOO_MANY = "Too many operations in one edit ({n}, max {max})."


@dataclass(frozen=True)
class Plan:
    operations: list[dict]
    width: int
    height: int


def _step_error(index: int, op: str, message: str) -> ServiceError:
    return ServiceError(f"Step {index + 1} ({op}): {message}")


def _int(raw: dict, key: str, index: int, op: str) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _step_error(index, op, f"'{key}' must be a whole number of pixels, got {value!r}.")
    if isinstance(value, float) and not value.is_integer():
        raise _step_error(index, op, f"'{key}' must be a whole number of pixels, got {value!r}.")
    return int(value)


def _factor(raw: dict, key: str, index: int) -> float:
    value = raw.get(key, 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise _step_error(index, "adjust", f"'{key}' must be a number, got {value!r}.")
    low, high = FACTOR_RANGE
    if not low <= value <= high:
        raise _step_error(index, "adjust", f"'{key}' must be between {low} and {high} (1 = unchanged), got {value}.")
    return round(float(value), 3)


def plan(operations, width: int, height: int) -> Plan:
    """Validate ``operations`` against an image of ``width`` by ``height`` pixels without touching pixels.

    Returns the normalised operations and the size of the result; raises ServiceError naming the step at fault.
    """
    if not isinstance(operations, list):
        raise ServiceError(MSG_NOT_LIST)
    if not operations:
        raise ServiceError(MSG_EMPTY)
    if len(operations) > MAX_OPERATIONS:
        raise ServiceError(MSG_TOO_MANY.format(n=len(operations), max=MAX_OPERATIONS))
    clean: list[dict] = []
    w, h = width, height
    for index, raw in enumerate(operations):
        if not isinstance(raw, dict):
            raise ServiceError(
                f'Step {index + 1}: each operation is an object such as {{"op": "rotate", "degrees": 90}}.'
            )
        op = raw.get("op")
        if op not in OPS:
            raise ServiceError(f"Step {index + 1}: unknown operation {op!r}. Allowed: {', '.join(OPS)}.")
        if op == "rotate":
            degrees = raw.get("degrees")
            if isinstance(degrees, bool) or degrees not in ROTATIONS:
                raise _step_error(index, op, f"'degrees' must be 90, 180 or 270 (clockwise), got {degrees!r}.")
            clean.append({"op": op, "degrees": int(degrees)})
            if degrees in (90, 270):
                w, h = h, w
        elif op == "flip":
            axis = raw.get("axis")
            if axis not in AXES:
                raise _step_error(index, op, f"'axis' must be horizontal or vertical, got {axis!r}.")
            clean.append({"op": op, "axis": axis})
        elif op in ("crop", "mask"):
            x, y = _int(raw, "x", index, op), _int(raw, "y", index, op)
            rw, rh = _int(raw, "width", index, op), _int(raw, "height", index, op)
            if x < 0 or y < 0 or rw <= 0 or rh <= 0 or x + rw > w or y + rh > h:
                raise _step_error(
                    index,
                    op,
                    f"the region x={x}, y={y}, {rw}×{rh} does not lie inside the image, which is {w}×{h} pixels "
                    "at this step.",
                )
            if op == "crop":
                if rw < MIN_SIDE or rh < MIN_SIDE:
                    raise _step_error(
                        index, op, f"the cropped image would be {rw}×{rh}; keep at least {MIN_SIDE}×{MIN_SIDE} pixels."
                    )
                w, h = rw, rh
            clean.append({"op": op, "x": x, "y": y, "width": rw, "height": rh})
        else:
            brightness, contrast = _factor(raw, "brightness", index), _factor(raw, "contrast", index)
            clean.append({"op": op, "brightness": brightness, "contrast": contrast})
    return Plan(operations=clean, width=w, height=h)


def _lut(brightness: float, contrast: float) -> list[int]:
    # CSS order as the preview applies it: brightness first, then contrast around mid-grey.
    table = []
    for value in range(256):
        v = value * brightness
        v = (v - 127.5) * contrast + 127.5
        table.append(max(0, min(255, round(v))))
    return table


def apply(img: PILImage.Image, operations: list[dict]) -> PILImage.Image:
    """Apply validated operations (see ``plan``) to a decoded image."""
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    for op in operations:
        kind = op["op"]
        if kind == "rotate":
            img = img.transpose(
                {
                    90: PILImage.Transpose.ROTATE_270,
                    180: PILImage.Transpose.ROTATE_180,
                    270: PILImage.Transpose.ROTATE_90,
                }[op["degrees"]]
            )
        elif kind == "flip":
            img = img.transpose(
                PILImage.Transpose.FLIP_LEFT_RIGHT if op["axis"] == "horizontal" else PILImage.Transpose.FLIP_TOP_BOTTOM
            )
        elif kind == "crop":
            img = img.crop((op["x"], op["y"], op["x"] + op["width"], op["y"] + op["height"]))
        elif kind == "mask":
            img = img.copy()
            ImageDraw.Draw(img).rectangle(
                (op["x"], op["y"], op["x"] + op["width"] - 1, op["y"] + op["height"] - 1),
                fill=0 if img.mode == "L" else (0, 0, 0),
            )
        elif kind == "adjust" and (op["brightness"] != 1 or op["contrast"] != 1):
            table = _lut(op["brightness"], op["contrast"])
            img = img.point(table * len(img.getbands()))
    return img


def render(data: bytes, mime: str, operations: list[dict]) -> tuple[bytes, PILImage.Image]:
    """Decode the original bytes, apply the operations, and encode the result in the original's format."""
    img = PILImage.open(io.BytesIO(data))
    img.load()
    result = apply(img, operations)
    out = io.BytesIO()
    if mime == "image/png":
        result.save(out, "PNG")
    else:
        result.convert("RGB").save(out, "JPEG", quality=95, subsampling=0)
    return out.getvalue(), result
