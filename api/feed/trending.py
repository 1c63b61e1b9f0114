"""Trending, the for-you feed's fallback: published public videos, those published in the last
7 days first, then by likes + views, then by id (all descending), keyset pages.

The fallback runs when the ranked path fails or is slow, so it must not cost more than the
path it replaces: sorting every published video for each request (what one SQL query per
page does) is the most expensive read of the API, and a fallback storm would feed on itself.
Each process keeps the first `POOL_SIZE` entries of that order, whoever asks, for
`settings.feed_cache_seconds` (one rebuild at a time), and a viewer's page is the pool minus
their own videos and what they watched or marked (`api.feed.seen`). A page that reaches past the
pool, or a cursor from another pool, is read with the SQL query.

Staleness, bounded by `feed_cache_seconds`: the 7-day cutoff and the counters a page is
ordered by are those of the pool's build; the videos themselves come from `api.videos.viewcache`,
which drops any that was deleted or hidden since.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, case, exists, or_, select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.tables import seen, videos
from api.core.visibility import listed

TRENDING_WINDOW_MS = 7 * 24 * 3_600_000
POOL_SIZE = 500

Key = tuple[int, int, str]  # (published in the window: 1/0, likes + views, video id)


@dataclass(frozen=True)
class Entry:
    key: Key
    owner_id: str

    @property
    def id(self) -> str:
        return self.key[2]


@dataclass(frozen=True)
class Pool:
    """The head of the trending order as of `cutoff`, highest first."""

    cutoff: int
    entries: tuple[Entry, ...]
    # The same keys, lowest first (to find a cursor's position).
    ascending: tuple[Key, ...]
    # True when the pool holds every published public video.
    complete: bool
    expires: float


def _order(cutoff: Any) -> tuple[Any, Any]:
    recent = case((videos.c.published_at >= cutoff, 1), else_=0)
    return recent, videos.c.like_count + videos.c.view_count


def _query(*, after: bool, viewer: bool) -> Any:
    recent, engagement = _order(bindparam("cutoff"))
    query = select(recent, engagement, videos.c.id, videos.c.owner_id).where(listed())
    if viewer:
        watched = select(seen.c.video_id).where(
            seen.c.user_id == bindparam("viewer"), seen.c.video_id == videos.c.id
        )
        query = query.where(videos.c.owner_id != bindparam("viewer"), ~exists(watched))
    if after:
        at_recent: Any = bindparam("at_recent")
        at_engagement: Any = bindparam("at_engagement")
        query = query.where(
            or_(
                recent < at_recent,
                and_(recent == at_recent, engagement < at_engagement),
                and_(
                    recent == at_recent,
                    engagement == at_engagement,
                    videos.c.id < bindparam("at_id"),
                ),
            )
        )
    order = (recent.desc(), engagement.desc(), videos.c.id.desc())
    return query.order_by(*order).limit(bindparam("n"))


# Built once: (after a cursor, for a viewer) → the query; (False, False) also builds pools.
_QUERIES = {
    (after, viewer): _query(after=after, viewer=viewer)
    for after in (True, False)
    for viewer in (True, False)
}


class TrendingPools:
    """This process's pool, rebuilt by one request at a time once it expired."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        self.size = size
        self._pool: Pool | None = None
        self._lock = asyncio.Lock()

    async def current(self, ctx: AppContext) -> Pool:
        pool = self._pool
        if pool is not None and pool.expires > time.monotonic():
            return pool
        async with self._lock:
            pool = self._pool
            if pool is None or pool.expires <= time.monotonic():
                pool = self._pool = await _build(ctx, self.size)
            return pool


async def _build(ctx: AppContext, size: int) -> Pool:
    cutoff = now_ms() - TRENDING_WINDOW_MS
    async with ctx.reads.connect() as conn:
        rows = (
            await conn.execute(_QUERIES[(False, False)], {"cutoff": cutoff, "n": size + 1})
        ).all()
    entries = tuple(_entry(row) for row in rows[:size])
    return Pool(
        cutoff=cutoff,
        entries=entries,
        ascending=tuple(e.key for e in reversed(entries)),
        complete=len(rows) <= size,
        expires=time.monotonic() + max(ctx.settings.feed_cache_seconds, 0),
    )


def _entry(row: Any) -> Entry:
    recent, engagement, video_id, owner_id = row
    return Entry((int(recent), int(engagement), video_id), owner_id)


def from_pool(
    pool: Pool, after: Key | None, n: int, exclude: Collection[str], owner_id: str | None
) -> list[Entry] | None:
    """The next `n` entries after `after` that are not excluded; None when the pool cannot
    tell (it ran out before `n` and does not hold every video)."""
    start = 0 if after is None else len(pool.entries) - bisect_left(pool.ascending, after)
    page: list[Entry] = []
    for entry in pool.entries[start:]:
        if entry.id in exclude or entry.owner_id == owner_id:
            continue
        page.append(entry)
        if len(page) == n:
            return page
    return page if pool.complete else None


async def trending_entries(
    ctx: AppContext,
    pools: TrendingPools,
    viewer_id: str | None,
    seen_ids: Collection[str] | None,
    cutoff: int | None,
    after: Key | None,
    n: int,
    gone: Collection[str] = (),
) -> tuple[int, list[Entry]]:
    """The cutoff and the next `n` entries of the trending order after `after`, without the
    viewer's own videos, what they watched or marked (`seen_ids`; None when the cache could
    not tell: the query reads the table) and `gone` ones."""
    pool = await pools.current(ctx)
    known = () if viewer_id is None else seen_ids
    if known is not None and (cutoff is None or cutoff == pool.cutoff):
        exclude = known if not gone else {*known, *gone}
        page = from_pool(pool, after, n, exclude, viewer_id)
        if page is not None:
            return pool.cutoff, page
    # Past the pool (or no seen set): the query leaves the viewer's own and seen videos out.
    cutoff = pool.cutoff if cutoff is None else cutoff
    params: dict[str, Any] = {"cutoff": cutoff, "n": n + len(gone)}
    if viewer_id is not None:
        params["viewer"] = viewer_id
    if after is not None:
        params["at_recent"], params["at_engagement"], params["at_id"] = after
    query = _QUERIES[(after is not None, viewer_id is not None)]
    async with ctx.reads.connect() as conn:
        rows = (await conn.execute(query, params)).all()
    return cutoff, [e for e in map(_entry, rows) if e.id not in gone][:n]
