"""Which of a personal list's candidates may be served (issue 17, "Retrieval";
`api.feed.personal`): the v1 counters of those that are published and public
(`api.core.visibility.listed`), read in one batched query for the ids not seen lately (kept per
process for `feed_cache_seconds`, absent ones too, so a deleted, private, in-review or rejected
video the model still knows is never a candidate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields

from sqlalchemy import bindparam, select

from api.core.context import AppContext
from api.core.tables import videos
from api.core.ttlcache import TTLCache
from api.core.visibility import listed
from api.feed import ranking

_ROWS = select(*(videos.c[f.name] for f in fields(ranking.VideoStats))).where(
    videos.c.id.in_(bindparam("ids", expanding=True)),
    listed(),
    videos.c.published_at.is_not(None),
)


class ServableRows:
    def __init__(self, seconds: float, max_items: int) -> None:
        self._rows: TTLCache[str, ranking.VideoStats | None] = TTLCache(
            seconds, max_items=max_items
        )

    async def rows(self, ctx: AppContext, ids: Sequence[str]) -> dict[str, ranking.VideoStats]:
        """The v1 counters of those of `ids` that are published and public (misses: one
        query; kept for `feed_cache_seconds`, absent ones too)."""
        found: dict[str, ranking.VideoStats] = {}
        missing: list[str] = []
        for video_id in ids:
            stats = self._rows.get(video_id, _MISS)
            if stats is _MISS:
                missing.append(video_id)
            elif isinstance(stats, ranking.VideoStats):
                found[video_id] = stats
        if missing:
            async with ctx.reads.connect() as conn:
                rows = (await conn.execute(_ROWS, {"ids": missing})).all()
            for row in rows:
                stats = ranking.VideoStats(*row)
                found[stats.id] = stats
                self._rows.put(stats.id, stats)
            for video_id in missing:
                if video_id not in found:
                    self._rows.put(video_id, None)
        return found


_MISS = ranking.VideoStats("", "", 0)
