"""The processing progress of a video, for `GET /v1/videos/{id}` (issue 15, "Progress").

Only the owner sees it, and only while the video is `processing`, or published early while the
rest of its ladder is still being made (issue 15, "Playable early"): the row the worker writes
(api/jobs/progress.py) says how far the run is; the ETA is estimated here, at read time, from
that row alone (api/core/progress.py), so any process of a run may write it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.lifecycle import PROCESSING, PUBLISHED
from api.core.progress import FINAL
from api.core.tables import video_progress
from api.videos.schemas import ProcessingOut, processing_out


async def processing_of(ctx: AppContext, video: Any, viewer_id: str | None) -> ProcessingOut | None:
    """The owner's view of `video`'s progress; None unless it is theirs and processing (or
    published with its run still going)."""
    if video.status not in (PROCESSING, PUBLISHED) or viewer_id != video.owner_id:
        return None
    query = select(video_progress).where(video_progress.c.video_id == video.id)
    async with ctx.reads.connect() as conn:
        row = (await conn.execute(query)).first()
    if video.status == PUBLISHED and (row is None or row.stage in FINAL):
        return None
    return processing_out(row, now_ms())
