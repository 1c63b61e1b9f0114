"""tus 1.0 resumable uploads: the protocol's headers and their parsing, free of any I/O.

Implements the core protocol plus the `creation` and `termination` extensions of
https://tus.io/protocols/resumable-upload (version 1.0.0). The routes that speak it live in
api/uploads/controllers.py; storage and the database are api/uploads/parts.py's business.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TypeVar

from api.core.domain_errors import BadRequest, PreconditionFailed, with_headers

E = TypeVar("E", bound=BaseException)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = ("creation", "termination")
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"
MAX_METADATA_CHARS = 4096
"""Longest `Upload-Metadata` header kept with the upload (it is echoed on every HEAD)."""

# Response headers the browser-side tus clients need to read (Access-Control-Expose-Headers).
EXPOSED_HEADERS = "Location, Upload-Offset, Upload-Length, Upload-Metadata, Tus-Resumable"


def base_headers() -> dict[str, str]:
    """Headers on every tus response except OPTIONS' own extras (core §Tus-Resumable)."""
    return {"Tus-Resumable": TUS_VERSION, "Access-Control-Expose-Headers": EXPOSED_HEADERS}


def options_headers(max_size: int) -> dict[str, str]:
    """The OPTIONS answer: supported versions, extensions and the size limit (core §OPTIONS)."""
    return {
        **base_headers(),
        "Tus-Version": TUS_VERSION,
        "Tus-Extension": ",".join(TUS_EXTENSIONS),
        "Tus-Max-Size": str(max_size),
    }


def with_tus_headers(exc: E) -> E:
    """The same error, carrying `Tus-Resumable` as every tus response must."""
    return with_headers(exc, base_headers())


def check_resumable(headers: Mapping[str, str]) -> None:
    """Core §Tus-Resumable: a request for another version (or none) gets 412 + Tus-Version."""
    version = headers.get("tus-resumable")
    if version != TUS_VERSION:
        said = f"Tus-Resumable: {version}" if version else "no Tus-Resumable header"
        raise PreconditionFailed(
            f"this server speaks tus {TUS_VERSION} only ({said})",
            headers={"Tus-Version": TUS_VERSION},
        )


def parse_length(value: str | None) -> int:
    """`Upload-Length` (creation §Upload-Length): a non-negative integer, required here
    (`creation-defer-length` is not offered)."""
    if value is None:
        raise BadRequest("Upload-Length is required (deferred lengths are not supported)")
    return _non_negative("Upload-Length", value)


def parse_offset(value: str | None) -> int:
    """`Upload-Offset` (core §Upload-Offset): required on PATCH, a non-negative integer."""
    if value is None:
        raise BadRequest("Upload-Offset is required")
    return _non_negative("Upload-Offset", value)


def _non_negative(name: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise BadRequest(f"{name} must be a non-negative integer, not {value!r}")
    return int(text)


def parse_metadata(value: str | None) -> dict[str, str]:
    """`Upload-Metadata` (creation §Upload-Metadata): comma-separated `key base64value` pairs;
    keys are unique, contain no spaces or commas; the value may be left out.

    Values are decoded as UTF-8 (invalid bytes replaced): we only read text from them.
    """
    if value is None or not value.strip():
        return {}
    if len(value) > MAX_METADATA_CHARS:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_CHARS} characters")
    result: dict[str, str] = {}
    for pair in value.split(","):
        parts = pair.strip().split(" ")
        key = parts[0]
        if not key or len(parts) > 2:
            raise BadRequest(f"Upload-Metadata: malformed pair {pair.strip()!r}")
        if key in result:
            raise BadRequest(f"Upload-Metadata: key {key!r} appears twice")
        result[key] = _decode_value(key, parts[1]) if len(parts) == 2 else ""
    return result


def _decode_value(key: str, encoded: str) -> str:
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"Upload-Metadata: the value of {key!r} is not base64") from None
    return raw.decode("utf-8", errors="replace")


def declared_content_type(metadata: Mapping[str, str]) -> str:
    """The media type a tus client announces: `filetype` (tus-js-client, Uppy) or
    `content_type`; uploads that say nothing are `application/octet-stream`."""
    for key in ("filetype", "content_type", "contentType"):
        if metadata.get(key):
            return metadata[key]
    return "application/octet-stream"
