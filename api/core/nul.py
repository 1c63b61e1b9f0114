"""The NUL character (U+0000) in text from clients (issue 16, item 1).

PostgreSQL's text types cannot hold NUL (a query binding such a string fails with
`invalid byte sequence for encoding "UTF8": 0x00`), so no field of the API accepts one, in
either mode: the request is refused at the door (`api.middleware.inputs`), never half-way
through a service. In JSON (RFC 8259 §7) a NUL can only be written as the escape `\\u0000`
(a raw control character is not allowed in a string); it is an escape when an odd number of
backslashes runs up to the `u`, so `\\\\u0000` (an escaped backslash, then `u0000`) is plain
text.
"""

from __future__ import annotations

import re

NUL = "\x00"
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def json_holds_nul(raw: bytes) -> bool:
    """Whether the JSON text `raw` decodes to a string (a value or a key) holding a NUL."""
    return b"\\u0000" in raw and _JSON_NUL.search(raw) is not None


def url_holds_nul(path: str, query_string: bytes) -> tuple[bool, bool]:
    """Whether the (percent-decoded) path, and the raw query string, hold a NUL: in a query
    the only way to write one is `%00` (RFC 3986 §2.1), its hex digits being digits."""
    return NUL in path, b"%00" in query_string
