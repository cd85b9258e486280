"""The pre-graded section of the image page (registered with uploads.panels)."""

from accounts import access
from pregraded import selectors


def pregraded_panel(image, user) -> dict | None:
    """Dataset label and verification state of a pre-graded image (one query; a second for those who import grades:
    the import that brought its latest grades); nothing for other images."""
    if not image.is_pregraded:
        return None
    can_verify = access.can(user, "import_grades")
    return {
        "title": "Pre-graded",
        "template": "pregraded/_image_panel.html",
        "context": {
            "pregraded": {
                "image": image,
                "verification": selectors.verification_for(image),
                "last_import": selectors.last_import_for(image) if can_verify else None,
                "can_verify": can_verify,
            }
        },
    }
