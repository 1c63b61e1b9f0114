"""Routes: the feed, `GET /v1/feed?type=following|for_you&cursor=&limit=` (issue 3, "Feed").

- `following` (token required): the newest published public videos of the creators the caller
  follows, keyset pages on (published_at, id); `source: "following"`.
- `for_you` (token optional): a page of the cached candidate snapshot (`api.feedstore`) merged
  under the serving constraints (`api.ranking.merge`); `source: "ranked"`. When that path
  fails or takes longer than `settings.feed_timeout_ms`, the page comes from trending instead
  (`source: "trending"`): published public videos, those published in the last 7 days first,
  by likes + views.

Cursors are opaque: base64url of msgspec JSON, tagged by the source they page through. A
ranked cursor names its snapshot, the bitmap of what was served from it, the last 4 creators
(the diversity window spans pages) and the count of items served (cold-start slots). If its
snapshot has expired (`feedstore.SNAPSHOT_SECONDS`), the session goes on from the top of the
current snapshot keeping the creators window and slot count: what the viewer watched or marked
stays out (the `seen` table), other items may come back. A trending cursor keeps paging
trending (a session does not switch source in the middle); a cursor of another feed type is a
400.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter
from sqlalchemy import and_, case, exists, or_, select

from api import ranking
from api.auth import User, optional_user
from api.context import AppContext
from api.db import now_ms
from api.errors import BadRequest, Unauthorized
from api.feedstore import FeedStore, Snapshot, seen_among, visible
from api.tables import follows, seen, videos
from api.views import VideoOut, video_out, video_query

log = logging.getLogger("reelforge.feed")

FeedType = Literal["following", "for_you"]
TRENDING_WINDOW_MS = 7 * 24 * 3_600_000
# How many unserved candidates the first seen-read covers (widened 4x when a page needs more).
SEEN_WINDOW_MIN = 100
# Merge rounds per page: widening the window and dropping videos gone since the snapshot.
MAX_ROUNDS = 8


class FeedOut(msgspec.Struct):
    videos: list[VideoOut]
    next_cursor: str | None
    source: Literal["following", "ranked", "trending"]


class FollowingCursor(msgspec.Struct, tag="f"):
    published_at: int
    id: str


class RankedCursor(msgspec.Struct, tag="r"):
    sid: str
    served: bytes
    recent: list[str]
    count: int


class TrendingCursor(msgspec.Struct, tag="t"):
    cutoff: int
    recent: int
    engagement: int
    id: str


Cursor = FollowingCursor | RankedCursor | TrendingCursor


def encode_cursor(cursor: Cursor) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(cursor)).rstrip(b"=").decode()


def decode_cursor(text: str) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return msgspec.json.decode(raw, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise BadRequest("the cursor is not one this feed gave out") from None


def feed_store(request: Request[Any, Any, Any]) -> FeedStore:
    """The process's `FeedStore`, made on first use and kept with the app."""
    store = getattr(request.app.state, "feed_store", None)
    if store is None:
        store = FeedStore(request.app.state.ctx)
        request.app.state.feed_store = store
    return store


async def fetch_videos(ctx: AppContext, ids: list[str]) -> dict[str, VideoOut]:
    """The visible videos among `ids` (one query), by id."""
    if not ids:
        return {}
    query = video_query().where(videos.c.id.in_(ids), visible())
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {row.id: video_out(row, ctx.settings) for row in rows}


async def following_page(
    ctx: AppContext, user: User, cursor: FollowingCursor | None, limit: int
) -> FeedOut:
    """Newest first, keyset on (published_at, id): no gaps or repeats while paging."""
    followed = select(follows.c.followee_id).where(follows.c.follower_id == user.id)
    query = video_query().where(visible(), videos.c.owner_id.in_(followed))
    if cursor is not None:
        query = query.where(
            or_(
                videos.c.published_at < cursor.published_at,
                and_(videos.c.published_at == cursor.published_at, videos.c.id < cursor.id),
            )
        )
    query = query.order_by(videos.c.published_at.desc(), videos.c.id.desc()).limit(limit + 1)
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(FollowingCursor(rows[-1].published_at, rows[-1].id)) if more else None
    )
    return FeedOut([video_out(r, ctx.settings) for r in rows], next_cursor, "following")


