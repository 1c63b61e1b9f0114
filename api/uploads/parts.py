"""An upload's parts: writing one under the lease and committing it (issue 3, "Upload").

Storage layout (shared with the processing job, api/jobs/transcode.py; keys from
api/core/keys.py): the bytes of video `vid` live under `uploads/{vid}/` as parts named by
their 12-digit zero-padded byte offset; the source file is the concatenation of the parts in
key order, and a complete upload's parts sum to `videos.upload_size`. A presigned, signed or
direct upload is one part at offset 0; a tus upload has one part per PATCH.

A part is committed by a compare-and-set of `upload_offset` from the lease's offset, so a
writer that lost its lease (or a rival that got there first) keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sqlalchemy import update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict
from api.core.keys import part_key, upload_prefix
from api.core.tables import videos
from api.uploads.body import IncomingBody, check_announced_length, stream_body
from api.uploads.declare import check_content_type
from api.uploads.lease import UploadLease
from api.videos.service import delete_video
from cdn.storage import ObjectNotFound, StorageError


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


async def receive_whole_file(ctx: AppContext, row: Any, body: IncomingBody, *, kind: str) -> int:
    """A signed or direct PUT: the whole file as one part at offset 0, exactly the declared
    size; then the video is `uploaded`. Returns the bytes stored."""
    size = int(row.upload_size)
    if body.content_type:
        check_content_type(ctx.settings, body.content_type)
    check_announced_length(body, limit=size, exact=True)
    async with UploadLease(ctx, row.id, 0) as lease:
        written = await stream_body(
            body,
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


async def append_part(ctx: AppContext, row: Any, offset: int, body: IncomingBody) -> int:
    """A tus PATCH (core §PATCH): the body becomes the part at `offset`, kept whole or not at
    all; returns the new offset. 409 unless `offset` is the server's, 413 past the upload's
    length; an empty body (or an upload already complete) changes nothing."""
    if offset != row.upload_offset:
        raise Conflict(f"Upload-Offset is {offset} but the server has {row.upload_offset} bytes")
    remaining = int(row.upload_size) - offset
    check_announced_length(body, limit=remaining, exact=False)
    if row.status != lifecycle.AWAITING_UPLOAD or body.content_length == "0":
        return offset
    async with UploadLease(ctx, row.id, offset) as lease:
        key = part_key(row.id, offset)
        written = await stream_body(
            body, ctx.storage, key, limit=remaining, exact=False, lease=lease
        )
        if written == 0:
            await asyncio.to_thread(ctx.storage.delete, key)
            return offset
        new_offset = offset + written
        committed = await commit_part(
            ctx,
            lease,
            new_offset,
            complete=new_offset == row.upload_size,
            reason=f"upload received (tus, {row.upload_size} bytes)",
        )
    if not committed:
        raise Conflict("another request advanced this upload first; HEAD for the offset")
    return new_offset


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


async def terminate(ctx: AppContext, video_id: str) -> None:
    """tus termination: the video is deleted and its parts removed at once (the cleanup job
    removes them otherwise, should the store fail now)."""
    await delete_video(ctx, video_id, "upload terminated by its owner")
    with contextlib.suppress(StorageError):
        await asyncio.to_thread(ctx.storage.delete_prefix, upload_prefix(video_id))
