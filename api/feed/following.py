"""The following feed's index: who a viewer follows and what those creators published last.

`GET /v1/feed?type=following` pages the newest published public videos of the creators the
viewer follows, keyset on (published_at, id). Rather than walk the global published index and
probe `follows` for every row (what one SQL query does), each API process keeps

- a viewer's followee ids, for `settings.followees_cache_seconds` (10 s); a follow or unfollow
  through this process evicts them at once;
- each creator's newest `CREATOR_DEPTH` published public videos as (published_at, id), for
  `settings.creator_videos_cache_seconds` (5 s),

and a page is a heap merge of those lists after the cursor. A page's missing creators are read
in one query that takes each creator's newest rows from the (owner_id, published_at) index
(a LATERAL join on PostgreSQL, a window on SQLite). A page that reaches past what is kept of a
creator with more videos is read from the database the same way, after the cursor.

So another process's follow, or a video a worker just published, reaches a following feed
within those TTLs; the views themselves come from `api.videos.viewcache`, which drops a video
deleted or hidden since (within its own 2 s).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, String, and_, bindparam, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.context import AppContext
from api.core.tables import follows, videos
from api.core.visibility import listed

# Newest videos kept per creator: two full pages of one creator's videos.
CREATOR_DEPTH = 30

Key = tuple[int, str]  # (published_at, video id): the feed's order, newest = greatest


@dataclass(frozen=True)
class CreatorVideos:
    """A creator's newest published public videos, oldest first."""

    keys: tuple[Key, ...]
    # True: these are all of them; False: older ones exist beyond `keys[0]`.
    complete: bool


_FOLLOWEES = select(follows.c.followee_id).where(follows.c.follower_id == bindparam("user_id"))


def _before(cursor: bool) -> Any:
    if not cursor:
        return true()
    at: Any = bindparam("before_at")
    video_id: Any = bindparam("before_id")
    return or_(
        videos.c.published_at < at, and_(videos.c.published_at == at, videos.c.id < video_id)
    )


def _lateral_query(cursor: bool) -> Any:
    """PostgreSQL: for each creator, an index scan of its newest `n` rows (LATERAL ... LIMIT)."""
    owners = (
        func.unnest(bindparam("owners", type_=ARRAY(String)))
        .table_valued("owner_id")
        .render_derived(name="o")
    )
    newest = (
        select(videos.c.published_at, videos.c.id)
        .where(
            videos.c.owner_id == owners.c.owner_id,
            listed(),
            videos.c.published_at.is_not(None),
            _before(cursor),
        )
        .order_by(videos.c.published_at.desc(), videos.c.id.desc())
        .limit(bindparam("n"))
        .lateral("v")
    )
    return select(owners.c.owner_id, newest.c.published_at, newest.c.id).select_from(
        owners.join(newest, true())
    )


def _window_query(cursor: bool) -> Any:
    """Other databases: each creator's rows numbered newest first, the first `n` kept."""
    rank = func.row_number().over(
        partition_by=videos.c.owner_id,
        order_by=(videos.c.published_at.desc(), videos.c.id.desc()),
    )
    numbered = (
        select(videos.c.owner_id, videos.c.published_at, videos.c.id, rank.label("rank"))
        .where(
            videos.c.owner_id.in_(bindparam("owners", expanding=True)),
            listed(),
            videos.c.published_at.is_not(None),
            _before(cursor),
        )
        .subquery()
    )
    return select(numbered.c.owner_id, numbered.c.published_at, numbered.c.id).where(
        numbered.c.rank <= bindparam("n")
    )


# Built once: (dialect is PostgreSQL, after a cursor) → statement.
_NEWEST = {
    (pg, cursor): (_lateral_query if pg else _window_query)(cursor)
    for pg in (True, False)
    for cursor in (True, False)
}


async def newest_by_creator(
    conn: AsyncConnection, owners: Sequence[str], n: int, before: Key | None = None
) -> dict[str, CreatorVideos]:
    """Each creator's newest `n` published public videos (older than `before` if given)."""
    if not owners:
        return {}
    statement = _NEWEST[(conn.dialect.name == "postgresql", before is not None)]
    params: dict[str, Any] = {"owners": list(owners), "n": n}
    if before is not None:
        params["before_at"], params["before_id"] = before
    found: dict[str, list[Key]] = {owner: [] for owner in owners}
    for owner_id, published_at, video_id in (await conn.execute(statement, params)).all():
        found[owner_id].append((int(published_at), video_id))
    return {
        owner: CreatorVideos(tuple(sorted(keys)), complete=len(keys) < n)
        for owner, keys in found.items()
    }


async def followees(ctx: AppContext, user_id: str) -> tuple[str, ...]:
    """The ids of the creators `user_id` follows (cached)."""
    cached = ctx.local.followees.get(user_id)
    if cached is not None:
        return cached
    async with ctx.reads.connect() as conn:
        found = tuple(sorted((await conn.execute(_FOLLOWEES, {"user_id": user_id})).scalars()))
    ctx.local.followees.put(user_id, found)
    return found


async def creator_videos(ctx: AppContext, owners: Sequence[str]) -> list[CreatorVideos]:
    """Each creator's newest `CREATOR_DEPTH` videos (cached; the misses in one query)."""
    cache = ctx.local.creator_videos
    lists: list[CreatorVideos] = []
    missing: list[str] = []
    for owner in owners:
        cached = cache.get(owner)
        if cached is None:
            missing.append(owner)
        else:
            lists.append(cached)
    if missing:
        async with ctx.reads.connect() as conn:
            # One more than kept: whether a creator has older videos than those kept.
            found = await newest_by_creator(conn, missing, CREATOR_DEPTH + 1)
        for owner, entry in found.items():
            kept = CreatorVideos(entry.keys[-CREATOR_DEPTH:], entry.complete)
            cache.put(owner, kept)
            lists.append(kept)
    return lists


def merge_newest(
    lists: Iterable[CreatorVideos], before: Key | None, n: int, exclude: Collection[str]
) -> list[Key] | None:
    """The `n` greatest keys below `before` across `lists`, skipping `exclude`d ids; None when
    the lists cannot tell (the page reaches below what is kept of a creator with more)."""
    floor: Key | None = None
    runs: list[Iterator[Key]] = []
    for entry in lists:
        keys = entry.keys
        end = len(keys) if before is None else bisect_left(keys, before)
        if not entry.complete and keys and (floor is None or keys[0] > floor):
            floor = keys[0]
        if end:
            runs.append(reversed(keys[:end]))
    page: list[Key] = []
    for key in heapq.merge(*runs, reverse=True):
        if key[1] in exclude:
            continue
        page.append(key)
        if len(page) == n:
            break
    if floor is not None and (len(page) < n or page[-1] < floor):
        return None
    return page


async def newest_followed(
    ctx: AppContext, user_id: str, before: Key | None, n: int, exclude: Collection[str] = ()
) -> list[Key]:
    """The keys of the `n` newest videos of the creators `user_id` follows, below `before`."""
    owners = await followees(ctx, user_id)
    page = merge_newest(await creator_videos(ctx, owners), before, n, exclude)
    if page is not None:
        return page
    # Deeper than the kept lists: read enough after the cursor to decide (never cached).
    async with ctx.reads.connect() as conn:
        found = await newest_by_creator(conn, owners, n + len(exclude), before)
    page = merge_newest(found.values(), before, n, exclude)
    assert page is not None  # each list holds n + len(exclude) rows or all there are
    return page
