"""Object key rules both backends apply: `validate_key`, `validate_prefix`, byte-range checks.

The reserved temp-file prefix lives here too: the key rules refuse it as a segment so that
`LocalStorage`'s in-flight files can never collide with (or be listed as) an object.
"""

from __future__ import annotations

TEMP_PREFIX = ".rf-tmp-"
"""Name prefix of LocalStorage's in-flight files; reserved, never a key segment."""


def _check_chars(value: str, what: str) -> None:
    if "\\" in value:
        raise ValueError(f"bad storage {what} {value!r}: backslash")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError(f"bad storage {what} {value!r}: NUL or control character")
    if value.startswith("/"):
        raise ValueError(f"bad storage {what} {value!r}: absolute")
    if len(value.encode("utf-8")) > 1024:
        raise ValueError(f"bad storage {what} {value[:64]!r}...: longer than 1024 bytes")


def _check_segments(value: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if not segment:
            raise ValueError(f"bad storage {what} {value!r}: empty segment ('//' or trailing '/')")
        if segment in (".", ".."):
            raise ValueError(f"bad storage {what} {value!r}: '{segment}' segment")
        if segment.startswith(TEMP_PREFIX):
            raise ValueError(f"bad storage {what} {value!r}: reserved name {TEMP_PREFIX!r}")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise `ValueError` naming it.

    Refused: empty, absolute (leading '/'), '.' or '..' segments, empty segments ('//',
    trailing '/'), backslashes, NUL and other control characters, more than 1024 bytes, and
    the reserved temp-file prefix.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"bad storage key {key!r}: empty")
    _check_chars(key, "key")
    _check_segments(key, key.split("/"), "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is a safe listing prefix ('' lists everything), else raise.

    A prefix is a key that may also end with '/' (or be empty); it matches keys by plain
    string prefix, as in S3 (``media/v_a`` matches ``media/v_abc/...``).
    """
    if not isinstance(prefix, str):
        raise ValueError(f"bad storage prefix {prefix!r}")
    if not prefix:
        return prefix
    _check_chars(prefix, "prefix")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    _check_segments(prefix, body.split("/"), "prefix")
    return prefix


def _join_prefix(prefix: str, relative: str) -> str:
    if not prefix or prefix.endswith("/"):
        return prefix + relative
    return f"{prefix}/{relative}"


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end}]")
