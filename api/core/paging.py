"""Keyset cursors for "newest first" lists: opaque to clients, stable under inserts.

A cursor is the sort key `(created_at, id)` of the last item of a page, as url-safe base64
(RFC 4648 §5) of a small JSON array. The next page is every row strictly after that key in the
`ORDER BY created_at DESC, id DESC` order, so paging never repeats nor skips a row even when
new rows arrive between requests (unlike OFFSET).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import Column, ColumnElement, and_, or_

from api.core.domain_errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 50


def encode_cursor(created_at: int, item_id: str) -> str:
    raw = json.dumps([created_at, item_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The `(created_at, id)` a cursor names; 400 for anything we did not hand out."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        created_at, item_id = value
    except (ValueError, TypeError, UnicodeError):
        raise BadRequest("the cursor is not one this API handed out") from None
    if not isinstance(created_at, int) or not isinstance(item_id, str) or len(item_id) > 64:
        raise BadRequest("the cursor is not one this API handed out")
    return created_at, item_id


def after_cursor(
    cursor: str | None, created_col: Column[Any], id_col: Column[Any]
) -> ColumnElement[bool] | None:
    """The WHERE clause selecting rows after `cursor` in newest-first order (None: first page)."""
    if not cursor:
        return None
    created_at, item_id = decode_cursor(cursor)
    return or_(created_col < created_at, and_(created_col == created_at, id_col < item_id))


def next_cursor(rows: list[Any], limit: int, created_key: str = "created_at") -> str | None:
    """A cursor after the last row when the page is full (the caller fetched `limit + 1`)."""
    if len(rows) <= limit:
        return None
    last = rows[limit - 1]._mapping
    return encode_cursor(int(last[created_key]), str(last["id"]))
