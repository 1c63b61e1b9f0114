"""The processing progress of a video, for `GET /v1/videos/{id}` (issue 15, "Progress").

Only the owner sees it (with the growing presentation of a chunked run, when it has one:
api/jobs/progressive.py), and only while the video is `processing`, or published early while the
rest of its ladder is still being made (issue 15, "Playable early"): the row the worker writes
(api/jobs/progress.py) says how far the run is; the ETA is estimated here, at read time, from
that row alone (api/core/progress.py), so any process of a run may write it.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from sqlalchemy import select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.lifecycle import PROCESSING, PUBLISHED
from api.core.progress import FINAL
from api.core.tables import video_growing, video_progress
from api.media.playback import playback_prefix
from api.videos.schemas import ProcessingOut, Rendition, processing_out


async def processing_of(ctx: AppContext, video: Any, viewer_id: str | None) -> ProcessingOut | None:
    """The owner's view of `video`'s progress; None unless it is theirs and processing (or
    published with its run still going)."""
    if video.status not in (PROCESSING, PUBLISHED) or viewer_id != video.owner_id:
        return None
    query = select(video_progress).where(video_progress.c.video_id == video.id)
    growing = select(video_growing).where(
        video_growing.c.video_id == video.id, video_growing.c.chunks > 0
    )
    async with ctx.reads.connect() as conn:
        row = (await conn.execute(query)).first()
        grown = (await conn.execute(growing)).first() if video.status == PROCESSING else None
    if video.status == PUBLISHED and (row is None or row.stage in FINAL):
        return None
    out = processing_out(row, now_ms())
    if grown is None or row is None or grown.run_id != row.run_id:
        return out
    # The growing presentation (api/jobs/progressive.py): signed as a private video's, for
    # the owner alone, whatever the video's privacy will be (api/media/origin.py).
    base = playback_prefix(ctx.settings, video.id, grown.render_id, "private", video.owner_id)
    return msgspec.structs.replace(
        out,
        hls_url=f"{base}/master.m3u8",
        renditions=[Rendition(**r) for r in json.loads(grown.renditions)],
        playable_s=round(float(grown.seconds), 3),
    )