async def trending_page(
    ctx: AppContext, user: User | None, cursor: TrendingCursor | None, limit: int
) -> FeedOut:
    """The fallback: published public videos, the last 7 days' first, by likes + views."""
    cutoff = cursor.cutoff if cursor is not None else now_ms() - TRENDING_WINDOW_MS
    recent = case((videos.c.published_at >= cutoff, 1), else_=0)
    engagement = videos.c.like_count + videos.c.view_count
    query = video_query().add_columns(
        recent.label("trend_recent"), engagement.label("trend_engagement")
    )
    query = query.where(visible())
    if user is not None:
        watched = select(seen.c.video_id).where(
            seen.c.user_id == user.id, seen.c.video_id == videos.c.id
        )
        query = query.where(videos.c.owner_id != user.id, ~exists(watched))
    if cursor is not None:
        query = query.where(
            or_(
                recent < cursor.recent,
                and_(recent == cursor.recent, engagement < cursor.engagement),
                and_(
                    recent == cursor.recent,
                    engagement == cursor.engagement,
                    videos.c.id < cursor.id,
                ),
            )
        )
    query = query.order_by(recent.desc(), engagement.desc(), videos.c.id.desc()).limit(limit + 1)
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(
            TrendingCursor(cutoff, int(last.trend_recent), int(last.trend_engagement), last.id)
        )
    return FeedOut([video_out(r, ctx.settings) for r in rows], next_cursor, "trending")


async def ranked_page(
    ctx: AppContext, store: FeedStore, user: User | None, cursor: RankedCursor | None, limit: int
) -> FeedOut:
    """A page of the snapshot under the serving constraints, with only visible videos."""
    snapshot, state = await _resume(store, cursor)
    items, cold = snapshot.items, snapshot.cold
    owner = user.id if user is not None else None
    seen_ids: set[str] = set()
    checked: set[str] = set()
    gone: set[str] = set()
    window = max(4 * limit, SEEN_WINDOW_MIN)
    found: dict[str, VideoOut] = {}
    picks: list[int] = []
    for round_number in range(1, MAX_ROUNDS + 1):
        last_round = round_number == MAX_ROUNDS
        horizon = ranking.horizon_for(items, state, window)
        if user is not None:
            ids = [i for i in ranking.window_ids(items, cold, state, horizon) if i not in checked]
            seen_ids |= await seen_among(ctx, user.id, ids)
            checked.update(ids)
        exclusions = ranking.Exclusions(seen_ids | gone, owner)
        picks, new_state, exhausted = ranking.merge(
            items, cold, state, exclusions, limit, horizon=horizon
        )
        if len(picks) < limit and not exhausted and not last_round:
            window *= 4
            continue
        found = await fetch_videos(ctx, [items[i].id for i in picks])
        missing = {items[i].id for i in picks} - found.keys()
        if not missing:
            break
        # Deleted or hidden since the snapshot was built: drop them and top the page up.
        gone |= missing
    picks = [i for i in picks if items[i].id in found]
    page = [found[items[i].id] for i in picks]
    next_cursor = None
    if not exhausted:
        next_cursor = encode_cursor(
            RankedCursor(
                snapshot.sid,
                ranking.encode_served(new_state.served),
                new_state.recent,
                new_state.count,
            )
        )
    return FeedOut(page, next_cursor, "ranked")


async def _resume(
    store: FeedStore, cursor: RankedCursor | None
) -> tuple[Snapshot, ranking.MergeState]:
    if cursor is None:
        return await store.current(), ranking.MergeState()
    snapshot = await store.pinned(cursor.sid)
    if snapshot is not None:
        served = ranking.decode_served(cursor.served)
        return snapshot, ranking.MergeState(served, list(cursor.recent), cursor.count)
    # Its snapshot expired: start over in the current one, keeping the creators window.
    return await store.current(), ranking.MergeState(set(), list(cursor.recent), cursor.count)


async def for_you_page(
    request: Request[Any, Any, Any], user: User | None, cursor: Cursor | None, limit: int
) -> FeedOut:
    """Ranked when it answers in time, trending otherwise (`source` says which)."""
    ctx: AppContext = request.app.state.ctx
    if isinstance(cursor, FollowingCursor):
        raise BadRequest("this cursor belongs to the following feed")
    if isinstance(cursor, TrendingCursor):
        return await trending_page(ctx, user, cursor, limit)
    timeout = max(ctx.settings.feed_timeout_ms, 0) / 1000
    try:
        return await asyncio.wait_for(
            ranked_page(ctx, feed_store(request), user, cursor, limit), timeout
        )
    except Exception as exc:  # any failure of the ranked path means the fallback
        log.warning("ranked feed unavailable, serving trending: %r", exc)
    return await trending_page(ctx, user, None, limit)


@get("/v1/feed", dependencies={"user": Provide(optional_user)})
async def get_feed(
    request: Request[Any, Any, Any],
    user: NamedDependency[User | None],
    feed_type: Annotated[FeedType, QueryParameter(name="type")] = "for_you",
    cursor: Annotated[str | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
) -> FeedOut:
    """A page of the following or the for-you feed; `source` says where the page came from."""
    decoded = decode_cursor(cursor) if cursor else None
    if feed_type == "for_you":
        return await for_you_page(request, user, decoded, limit)
    if user is None:
        raise Unauthorized("the following feed needs a bearer token")
    if decoded is not None and not isinstance(decoded, FollowingCursor):
        raise BadRequest("this cursor belongs to the for-you feed")
    return await following_page(request.app.state.ctx, user, decoded, limit)


ROUTES: list[Any] = [get_feed]
