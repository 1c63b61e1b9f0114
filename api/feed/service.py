"""The feed's pages (issue 3, "Feed"): following, ranked for-you, and the trending fallback.

- `following`: the newest published public videos of the creators the caller follows, keyset
  pages on (published_at, id), merged from per-creator lists (`api.feed.following`);
  `source: "following"`.
- `for_you`: a page of the cached candidate snapshot (`api.feed.store`), or, for a viewer a
  For You model knows (or folds in after a few events, `api.feed.foldin`), of their own
  list (the model's top videos of its whole catalogue, the snapshot and their followees'
  newest, in their order: `api.feed.personal`), merged under
  the serving constraints (`api.feed.ranking.merge`), minus what the viewer watched or marked
  (`api.feed.seen`); `source: "ranked"`, and `personal: true` on the viewer's own list.
  When that path fails or takes longer than `settings.feed_timeout_ms`, the page comes from
  trending instead (`api.feed.trending`, `source: "trending"`): published public videos,
  those published in the last 7 days first, by likes + views.

All read the videos themselves through `api.videos.viewcache` (in-process, 2 s).

Cursors (`api.feed.cursors`) are tagged by the source they page through. If a ranked cursor's
snapshot has expired (`api.feed.store.SNAPSHOT_SECONDS`), the session goes on from the top of
the current snapshot keeping the creators window and slot count: what the viewer watched or
marked stays out (the `seen` table), other items may come back; so does a personal session
whose list expired (`api.feed.personal`). A trending cursor keeps paging
trending (a session does not switch source in the middle); a cursor of another feed type is a
400.
"""

from __future__ import annotations

import asyncio
import logging

from api.core.context import AppContext
from api.core.domain_errors import BadRequest
from api.core.identity import User
from api.feed import ranking
from api.feed.cursors import FEED_CURSORS, Cursor, FollowingCursor, RankedCursor, TrendingCursor
from api.feed.following import newest_followed
from api.feed.personal import PersonalFeed, PersonalOrder
from api.feed.schemas import FeedOut
from api.feed.seen import seen_and_version, seen_videos, version_key
from api.feed.store import KEY_CURRENT, FeedStore, Snapshot
from api.feed.trending import TrendingPools, trending_entries
from api.videos.schemas import VideoOut
from api.videos.viewcache import published_views

log = logging.getLogger("reelforge.feed")

# Rounds per page of dropping videos deleted or hidden since a list was read (and topping up):
# ranked pages, and following or trending pages.
MAX_ROUNDS = 8
TOP_UP_ROUNDS = 4


async def following_page(ctx: AppContext, user: User, cursor: Cursor | None, limit: int) -> FeedOut:
    """Newest first, keyset on (published_at, id): no gaps or repeats while paging."""
    if cursor is not None and not isinstance(cursor, FollowingCursor):
        raise BadRequest("this cursor belongs to the for-you feed")
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
    next_cursor = FEED_CURSORS.encode(FollowingCursor(*keys[-1])) if more else None
    page = [found[video_id] for _, video_id in keys if video_id in found]
    return FeedOut(page, next_cursor, "following")


async def for_you_page(
    ctx: AppContext,
    store: FeedStore,
    pools: TrendingPools,
    user: User | None,
    cursor: Cursor | None,
    limit: int,
    personal: PersonalOrder | None = None,
) -> FeedOut:
    """Ranked when it answers in time, trending otherwise (`source` says which); `personal`
    orders the ranked path for the viewers its model knows."""
    if isinstance(cursor, FollowingCursor):
        raise BadRequest("this cursor belongs to the following feed")
    if isinstance(cursor, TrendingCursor):
        return await trending_page(ctx, pools, user, cursor, limit)
    timeout = max(ctx.settings.feed_timeout_ms, 0) / 1000
    try:
        if timeout <= 0:
            raise TimeoutError
        # A deadline on this task (no task per request, as `asyncio.wait_for` would start).
        async with asyncio.timeout(timeout):
            return await ranked_page(ctx, store, user, cursor, limit, personal)
    except Exception as exc:  # any failure of the ranked path means the fallback
        log.warning("ranked feed unavailable, serving trending: %r", exc)
    return await trending_page(ctx, pools, user, None, limit)


