"""How an upload's bytes reach storage, whichever way they come (issue 3, "Upload").

Storage layout (shared with the processing job, api/processing.py): the bytes of video `vid`
live under `uploads/{vid}/` as parts named by their 12-digit zero-padded byte offset; the
source file is the concatenation of the parts in key order, and a complete upload's parts sum
to `videos.upload_size`. A presigned, signed or direct upload is one part at offset 0; a tus
upload has one part per PATCH.

The API streams request bodies into storage (`Storage.put_stream` in a worker thread, fed one
chunk at a time from the event loop): a file is never held in memory, and a body that is
longer or shorter than declared, or cut off by the client, aborts the write so nothing is
kept. While a request writes, it holds a lease on the video row (`UploadLease`), so two
requests never write the same part; the lease lapses on its own if its process dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.from_thread
import anyio.to_thread
from litestar import Request
from litestar.exceptions import HTTPException
from sqlalchemy import and_, insert, or_, update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import new_id, now_ms
from api.core.domain_errors import (
    BadRequest,
    BodyIncomplete,
    BodyInterrupted,
    BodyTooLarge,
    Conflict,
    Forbidden,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from api.core.keys import part_key
from api.core.settings import Settings
from api.core.tables import video_history, videos
from cdn.storage import ObjectNotFound, Storage

log = logging.getLogger("reelforge.api.uploads")

PRESIGNED, DIRECT, TUS = "presigned", "direct", "tus"
TUS_UPLOAD_TTL_MS = 7 * 24 * 3600 * 1000
"""How long a tus upload may take to finish (kept in `upload_expires_at`)."""

LEASE_MS = 60_000
"""A writer's lease on its video; renewed every `LEASE_RENEW_S` while the body streams."""
LEASE_RENEW_S = 15.0
UPLOAD_THREADS = 256
"""Upload bodies streaming at once per API process (each one occupies a thread)."""


# ------------------------------------------------------------------------- layout


# ------------------------------------------------------------- declared uploads


def normalize_content_type(value: str) -> str:
    """`Video/MP4; codecs=...` → `video/mp4` (RFC 9110 §8.3.1: type and subtype only)."""
    return value.split(";", 1)[0].strip().lower()


def check_declared(settings: Settings, size: int, content_type: str) -> str:
    """Validate a declared upload; returns the normalized media type.

    413 above `max_upload_bytes`, 422 below one byte, 415 for a type not accepted.
    """
    if size < 1:
        raise Unprocessable("file_size_bytes must be at least 1")
    if size > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"the file is {size} bytes; the limit is {settings.max_upload_bytes} bytes"
        )
    return check_content_type(settings, content_type)


def check_content_type(settings: Settings, content_type: str) -> str:
    media_type = normalize_content_type(content_type)
    if media_type not in settings.upload_content_types:
        allowed = ", ".join(settings.upload_content_types)
        raise UnsupportedMediaType(
            f"{media_type or 'no type'} is not accepted; use one of {allowed}"
        )
    return media_type


@dataclass(frozen=True)
class NewUpload:
    video_id: str
    expires_at: int


async def create_upload(
    ctx: AppContext,
    owner_id: str,
    *,
    kind: str,
    size: int,
    content_type: str,
    ttl_ms: int,
    metadata: str = "",
) -> NewUpload:
    """Insert the video row, `awaiting_upload`, with its first history entry."""
    now = now_ms()
    video_id = new_id("v")
    expires_at = now + ttl_ms
    async with ctx.db.begin() as conn:
        await conn.execute(
            insert(videos).values(
                id=video_id,
                owner_id=owner_id,
                status=lifecycle.AWAITING_UPLOAD,
                status_reason="waiting for the upload",
                caption="",
                privacy="public",
                created_at=now,
                updated_at=now,
                upload_kind=kind,
                upload_size=size,
                upload_content_type=content_type,
                upload_offset=0,
                upload_expires_at=expires_at,
                upload_metadata=metadata,
                lane="normal",
                renditions="[]",
            )
        )
        await conn.execute(
            insert(video_history).values(
                video_id=video_id,
                at=now,
                from_status="",
                to_status=lifecycle.AWAITING_UPLOAD,
                reason=f"{kind} upload of {size} bytes started",
            )
        )
    return NewUpload(video_id=video_id, expires_at=expires_at)


# ------------------------------------------------------------- signed URLs


