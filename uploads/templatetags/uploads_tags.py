from django import template

register = template.Library()

GRADING_BADGES = {
    "not_queued": "text-bg-secondary",
    "awaiting": "text-bg-info",
    "in_progress": "text-bg-primary",
    "in_arbitration": "text-bg-danger",
    "graded": "text-bg-success",
}


@register.filter
def grading_badge(status: str) -> str:
    """Bootstrap classes of the grading-status badge."""
    return GRADING_BADGES.get(status, "text-bg-secondary")


@register.filter
def edit_of(image):
    """The image's ImageEdit (or None) without a query when it was selected with the image."""
    try:
        return image.edit
    except image.__class__.edit.RelatedObjectDoesNotExist:
        return None


@register.filter
def is_selected(value, selected) -> bool:
    """``value`` (an id or a code) is among the selected filter values (ints or strings)."""
    return str(value) in {str(v) for v in (selected or [])}


@register.filter
def thousands(value) -> str:
    """1234567 → 1,234,567."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)