async def trending_page(
    ctx: AppContext,
    pools: TrendingPools,
    user: User | None,
    cursor: TrendingCursor | None,
    limit: int,
) -> FeedOut:
    """The fallback (`api.feed.trending`): published public videos, the last 7 days' first,
    by likes + views; never the viewer's own nor what they watched or marked."""
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
            ctx, pools, viewer, seen_ids, asked, after, limit + 1, gone
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
        next_cursor = FEED_CURSORS.encode(TrendingCursor(cutoff, recent, engagement, video_id))
    page = [found[e.id] for e in entries if e.id in found]
    return FeedOut(page, next_cursor, "trending")


async def ranked_page(
    ctx: AppContext,
    store: FeedStore,
    user: User | None,
    cursor: RankedCursor | None,
    limit: int,
    personal: PersonalOrder | None = None,
) -> FeedOut:
    """A page of the snapshot (or of the viewer's own list, `api.feed.personal`) under the
    serving constraints, with only visible videos."""
    snapshot, state, seen_ids, pinned, events = await _resume(ctx, store, user, cursor)
    feed = None
    if personal is not None and user is not None:
        feed, state = await _personal(ctx, personal, user.id, snapshot, state, pinned, events)
        if feed is not None:  # a new session may start in the list of an earlier snapshot
            snapshot = feed.snapshot
    items = feed.items if feed is not None else snapshot.items
    order = feed.order if feed is not None else None
    cold = snapshot.cold
    owner = user.id if user is not None else None
    gone: set[str] = set()
    found: dict[str, VideoOut] = {}
    picks: list[int] = []
    for _ in range(MAX_ROUNDS):
        excluded = seen_ids | gone if gone else seen_ids
        picks, new_state, exhausted = ranking.merge(
            items, cold, state, ranking.Exclusions(excluded, owner), limit, order=order
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
        next_cursor = FEED_CURSORS.encode(
            RankedCursor(
                snapshot.sid,
                ranking.encode_served(new_state.served),
                new_state.recent,
                new_state.count,
                feed.tag if feed is not None else None,
            )
        )
    return FeedOut(page, next_cursor, "ranked", personal=feed is not None)


async def _personal(
    ctx: AppContext,
    personal: PersonalOrder,
    viewer: str,
    snapshot: Snapshot,
    state: ranking.MergeState,
    pinned: RankedCursor | None,
    events: bytes | None,
) -> tuple[PersonalFeed | None, ranking.MergeState]:
    """The viewer's list for this page: a new one for a new session (or one whose snapshot
    expired), the cursor's own otherwise. A session that began in the snapshot's order stays
    in it; one whose list expired starts over in a new list keeping the creators window, as
    when a snapshot expires. `events` (the seen set's version) names the viewer's events for
    a fold-in (`api.feed.foldin`)."""
    if pinned is None:
        return await personal.fresh(ctx, viewer, snapshot, events), state
    if pinned.personal is None:
        return None, state
    feed = await personal.pinned(ctx, viewer, snapshot, pinned.personal)
    if feed is not None:
        return feed, state
    restart = ranking.MergeState(set(), list(state.recent), state.count)
    return await personal.fresh(ctx, viewer, snapshot, events), restart


async def _resume(
    ctx: AppContext, store: FeedStore, user: User | None, cursor: RankedCursor | None
) -> tuple[Snapshot, ranking.MergeState, frozenset[str], RankedCursor | None, bytes | None]:
    """The snapshot, where the viewer is in it, what they watched or marked (and that set's
    version), and the cursor when its snapshot is still there: the keys this needs from the
    shared cache are read in one round trip."""
    keys = [KEY_CURRENT] if cursor is None else []
    if user is not None:
        keys.append(version_key(user.id))
    values = await ctx.cache.get_many(keys) if keys else []
    seen_ids: frozenset[str] = frozenset()
    events = None
    if user is not None:
        seen_ids, events = await seen_and_version(ctx, user.id, values[-1])
    if cursor is None:
        return await store.current_from(values[0]), ranking.MergeState(), seen_ids, None, events
    snapshot = await store.pinned(cursor.sid)
    if snapshot is not None:
        served = ranking.decode_served(cursor.served)
        state = ranking.MergeState(served, list(cursor.recent), cursor.count)
        return snapshot, state, seen_ids, cursor, events
    # Its snapshot expired: start over in the current one, keeping the creators window.
    state = ranking.MergeState(set(), list(cursor.recent), cursor.count)
    return await store.current(), state, seen_ids, None, events
