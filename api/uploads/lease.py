"""The upload lease: while a request writes a video's next part, it holds a lease on the
video row, so two requests never write the same part; the lease lapses on its own if its
process dies, and the client can resume."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from sqlalchemy import and_, or_, update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict
from api.core.tables import videos

log = logging.getLogger("reelforge.api.uploads")

LEASE_MS = 60_000
"""A writer's lease on its video; renewed every `LEASE_RENEW_S` while the body streams."""
LEASE_RENEW_S = 15.0


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
