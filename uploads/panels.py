"""Sections that other apps add to the image page (grades, encounter and AI report, ...): uploads never imports them.

A panel is ``fn(image, user) -> dict | None``; the dict has ``title``, ``template`` and ``context`` and is rendered with
``{% include template %}`` in the image page. Return None to show nothing. Panels should run a constant number of
queries per call.
"""

from collections.abc import Callable

_panels: list[tuple[int, Callable]] = []


def register(fn: Callable, order: int = 100) -> None:
    if all(existing is not fn for _, existing in _panels):
        _panels.append((order, fn))
        _panels.sort(key=lambda pair: pair[0])


def panels_for(image, user) -> list[dict]:
    out = []
    for _, fn in _panels:
        panel = fn(image, user)
        if panel:
            out.append(panel)
    return out
