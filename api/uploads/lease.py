"""The upload lease (issue 3 "Upload"; issue 16 item 4): while a request writes a video's next
part, it holds a lease on the video row, so two requests never write the same part.

The lease is a heartbeat: its holder (a random token in `upload_lock`) pushes its expiry
(`upload_lock_until`) `LEASE_MS` ahead every `LEASE_RENEW_S` while the body streams. A live
writer keeps it however slow its client is; a writer whose process died stops renewing, so a
resume takes over within `LEASE_MS` of the crash (not a minute later, when tus clients have
given up). A writer that cannot renew fences itself: it stops writing once its own copy of
the expiry has passed (less `CLOCK_MARGIN_MS`), before anyone else may take the lease, and
its final compare-and-set (`held`) fails if someone did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from typing import Any

from sqlalchemy import and_, or_, update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict
from api.core.tables import videos

log = logging.getLogger("reelforge.api.uploads")

LEASE_MS = 6_000
"""How long a lease lasts without a heartbeat: the longest a resume waits after a crash."""
LEASE_RENEW_S = 1.5
"""The heartbeat: a streaming writer renews its lease this often (four tries per lease)."""
CLOCK_MARGIN_MS = 1_500
"""A writer stops this long before its lease lapses by its own clock (clock skew, a slow
chunk in flight), so its last write lands before any other process may take the lease."""


class UploadLease:
    """Exclusive right to write a video's next part, held in the video row.

    Taken with a compare-and-set on (status `awaiting_upload`, `upload_offset`, no live
    lease): a second writer gets 409 (with `Retry-After`) instead of overwriting the part
    being written. Renewed in the background while the body streams; released on exit.
    """

    def __init__(self, ctx: AppContext, video_id: str, offset: int) -> None:
        self.ctx = ctx
        self.video_id = video_id
        self.offset = offset
        self.token = secrets.token_hex(16)
        self.lost = False
        self._valid_until = 0.0  # time.monotonic() after which this writer must stop
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> UploadLease:
        started = time.monotonic()
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
                "check the offset and retry",
                headers={"Retry-After": str(math.ceil(LEASE_MS / 1000))},
            )
        self._extend(started)
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

    def writable(self) -> bool:
        """May this writer write another chunk? False once the lease was lost or is about to
        lapse by this process's clock (the renewals failed): read for every chunk."""
        return not self.lost and time.monotonic() < self._valid_until

    def _extend(self, asked_at: float) -> None:
        # Counted from when the renewal was sent: the row's expiry is at least that late.
        self._valid_until = asked_at + (LEASE_MS - CLOCK_MARGIN_MS) / 1000

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            asked_at = time.monotonic()
            try:
                async with self.ctx.db.begin() as conn:
                    renewed = await conn.execute(
                        update(videos)
                        .where(self.held())
                        .values(upload_lock_until=now_ms() + LEASE_MS)
                    )
            except Exception:  # a database blip: keep writing until our own copy lapses
                log.warning("could not renew the upload lease of %s", self.video_id)
                continue
            if renewed.rowcount != 1:
                self.lost = True
                return
            self._extend(asked_at)
