"""What other apps tell the dashboard about images, without uploads importing them (grading registers these).

Two kinds of provider, registered in the provider app's ``AppConfig.ready``:

``register_grades_check(fn)``
    ``fn(image_ids: list[UUID]) -> set[UUID]``: the ids among ``image_ids`` that have grades. Used to reserve the
    deletion of graded images to admins (with a second confirmation). Must run a constant number of queries.

``register_export_columns(key, label, columns, fetch)``
    Extra export columns, added when the export asks for ``include=<key>``. ``fetch(image_ids, user) ->
    {image_id: {column: value}}`` is called once per batch of rows (at most ``EXPORT_BATCH`` ids), so an export of
    100,000 images runs a constant number of queries per batch. Values must be plain text or numbers.

Without a grades provider, "has grades" is read from ``Image.grading_status``: an image whose grading started
(in progress, in arbitration, graded) is treated as graded. Providers add to that; they never remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from uuid import UUID

from uploads.models import GradingStatus

GRADED_STATUSES = frozenset({GradingStatus.IN_PROGRESS, GradingStatus.IN_ARBITRATION, GradingStatus.GRADED})

_grades_checks: list[Callable[[list[UUID]], set[UUID]]] = []


@dataclass(frozen=True)
class ExportColumns:
    key: str
    label: str
    columns: tuple[str, ...]
    fetch: Callable


_export_columns: dict[str, ExportColumns] = {}


def register_grades_check(fn: Callable[[list[UUID]], set[UUID]]) -> None:
    if fn not in _grades_checks:
        _grades_checks.append(fn)


def register_export_columns(key: str, label: str, columns: Iterable[str], fetch: Callable) -> None:
    if key == "links":
        raise ValueError("'links' is the export's own include value")
    _export_columns[key] = ExportColumns(key=key, label=label, columns=tuple(columns), fetch=fetch)


def export_providers() -> dict[str, ExportColumns]:
    return dict(_export_columns)


def images_with_grades(images) -> set[UUID]:
    """Ids of the given images (Image objects) that have grades, by status or by a registered provider."""
    images = list(images)
    graded = {image.pk for image in images if image.grading_status in GRADED_STATUSES}
    ids = [image.pk for image in images]
    for check in _grades_checks:
        if ids:
            graded |= set(check(ids)) & set(ids)
    return graded
