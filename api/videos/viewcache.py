"""Public views of published public videos, kept in each API process for a moment.

Every feed page and creator grid shows videos that thousands of other requests show too, so
each process keeps their `VideoOut` by id for `settings.video_cache_seconds` (2 s by default)
and reads a page's misses in one query. A video that is not published and public is kept as
absent for the same time, so a snapshot entry deleted since it was ranked costs no query per
request either.

Staleness, on purpose and bounded: counters (likes, comments, views) may lag by up to the TTL,
and a video deleted, hidden or unpublished through another API process (or by a worker) may
still be served by this one for up to the TTL. Changes made through this process evict their
entries at once (`forget`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam

from api.core.context import AppContext
from api.core.tables import videos
from api.core.visibility import listed
from api.videos.queries import video_query
from api.videos.schemas import VideoOut, video_out

_QUERY = video_query().where(videos.c.id.in_(bindparam("ids", expanding=True)), listed())
_MISS = object()


async def published_views(ctx: AppContext, ids: Sequence[str]) -> dict[str, VideoOut]:
    """The views of those of `ids` that are published and public (misses: one query)."""
    cache = ctx.local.videos
    found: dict[str, VideoOut] = {}
    missing: list[str] = []
    for video_id in ids:
        view = cache.get(video_id, _MISS)
        if view is _MISS:
            missing.append(video_id)
        elif isinstance(view, VideoOut):
            found[video_id] = view
    if missing:
        async with ctx.reads.connect() as conn:
            rows = (await conn.execute(_QUERY, {"ids": missing})).all()
        for row in rows:
            view = video_out(row, ctx.settings)
            found[view.id] = view
            cache.put(view.id, view)
        for video_id in missing:
            if video_id not in found:
                cache.put(video_id, None)
    return found
