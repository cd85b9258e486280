"""Cache of computed quality figures, per selection, invalidated when the data they come from change.

The key of a figure holds the selection (user scope included) and a data stamp: the row count and largest id of
grades and of consensus records (every new, superseding or imported grade inserts a row, every deletion lowers the
count), plus a version counter that receivers bump when a grade, consensus, option, scheme or image is saved or
deleted one row at a time. The stamp is read from the database (two indexed aggregates), so a figure cached by one
process is never served after another process changed the grades; the counter adds in-place edits when the cache is
shared (Redis). ``QUALITY_CACHE_SECONDS`` bounds the age of any entry.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.cache import caches
from django.db.models import Count, Max

VERSION_KEY = "quality:version"


def _cache():
    return caches[settings.QUALITY_CACHE_ALIAS]


def bump(**kwargs) -> None:
    """Signal receiver: something the figures depend on changed."""
    cache = _cache()
    try:
        cache.incr(VERSION_KEY)
    except ValueError:
        cache.set(VERSION_KEY, 1, None)


def stamp() -> str:
    from grading.models import Consensus, Grade

    g = Grade.objects.aggregate(n=Count("id"), m=Max("id"))
    c = Consensus.objects.aggregate(n=Count("id"), m=Max("id"))
    version = _cache().get(VERSION_KEY, 0)
    return f"{g['n']}.{g['m']}.{c['n']}.{c['m']}.{version}"


def cached(name: str, key: str, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """``(value, was_cached)``: the figures under ``name``/``key`` for the current data, computed when missing."""
    cache = _cache()
    full = f"quality:{name}:{key}:{stamp()}"
    value = cache.get(full)
    if value is not None:
        return value, True
    value = compute()
    cache.set(full, value, settings.QUALITY_CACHE_SECONDS)
    return value, False
