"""Upload bodies streamed into storage (issue 3, "Upload").

`Storage.put_stream` runs in a worker thread, fed one chunk at a time from the event loop: a
file is never held in memory, and a body that is longer or shorter than declared, or cut off
by the client, aborts the write so nothing is kept (`BodyTooLarge`, `BodyIncomplete`,
`BodyInterrupted`, answered by api/core/errors.py).

A body arrives as an `IncomingBody`, which the controllers make from the request: this module
never sees the web framework.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from api.core.domain_errors import (
    BadRequest,
    BodyIncomplete,
    BodyInterrupted,
    BodyTooLarge,
    PayloadTooLarge,
)
from api.uploads.lease import UploadLease
from cdn.storage import Storage

UPLOAD_THREADS = 256
"""Upload bodies streaming at once per API process (each one occupies a thread)."""


@dataclass(frozen=True)
class IncomingBody:
    """A request body as the upload services read it."""

    chunks: AsyncGenerator[bytes, None]
    """The body; raises `BodyInterrupted` when the client goes away mid-body."""
    content_type: str | None
    """The request's `Content-Type`, as sent."""
    content_length: str | None
    """The request's `Content-Length`, as sent (absent for a chunked body)."""
    limiter: anyio.CapacityLimiter
    """Shared by the bodies streaming in this process (`upload_limiter`)."""


def upload_limiter(app_state: MutableMapping[str, Any]) -> anyio.CapacityLimiter:
    """One limiter per app, made in its event loop on first use."""
    limiter = app_state.get("upload_limiter")
    if limiter is None:
        limiter = anyio.CapacityLimiter(UPLOAD_THREADS)
        app_state["upload_limiter"] = limiter
    return limiter  # type: ignore[no-any-return]


def check_announced_length(body: IncomingBody, *, limit: int, exact: bool) -> None:
    """Refuse early from `Content-Length` (RFC 9110 §8.6) before reading any of the body."""
    announced = body.content_length
    if announced is None or not announced.strip().isdigit():
        return
    length = int(announced)
    if length > limit:
        raise PayloadTooLarge(f"the body is {length} bytes; at most {limit} are expected here")
    if exact and length < limit:
        raise BadRequest(f"upload incomplete: the body is {length} bytes, {limit} were declared")


@dataclass
class _Tally:
    received: int = 0


async def stream_body(
    body: IncomingBody,
    storage: Storage,
    key: str,
    *,
    limit: int,
    exact: bool,
    lease: UploadLease,
    content_type: str | None = None,
) -> int:
    """Stream the body into object `key`; returns the bytes written.

    At most `limit` bytes (else `BodyTooLarge`); with `exact`, exactly `limit` (else
    `BodyIncomplete`). Any failure aborts the storage write, so the key keeps its previous
    state (for a new part: nothing).
    """
    source = body.chunks
    tally = _Tally()

    async def next_chunk() -> bytes | None:
        try:
            return await source.__anext__()
        except StopAsyncIteration:
            return None

    def chunks() -> Iterator[bytes]:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if not chunk:
                continue
            tally.received += len(chunk)
            if tally.received > limit:
                raise BodyTooLarge(limit)
            if not lease.writable():
                raise BodyInterrupted("the upload lease was lost")
            yield chunk
        if exact and tally.received != limit:
            raise BodyIncomplete(tally.received, limit)

    try:
        await anyio.to_thread.run_sync(
            lambda: storage.put_stream(key, chunks(), content_type), limiter=body.limiter
        )
    finally:
        with contextlib.suppress(Exception):
            await source.aclose()
    return tally.received