def upload_signature(secret: str, video_id: str, expires_at: int) -> str:
    """HMAC-SHA256 (RFC 2104) over the video id and the expiry, hex."""
    message = f"upload\n{video_id}\n{expires_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_upload_url(settings: Settings, video_id: str, expires_at: int) -> str:
    query = urlencode(
        {
            "expires": expires_at,
            "signature": upload_signature(settings.secret_key, video_id, expires_at),
        }
    )
    return f"{settings.public_url}/v1/uploads/{video_id}?{query}"


def verify_signature(
    settings: Settings, video_id: str, expires: str | None, signature: str | None
) -> None:
    """403 unless the URL was signed by us for this video and has not expired."""
    if not expires or not signature or not expires.isdigit():
        raise Forbidden("the upload URL is not signed")
    expected = upload_signature(settings.secret_key, video_id, int(expires))
    if not hmac.compare_digest(expected, signature.lower()):
        raise Forbidden("the upload URL's signature does not match")
    if int(expires) <= now_ms():
        raise Forbidden("the upload URL has expired; ask for a new one")


def storage_upload_url(ctx: AppContext, video_id: str, expires_at: int, content_type: str) -> str:
    """Where the client PUTs the file: a presigned object-store URL (the API never carries
    the bytes), or, for local storage, the API's own signed endpoint."""
    ttl = timedelta(seconds=ctx.settings.upload_url_ttl_seconds)
    url = ctx.storage.presigned_put(part_key(video_id, 0), ttl, content_type)
    return url if url is not None else signed_upload_url(ctx.settings, video_id, expires_at)


# ------------------------------------------------------------------- leases


class UploadLease:
    """Exclusive right to write a video's next part, held in the video row.

    Taken with a compare-and-set on (status `awaiting_upload`, `upload_offset`, no live
    lease): a second writer gets 409 instead of overwriting the part being written. Renewed
    in the background while the body streams; released on exit. A lease whose process died
    lapses after `LEASE_MS`, so the client can resume.
    """

    def __init__(self, ctx: AppContext, video_id: str, offset: int) -> None:
        self.ctx = ctx
        self.video_id = video_id
        self.offset = offset
        self.token = secrets.token_hex(16)
        self.lost = False
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UploadLease:
        now = now_ms()
        free = or_(videos.c.upload_lock.is_(None), videos.c.upload_lock_until < now)
        async with self.ctx.db.begin() as conn:
            taken = await conn.execute(
                update(videos)
                .where(
                    videos.c.id == self.video_id,
                    videos.c.status == lifecycle.AWAITING_UPLOAD,
                    videos.c.upload_offset == self.offset,
                    free,
                )
                .values(upload_lock=self.token, upload_lock_until=now + LEASE_MS)
            )
        if taken.rowcount != 1:
            raise Conflict(
                "another request is writing this upload, or its offset moved; "
                "check the offset and retry"
            )
        self._renewer = asyncio.create_task(self._renew())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        async with self.ctx.db.begin() as conn:
            await conn.execute(
                update(videos)
                .where(videos.c.id == self.video_id, videos.c.upload_lock == self.token)
                .values(upload_lock=None, upload_lock_until=None)
            )

    def held(self) -> Any:
        """The SQL condition "this lease still holds the row" for the final compare-and-set."""
        return and_(videos.c.id == self.video_id, videos.c.upload_lock == self.token)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            try:
                async with self.ctx.db.begin() as conn:
                    renewed = await conn.execute(
                        update(videos)
                        .where(self.held())
                        .values(upload_lock_until=now_ms() + LEASE_MS)
                    )
            except Exception:  # a database blip: keep the lease we have until it lapses
                log.warning("could not renew the upload lease of %s", self.video_id)
                continue
            if renewed.rowcount != 1:
                self.lost = True
                return


# ---------------------------------------------------------------- streaming


@dataclass
class _Tally:
    received: int = 0


def _upload_limiter(request: Request[Any, Any, Any]) -> anyio.CapacityLimiter:
    """One limiter per app, made in its event loop on first use."""
    state = request.app.state
    limiter = state.get("upload_limiter")
    if limiter is None:
        limiter = anyio.CapacityLimiter(UPLOAD_THREADS)
        state["upload_limiter"] = limiter
    return limiter  # type: ignore[no-any-return]


def check_announced_length(request: Request[Any, Any, Any], *, limit: int, exact: bool) -> None:
    """Refuse early from `Content-Length` (RFC 9110 §8.6) before reading any of the body."""
    announced = request.headers.get("content-length")
    if announced is None or not announced.strip().isdigit():
        return
    length = int(announced)
    if length > limit:
        raise PayloadTooLarge(f"the body is {length} bytes; at most {limit} are expected here")
    if exact and length < limit:
        raise BadRequest(f"upload incomplete: the body is {length} bytes, {limit} were declared")


