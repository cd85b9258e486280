from django import template

register = template.Library()


@register.filter
def thousands(value) -> str:
    """12345 → "12,345" (the counts of an import summary)."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)
