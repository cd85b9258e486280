"""Keyset pagination: a page is "the rows after (or before) this row in this order", so page 500 costs what page 1
costs (an index range scan), unlike OFFSET, which reads and discards every earlier row.

The cursor is an opaque URL-safe token carrying the sort, the boundary row's sort value and id, and the page number
(for display only).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from uploads.filters import DEFAULT_SORT

# sort -> (column, descending)
ORDER = {
    "newest": ("uploaded_at", True),
    "oldest": ("uploaded_at", False),
    "name": ("original_name", False),
    "-name": ("original_name", True),
}
MSG_BAD_CURSOR = "This page link is invalid or belongs to another sort order. Start again from the first page."


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    sort: str
    value: object
    id: uuid.UUID
    page: int


def encode(sort: str, row, page: int) -> str:
    column, _ = ORDER[sort]
    value = getattr(row, column)
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, str(row.pk), page], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, sort: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor_sort, value, row_id, page = json.loads(raw)
        row_id = uuid.UUID(str(row_id))
        page = int(page)
        if cursor_sort != sort or page < 1:
            raise ValueError
        if ORDER[sort][0] == "uploaded_at":
            value = dt.datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError
        elif not isinstance(value, str):
            raise ValueError
    except (ValueError, TypeError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidCursor(MSG_BAD_CURSOR) from exc
    return Cursor(sort=sort, value=value, id=row_id, page=page)


def order_by(sort: str) -> list[str]:
    column, descending = ORDER[sort]
    sign = "-" if descending else ""
    return [f"{sign}{column}", f"{sign}id"]


def _beyond(sort: str, cursor: Cursor, *, forward: bool) -> Q:
    """Rows strictly after (forward) or before the cursor row in ``sort`` order.

    Written as ``col >= v AND (col > v OR id > cursor_id)`` (mirrored for descending), which every database can
    answer with a range scan on the (col, id) index.
    """
    column, descending = ORDER[sort]
    greater = forward != descending
    op, op_eq = ("gt", "gte") if greater else ("lt", "lte")
    return Q(**{f"{column}__{op_eq}": cursor.value}) & (
        Q(**{f"{column}__{op}": cursor.value}) | Q(**{column: cursor.value, f"id__{op}": cursor.id})
    )


@dataclass
class Page:
    rows: list
    number: int
    next_token: str | None
    prev_token: str | None
    has_prev: bool

    @property
    def has_next(self) -> bool:
        return self.next_token is not None


def paginate(
    qs: QuerySet, *, sort: str = DEFAULT_SORT, per_page: int, after: str | None = None, before: str | None = None
) -> Page:
    """One page of ``qs`` in ``sort`` order, starting after the ``after`` cursor or ending before ``before``.

    Runs one query. ``prev_token`` is None both on the first page and on page 2 (whose previous page is the first
    page, linked without a cursor).
    """
    if after and before:
        raise InvalidCursor("Give either 'after' or 'before', not both.")
    ordering = order_by(sort)
    if before:
        cursor = decode(before, sort)
        reverse = [f[1:] if f.startswith("-") else f"-{f}" for f in ordering]
        rows = list(qs.filter(_beyond(sort, cursor, forward=False)).order_by(*reverse)[: per_page + 1])
        more_before = len(rows) > per_page
        rows = rows[:per_page][::-1]
        number = max(1, cursor.page - 1) if more_before else 1
        page = Page(rows=rows, number=number, next_token=None, prev_token=None, has_prev=more_before)
        if rows:
            page.next_token = encode(sort, rows[-1], number + 1)
        if more_before and number > 2:
            page.prev_token = encode(sort, rows[0], number)
        return page
    number = 1
    if after:
        cursor = decode(after, sort)
        qs = qs.filter(_beyond(sort, cursor, forward=True))
        number = cursor.page
    rows = list(qs.order_by(*ordering)[: per_page + 1])
    has_next = len(rows) > per_page
    rows = rows[:per_page]
    page = Page(rows=rows, number=number, next_token=None, prev_token=None, has_prev=number > 1)
    if has_next:
        page.next_token = encode(sort, rows[-1], number + 1)
    if number > 2 and rows:
        page.prev_token = encode(sort, rows[0], number)
    return page
