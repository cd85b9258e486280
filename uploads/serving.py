"""Serving stored image files after the caller's access check: streamed from local storage, or a redirect to a
short-lived signed URL when the storage is S3 (the bucket is never public)."""

from __future__ import annotations

from django.core.files.storage import FileSystemStorage, storages
from django.http import FileResponse, Http404, HttpResponseRedirect

from uploads.models import Image

VARIANTS = ("current", "original", "edited", "thumbnail", "edited_thumbnail")
MSG_UNKNOWN_VARIANT = "Unknown variant {variant!r}. Allowed: " + ", ".join(VARIANTS) + "."
MSG_NO_EDIT = "This image has no edited version."


def _edit(image: Image):
    try:
        return image.edit
    except Image.edit.RelatedObjectDoesNotExist:
        return None


def stored_name(image: Image, variant: str) -> tuple[str, str]:
    """``(storage name, content type)`` of a variant; Http404 when the image has no such file."""
    if variant == "current":
        variant = "edited" if image.edited_file else "original"
    if variant == "original":
        return image.file.name, image.mime
    if variant == "edited":
        if not image.edited_file:
            raise Http404(MSG_NO_EDIT)
        return image.edited_file.name, image.mime
    if variant == "thumbnail":
        return (image.thumbnail.name or image.file.name), "image/jpeg" if image.thumbnail else image.mime
    if variant == "edited_thumbnail":
        edit = _edit(image)
        if not image.edited_file or edit is None or not edit.thumbnail:
            raise Http404(MSG_NO_EDIT)
        return edit.thumbnail.name, "image/jpeg"
    raise ValueError(MSG_UNKNOWN_VARIANT.format(variant=variant))


def file_response(image: Image, variant: str, *, download: bool = False):
    name, content_type = stored_name(image, variant)
    ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
    suffix = "" if variant in ("original", "current") else f"-{variant.replace('_', '-')}"
    filename = f"{image.pk}{suffix}.{ext}"
    disposition = f'{"attachment" if download else "inline"}; filename="{filename}"'
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        response = FileResponse(storage.open(name, "rb"), content_type=content_type)
        response["Content-Disposition"] = disposition
        response["Cache-Control"] = "private, max-age=3600"
        return response
    try:
        url = storage.url(
            name, parameters={"ResponseContentDisposition": disposition, "ResponseContentType": content_type}
        )
    except TypeError:  # a remote storage without signed-URL parameters
        url = storage.url(name)
    response = HttpResponseRedirect(url)
    # The signed URL expires: never cache the redirect itself.
    response["Cache-Control"] = "private, no-store"
    return response