async def stream_body(
    request: Request[Any, Any, Any],
    storage: Storage,
    key: str,
    *,
    limit: int,
    exact: bool,
    lease: UploadLease,
    content_type: str | None = None,
) -> int:
    """Stream the request body into object `key`; returns the bytes written.

    At most `limit` bytes (else `BodyTooLarge`); with `exact`, exactly `limit` (else
    `BodyIncomplete`). Any failure aborts the storage write, so the key keeps its previous
    state (for a new part: nothing).
    """
    body = request.stream()
    tally = _Tally()

    async def next_chunk() -> bytes | None:
        try:
            return await body.__anext__()
        except StopAsyncIteration:
            return None
        except HTTPException as exc:  # litestar's "client disconnected prematurely"
            raise BodyInterrupted(str(exc.detail)) from exc

    def chunks() -> Iterator[bytes]:
        while (chunk := anyio.from_thread.run(next_chunk)) is not None:
            if not chunk:
                continue
            tally.received += len(chunk)
            if tally.received > limit:
                raise BodyTooLarge(limit)
            if lease.lost:
                raise BodyInterrupted("the upload lease was lost")
            yield chunk
        if exact and tally.received != limit:
            raise BodyIncomplete(tally.received, limit)

    try:
        await anyio.to_thread.run_sync(
            lambda: storage.put_stream(key, chunks(), content_type),
            limiter=_upload_limiter(request),
        )
    finally:
        await _close(body)
    return tally.received


async def _close(body: AsyncGenerator[bytes, None]) -> None:
    with contextlib.suppress(Exception):
        await body.aclose()


# --------------------------------------------------------------- committing


async def commit_part(
    ctx: AppContext,
    lease: UploadLease,
    new_offset: int,
    *,
    complete: bool,
    reason: str,
    **values: Any,
) -> bool:
    """Advance `upload_offset` from the lease's offset (compare-and-set) and release the
    lease; a complete upload also moves to `uploaded`. False when another writer won."""
    async with ctx.db.begin() as conn:
        advanced = await conn.execute(
            update(videos)
            .where(
                lease.held(),
                videos.c.upload_offset == lease.offset,
                videos.c.status == lifecycle.AWAITING_UPLOAD,
            )
            .values(
                upload_offset=new_offset,
                upload_lock=None,
                upload_lock_until=None,
                updated_at=now_ms(),
                **values,
            )
        )
        if advanced.rowcount != 1:
            return False
        if complete:
            await lifecycle.move(conn, lease.video_id, lifecycle.UPLOADED, reason)
    return True


async def receive_whole_file(
    request: Request[Any, Any, Any], ctx: AppContext, row: Any, *, kind: str
) -> int:
    """A signed or direct PUT: the whole file as one part at offset 0, exactly the declared
    size; then the video is `uploaded`. Returns the bytes stored."""
    size = int(row.upload_size)
    request_type = request.headers.get("content-type")
    if request_type:
        check_content_type(ctx.settings, request_type)
    check_announced_length(request, limit=size, exact=True)
    async with UploadLease(ctx, row.id, 0) as lease:
        written = await stream_body(
            request,
            ctx.storage,
            part_key(row.id, 0),
            limit=size,
            exact=True,
            lease=lease,
            content_type=row.upload_content_type,
        )
        committed = await commit_part(
            ctx,
            lease,
            written,
            complete=True,
            reason=f"upload received ({kind}, {written} bytes)",
            upload_kind=kind,
        )
    if not committed:
        raise Conflict("the upload changed while this request was writing it")
    return written


async def confirm_presigned(ctx: AppContext, row: Any) -> bool:
    """A presigned upload went straight to object storage: if the object is there with the
    declared size, record it and move the video to `uploaded`. False when it is not."""
    try:
        info = await asyncio.to_thread(ctx.storage.stat, part_key(row.id, 0))
    except ObjectNotFound:
        return False
    if info.size != int(row.upload_size):
        return False
    async with ctx.db.begin() as conn:
        moved = await conn.execute(
            update(videos)
            .where(videos.c.id == row.id, videos.c.status == lifecycle.AWAITING_UPLOAD)
            .values(upload_offset=info.size)
        )
        if moved.rowcount == 1:
            await lifecycle.move(
                conn, row.id, lifecycle.UPLOADED, f"upload received (presigned, {info.size} bytes)"
            )
    return True
