"""What each viewer watched or marked, served from the caches (issue 3, "Feed": the for-you
feed never shows a video the viewer already watched or marked).

The `seen` table stays the source of truth. The shared cache (`ctx.cache`: Redis in
production, so every API process reads the same) holds

    seen:{user_id}    → the set of video ids, with a marker member (`FILLED`) once it was
                        loaded whole from the table
    seenv:{user_id}   → a random version, replaced whenever the set grows

both for `settings.seen_cache_seconds` since their last change. Each API process keeps the
sets it read (`ctx.local.seen`) with the version they were read at, so a feed request costs
one small cache read (the version) and no set transfer while the viewer's set is unchanged;
a new version, or no local copy, reads the set again, and a set without the marker (never
loaded, expired) is loaded from the table.

`POST /v1/events` adds the videos it marks after its transaction commits, then replaces the
version: a request that starts after the events were answered sees the new version, hence
the new members. Adds only ever grow the set and versions are never reused, so no order of
fills, adds and reads loses a member. Rows written to `seen` other than through the API show
once the viewer's set expires.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Collection

from sqlalchemy import bindparam, select

from api.core.context import AppContext
from api.core.tables import seen

log = logging.getLogger("reelforge.feed")

# Not a video id (those are `v_...`): present once the set holds all of the viewer's rows.
FILLED = "."

_ROWS = select(seen.c.video_id).where(seen.c.user_id == bindparam("user_id"))


def seen_key(user_id: str) -> str:
    return f"seen:{user_id}"


def version_key(user_id: str) -> str:
    return f"seenv:{user_id}"


async def seen_videos(ctx: AppContext, user_id: str) -> frozenset[str]:
    """Every video the viewer watched or marked (see the module docstring for the cost)."""
    return await seen_videos_at(ctx, user_id, await ctx.cache.get(version_key(user_id)))


async def seen_videos_at(ctx: AppContext, user_id: str, version: bytes | None) -> frozenset[str]:
    """`seen_videos`, with the version key already read (with other keys, in one round trip)."""
    return (await seen_and_version(ctx, user_id, version))[0]


async def seen_and_version(
    ctx: AppContext, user_id: str, version: bytes | None
) -> tuple[frozenset[str], bytes]:
    """`seen_videos_at`, and the set's version now (a new one when there was none): what
    identifies the viewer's events for the For You fold-in (`api.feed.foldin`)."""
    cache, ttl = ctx.cache, ctx.settings.seen_cache_seconds
    local = ctx.local.seen.get(user_id)
    if version is not None and local is not None and local[0] == version:
        return local[1], version
    # A copy is labelled with the version read *before* the set: every add replaces the
    # version after adding, so the set read next holds all adds up to that version.
    members = await cache.smembers(seen_key(user_id))
    if FILLED not in members:
        async with ctx.reads.connect() as conn:
            members |= set((await conn.execute(_ROWS, {"user_id": user_id})).scalars())
        await cache.sadd(seen_key(user_id), [FILLED, *members], ttl)
        version = None  # adds may have raced with this load: the next read labels a copy
    members.discard(FILLED)
    videos = frozenset(members)
    if version is None:
        version = secrets.token_bytes(8)
        await cache.set(version_key(user_id), version, ttl)
    else:
        ctx.local.seen.put(user_id, (version, videos))
    return videos, version


async def remember_seen(ctx: AppContext, user_id: str, video_ids: Collection[str]) -> None:
    """Add videos the viewer just watched or marked (after the `seen` rows are committed)."""
    if not video_ids:
        return
    ctx.local.seen.pop(user_id)
    ttl = ctx.settings.seen_cache_seconds
    try:
        await ctx.cache.sadd(seen_key(user_id), sorted(video_ids), ttl)
        await ctx.cache.set(version_key(user_id), secrets.token_bytes(8), ttl)
    except Exception as exc:
        # The set may now lack them: drop it, so the next read reloads it from the table.
        log.warning("could not add to the seen set of %s (%s); dropping it", user_id, exc)
        try:
            await ctx.cache.delete(seen_key(user_id))
            await ctx.cache.delete(version_key(user_id))
        except Exception:
            log.exception("could not drop the seen set of %s", user_id)
