"""Extension points other apps fill in, so grading never imports them.

Companion images: the grading page shows the other eye of the same patient and visit beside the image being graded,
when an app that knows patients (ZIP ingestion) registers a provider ``fn(image, user) -> list[Image]``. Providers
must return only images the user may see and must not expose patient identifiers.
"""

from collections.abc import Callable

_companion_providers: list[Callable] = []


def register_companions(provider: Callable) -> None:
    if provider not in _companion_providers:
        _companion_providers.append(provider)


def companions_for(image, user) -> list:
    seen = {image.pk}
    out = []
    for provider in _companion_providers:
        for other in provider(image, user) or []:
            if other.pk not in seen:
                seen.add(other.pk)
                out.append(other)
    return out
