"""Schemathesis hooks for tests/test_api_contract.py (loaded through `SCHEMATHESIS_HOOKS`).

The tus PATCH body is `application/offset+octet-stream` (tus 1.0.0 core §PATCH), raw bytes
like `application/octet-stream`, which Schemathesis has no serializer for.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def tus_chunk(ctx: Any, value: Any) -> bytes:
    """The generated body as bytes: binary strings as they are, anything else as its text."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode("utf-8")
