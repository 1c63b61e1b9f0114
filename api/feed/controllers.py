"""Routes: the feed, `GET /v1/feed?type=following|for_you&cursor=&limit=` (issue 3, "Feed").

- `following` (token required): the newest published public videos of the creators the caller
  follows, keyset pages on (published_at, id), merged from per-creator lists
  (`api.following`); `source: "following"`.
- `for_you` (token optional): a page of the cached candidate snapshot (`api.feedstore`) merged
  under the serving constraints (`api.ranking.merge`), minus what the viewer watched or
  marked (`api.seenset`); `source: "ranked"`. When that path fails or takes longer than
  `settings.feed_timeout_ms`, the page comes from trending instead (`api.trending`,
  `source: "trending"`): published public videos, those published in the last 7 days first,
  by likes + views.

All read the videos themselves through `api.viewcache` (in-process, 2 s).

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

from api.core.caller import User, optional_user
from api.core.context import AppContext
from api.core.errors import BadRequest, Unauthorized
from api.feed import ranking
from api.feed.following import newest_followed
from api.feed.seen import seen_videos, seen_videos_at, version_key
from api.feed.store import KEY_CURRENT, FeedStore, Snapshot
from api.feed.trending import trending_entries
from api.videos.schemas import VideoOut
from api.videos.viewcache import published_views

log = logging.getLogger("reelforge.feed")

FeedType = Literal["following", "for_you"]
# Rounds per page of dropping videos deleted or hidden since a list was read (and topping up):
# ranked pages, and following or trending pages.
MAX_ROUNDS = 8
TOP_UP_ROUNDS = 4


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
    """The process's `FeedStore` (made in the app's lifespan)."""
    store: FeedStore = request.app.state.feed_store
    return store


async def following_page(
    ctx: AppContext, user: User, cursor: FollowingCursor | None, limit: int
) -> FeedOut:
    """Newest first, keyset on (published_at, id): no gaps or repeats while paging."""
    before = (cursor.published_at, cursor.id) if cursor is not None else None
    gone: set[str] = set()
    for _ in range(TOP_UP_ROUNDS):
        keys = await newest_followed(ctx, user.id, before, limit + 1, gone)
        found = await published_views(ctx, [video_id for _, video_id in keys])
        missing = {video_id for _, video_id in keys} - found.keys()
        if not missing:
            break
        # Deleted or hidden since the creator's list was read: skip them and top up.
        gone |= missing
    more = len(keys) > limit
    keys = keys[:limit]
    next_cursor = encode_cursor(FollowingCursor(*keys[-1])) if more else None
    page = [found[video_id] for _, video_id in keys if video_id in found]
    return FeedOut(page, next_cursor, "following")


async def trending_page(
    request: Request[Any, Any, Any], user: User | None, cursor: TrendingCursor | None, limit: int
) -> FeedOut:
    """The fallback (`api.trending`): published public videos, the last 7 days' first, by
    likes + views; never the viewer's own nor what they watched or marked."""
    ctx: AppContext = request.app.state.ctx
    seen_ids: frozenset[str] | None = frozenset()
    if user is not None:
        try:
            seen_ids = await seen_videos(ctx, user.id)
        except Exception as exc:  # the shared cache is down: the query reads `seen` itself
            log.warning("seen set unavailable, trending reads the table: %r", exc)
            seen_ids = None
    viewer = user.id if user is not None else None
    after = (cursor.recent, cursor.engagement, cursor.id) if cursor is not None else None
    asked = cursor.cutoff if cursor is not None else None
    gone: set[str] = set()
    for _ in range(TOP_UP_ROUNDS):
        cutoff, entries = await trending_entries(
            ctx, request.app.state.trending, viewer, seen_ids, asked, after, limit + 1, gone
        )
        found = await published_views(ctx, [e.id for e in entries])
        missing = {e.id for e in entries} - found.keys()
        if not missing:
            break
        gone |= missing  # deleted or hidden since the pool was read: top the page up
    more = len(entries) > limit
    entries = entries[:limit]
    next_cursor = None
    if more:
        recent, engagement, video_id = entries[-1].key
        next_cursor = encode_cursor(TrendingCursor(cutoff, recent, engagement, video_id))
    page = [found[e.id] for e in entries if e.id in found]
    return FeedOut(page, next_cursor, "trending")


async def ranked_page(
    ctx: AppContext, store: FeedStore, user: User | None, cursor: RankedCursor | None, limit: int
) -> FeedOut:
    """A page of the snapshot under the serving constraints, with only visible videos."""
    snapshot, state, seen_ids = await _resume(ctx, store, user, cursor)
    items, cold = snapshot.items, snapshot.cold
    owner = user.id if user is not None else None
    gone: set[str] = set()
    found: dict[str, VideoOut] = {}
    picks: list[int] = []
    for _ in range(MAX_ROUNDS):
        excluded = seen_ids | gone if gone else seen_ids
        picks, new_state, exhausted = ranking.merge(
            items, cold, state, ranking.Exclusions(excluded, owner), limit
        )
        found = await published_views(ctx, [items[i].id for i in picks])
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
    ctx: AppContext, store: FeedStore, user: User | None, cursor: RankedCursor | None
) -> tuple[Snapshot, ranking.MergeState, frozenset[str]]:
    """The snapshot, where the viewer is in it, and what they watched or marked: the keys
    this needs from the shared cache are read in one round trip."""
    keys = [KEY_CURRENT] if cursor is None else []
    if user is not None:
        keys.append(version_key(user.id))
    values = await ctx.cache.get_many(keys) if keys else []
    seen_ids = await seen_videos_at(ctx, user.id, values[-1]) if user else frozenset()
    if cursor is None:
        return await store.current_from(values[0]), ranking.MergeState(), seen_ids
    snapshot = await store.pinned(cursor.sid)
    if snapshot is not None:
        served = ranking.decode_served(cursor.served)
        return snapshot, ranking.MergeState(served, list(cursor.recent), cursor.count), seen_ids
    # Its snapshot expired: start over in the current one, keeping the creators window.
    state = ranking.MergeState(set(), list(cursor.recent), cursor.count)
    return await store.current(), state, seen_ids


async def for_you_page(
    request: Request[Any, Any, Any], user: User | None, cursor: Cursor | None, limit: int
) -> FeedOut:
    """Ranked when it answers in time, trending otherwise (`source` says which)."""
    ctx: AppContext = request.app.state.ctx
    if isinstance(cursor, FollowingCursor):
        raise BadRequest("this cursor belongs to the following feed")
    if isinstance(cursor, TrendingCursor):
        return await trending_page(request, user, cursor, limit)
    timeout = max(ctx.settings.feed_timeout_ms, 0) / 1000
    try:
        if timeout <= 0:
            raise TimeoutError
        # A deadline on this task (no task per request, as `asyncio.wait_for` would start).
        async with asyncio.timeout(timeout):
            return await ranked_page(ctx, feed_store(request), user, cursor, limit)
    except Exception as exc:  # any failure of the ranked path means the fallback
        log.warning("ranked feed unavailable, serving trending: %r", exc)
    return await trending_page(request, user, None, limit)


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
