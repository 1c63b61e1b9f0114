"""Cursors, the one codec every paged list uses, and keyset paging for "newest first" lists.

A cursor is opaque to clients: url-safe base64 without padding (RFC 4648 §5) of the msgspec
JSON of a small value whose type the list declares (`CursorCodec`). Decoding is strict: a
character outside that alphabet, bad JSON, a value not of the declared type (msgspec's
strict validation: no bool for an int, no extra array items), a number outside the signed
64-bit range of the database's BIGINT or a string holding a NUL character (which PostgreSQL
cannot take; issue 16, item 1) is the same 400, `BAD_CURSOR`: the codec hands out neither.

Keyset lists (`encode_cursor`, `after_cursor`, `next_cursor`) page on the sort key
`(created_at, id)` of the last item of a page, a JSON array of both. The next page is every
row strictly after that key in the `ORDER BY created_at DESC, id DESC` order, so paging never
repeats nor skips a row even when new rows arrive between requests (unlike OFFSET). The feed's
cursors are tagged structs of their own (`api.feed.cursors`) through the same codec.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from sqlalchemy import Column, ColumnElement, and_, or_

from api.core.domain_errors import BadRequest
from api.core.nul import NUL

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
BAD_CURSOR = "the cursor is not one this API handed out"

T = TypeVar("T")

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
INT64 = range(-(2**63), 2**63)


def _storable(value: Any) -> bool:
    """Whether every number in `value` (msgspec builtins) is a BIGINT and no string a NUL."""
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return value in INT64
    if isinstance(value, str):
        return NUL not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(item) for item in value)
    return True


class CursorCodec(Generic[T]):
    """Cursors of one type (a struct, or a tagged union of structs) to text and back."""

    def __init__(self, kind: Any) -> None:
        self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(kind)

    def encode(self, value: T) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(value)).rstrip(b"=").decode()

    def decode(self, text: str) -> T:
        """The value `text` names; a 400 (`BAD_CURSOR`) for anything we did not hand out."""
        if not _BASE64URL.fullmatch(text):
            raise BadRequest(BAD_CURSOR)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            value = self._decoder.decode(raw)
        except (binascii.Error, ValueError, msgspec.DecodeError, RecursionError):
            raise BadRequest(BAD_CURSOR) from None
        if not _storable(msgspec.to_builtins(value)):
            raise BadRequest(BAD_CURSOR)
        return value


class Keyset(msgspec.Struct, array_like=True, frozen=True):
    """Where a newest-first page ended: `[created_at, id]` on the wire."""

    created_at: int
    id: Annotated[str, msgspec.Meta(max_length=64)]


KEYSET = CursorCodec[Keyset](Keyset)


def encode_cursor(created_at: int, item_id: str) -> str:
    return KEYSET.encode(Keyset(created_at, item_id))


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The `(created_at, id)` a cursor names; 400 for anything we did not hand out."""
    key = KEYSET.decode(cursor)
    return key.created_at, key.id


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
