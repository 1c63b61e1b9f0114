"""Publishing: the last step of an upload. The owner's uploaded video is queued for
processing (issue 3, "Upload"), in the lane its creator's recent volume calls for."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import func, select

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict
from api.core.outbox import queue_job
from api.core.tables import video_history, videos
from api.uploads.declare import PRESIGNED
from api.uploads.parts import confirm_presigned

log = logging.getLogger("reelforge.api")

HOUR_MS = 3600 * 1000


async def lane_for(ctx: AppContext, owner_id: str) -> str:
    """Fair scheduling: a creator who published more than `busy_creator_uploads_per_hour`
    videos in the last hour (this one included) goes to the low-priority lane."""
    since = now_ms() - HOUR_MS
    query = (
        select(func.count())
        .select_from(video_history.join(videos, videos.c.id == video_history.c.video_id))
        .where(
            videos.c.owner_id == owner_id,
            video_history.c.from_status == lifecycle.UPLOADED,
            video_history.c.to_status == lifecycle.PROCESSING,
            video_history.c.at >= since,
        )
    )
    async with ctx.db.connect() as conn:
        recent = int((await conn.execute(query)).scalar() or 0)
    return "bulk" if recent + 1 > ctx.settings.busy_creator_uploads_per_hour else "normal"


async def publish(ctx: AppContext, row: Any, caption: str, privacy: str) -> str:
    """Queue the owner's uploaded video for processing; returns its lane.

    A presigned upload is confirmed against storage first. 409 when the upload is not
    complete, or when the video is already processing or published (a repeated publish).
    A `failed` video may be published again (a retry of our failure). The job is put on
    record with the move and sent at once if the broker answers, else by the relay.
    """
    status = row.status
    if status == lifecycle.AWAITING_UPLOAD:
        if row.upload_kind != PRESIGNED or not await confirm_presigned(ctx, row):
            raise Conflict("upload not complete: send the whole file first")
        status = lifecycle.UPLOADED
    if status not in (lifecycle.UPLOADED, lifecycle.FAILED):
        raise Conflict(f"the video is already {status}; it cannot be published again")
    lane = await lane_for(ctx, row.owner_id)
    reason = "queued for processing" if status == lifecycle.UPLOADED else "queued again"
    async with ctx.db.begin() as conn:
        try:
            await lifecycle.move(
                conn,
                row.id,
                lifecycle.PROCESSING,
                reason,
                caption=caption,
                privacy=privacy,
                lane=lane,
                attempts=0,
            )
        except lifecycle.TransitionError as exc:
            raise Conflict(f"the video is {exc.current}; it cannot be published now") from exc
        # The job commits with the move (issue 16: a broker outage or a lost message loses
        # nothing; the publish answers 202 whether or not the broker is up).
        await conn.execute(queue_job(conn.dialect.name, row.id, lane))
    try:
        await asyncio.to_thread(ctx.jobs.send_queued, row.id)
    except Exception as exc:
        # On record all the same: the relay (api/jobs/relay.py) sends it once the broker is back.
        log.warning("video %s: not sent now (%r); the relay will send it", row.id, exc)
    return lane
