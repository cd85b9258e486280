"""Handlers per job kind. Feature apps register theirs in ``AppConfig.ready``; the engine knows no feature app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.models import JobItem


class ItemRejected(Exception):
    """A user-facing refusal of one item: the message says what was wrong and what is allowed."""

    def __init__(self, message: str, result: dict | None = None):
        super().__init__(message)
        self.message = message
        self.result = result or {}


class TransientError(Exception):
    """A failure worth retrying (storage or database briefly unavailable)."""


@dataclass(frozen=True)
class Handler:
    kind: str
    label: str
    # process(item) -> result dict; raises ItemRejected for a user-facing refusal.
    process: Callable[[JobItem], dict]
    # on_rejected(item, message): undo side effects of a refused item (refund quota, ...). Optional.
    on_rejected: Callable[[JobItem, str], None] | None = None
    processing_url_name: str = "jobs:processing"


_handlers: dict[str, Handler] = {}


def register(handler: Handler) -> None:
    _handlers[handler.kind] = handler


def get(kind: str) -> Handler:
    try:
        return _handlers[kind]
    except KeyError:
        raise LookupError(f"No handler registered for job kind {kind!r}") from None


def label(kind: str) -> str:
    handler = _handlers.get(kind)
    return handler.label if handler else kind.replace("_", " ").capitalize()
