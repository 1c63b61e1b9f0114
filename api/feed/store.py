"""Candidate snapshots for the for-you feed: computed from the database, shared through the cache.

Issue 3 ("Feed"): the candidate list is the top `CANDIDATES` videos by `api.feed.ranking.score`
among the newest `SCAN_LIMIT` published public videos, plus the cold-start pool. It is cached
(msgspec) in `ctx.cache` (Redis in production, so every API process serves the same one):

    feed:current        → snapshot id, for `settings.feed_cache_seconds`
    feed:stale          → snapshot id, for `STALE_SECONDS` (what to serve while recomputing)
    feed:snap:{sid}     → the encoded snapshot, for `SNAPSHOT_SECONDS` (cursors pin their
                          snapshot, so a viewer pages through one consistent list)
    feed:lock           → the one-recompute-at-a-time counter (expires by itself)

A background task (`keep_fresh`, started with the app) rebuilds the current snapshot before it
expires, so requests only read: one process at a time (a cache counter is the lock across
processes; a task is the single flight inside one process), the rows streamed from the
database and scored batch by batch, so the event loop never stalls for a whole rebuild.
If the current snapshot expired anyway, requests keep serving the stale one while a rebuild
runs. The first snapshot is built on demand: with none at all, requests wait for it, and the
route's timeout turns a slow wait into the trending fallback (the rebuild, shielded from that
cancellation, still fills the cache). Decoded snapshots are kept in process memory by id, so a
request reads a short id from the cache rather than the whole list.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections import OrderedDict
from typing import Any

import msgspec
from sqlalchemy import select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.tables import videos
from api.core.visibility import listed
from api.feed import ranking

log = logging.getLogger("reelforge.feed")

CANDIDATES = 1000
# Top of each new snapshot pre-warmed at the edges (the next screens of most viewers).
WARM_TOP = 20
COLD_POOL = 200
SCAN_LIMIT = 20_000
STALE_SECONDS = 3600
SNAPSHOT_SECONDS = STALE_SECONDS + 600
LOCK_SECONDS = 30
MEMORY_SNAPSHOTS = 16
WAIT_POLL_SECONDS = 0.02
# Rows per round trip while a rebuild streams and scores its candidates (the event loop
# serves requests in between).
SCAN_BATCH = 500
# `keep_fresh` rebuilds a snapshot once it is this old, in parts of `feed_cache_seconds`.
REFRESH_AT = 0.6

KEY_CURRENT = "feed:current"
KEY_STALE = "feed:stale"
KEY_LOCK = "feed:lock"


def snapshot_key(sid: str) -> str:
    return f"feed:snap:{sid}"


class Snapshot(msgspec.Struct, frozen=True):
    """One ranked candidate list: `cold` indexes the cold-start pool inside `items`."""

    sid: str
    built_at: int
    items: list[ranking.Candidate]
    cold: list[int]


class SnapshotCorrupt(Exception):
    """A cached snapshot could not be decoded."""


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Snapshot)

# The `videos` columns named like `VideoStats`'s fields, in their order (rows become stats
# positionally).
_STATS_COLUMNS = tuple(videos.c[f.name] for f in dataclasses.fields(ranking.VideoStats))


def warm_top(ctx: AppContext, snapshot: Snapshot, count: int | None = None) -> int:
    """Pre-warm the CDN edges with the videos a new snapshot ranks into the most viewers'
    next screens (issue 4, "CDN pre-warm hooks"): the top `WARM_TOP` items. `Jobs.warm`
    never raises and enqueues at most once a minute per video; returns the jobs sent."""
    sent = 0
    for item in snapshot.items[: WARM_TOP if count is None else count]:
        sent += ctx.jobs.warm(item.id)
    return sent


_SCAN = (
    select(*_STATS_COLUMNS)
    .where(listed(), videos.c.published_at.is_not(None))
    .order_by(videos.c.published_at.desc())
    .limit(SCAN_LIMIT)
)


async def build_snapshot(ctx: AppContext, now: int | None = None) -> Snapshot:
    """Score the newest published public videos and keep the top ones plus the cold pool.

    The rows are streamed in batches and scored as they come: the event loop serves requests
    between batches (a few ms each), rather than stalling for the whole scan."""
    now = now_ms() if now is None else now
    ranker = ranking.CandidateRanker(now, limit=CANDIDATES, cold_limit=COLD_POOL)
    async with ctx.db.connect() as conn:
        result = await conn.stream(_SCAN.execution_options(yield_per=SCAN_BATCH))
        async for batch in result.partitions():
            # Columns in `VideoStats` order (see `_STATS_COLUMNS`).
            ranker.add(ranking.VideoStats(*row) for row in batch)
    items, cold = ranker.result()
    return Snapshot(sid=secrets.token_urlsafe(9), built_at=now, items=items, cold=cold)


class FeedStore:
    """The snapshots one API process serves from (one per app, kept on `app.state`)."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self._memory: OrderedDict[str, Snapshot] = OrderedDict()
        self._refreshing: asyncio.Task[Snapshot | None] | None = None
        self._keeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start `keep_fresh` for the app's lifetime (`close` stops it)."""
        if self._keeper is None:
            self._keeper = asyncio.get_running_loop().create_task(self.keep_fresh())

    async def current(self) -> Snapshot:
        """The snapshot a new feed session starts from (see the module docstring)."""
        return await self.current_from(await self.ctx.cache.get(KEY_CURRENT))

    async def current_from(self, sid: bytes | None) -> Snapshot:
        """`current`, with `KEY_CURRENT` already read (with other keys, in one round trip)."""
        cache = self.ctx.cache
        if sid is not None:
            snapshot = await self._load_or_heal(sid.decode())
            if snapshot is not None:
                return snapshot
        stale = await cache.get(KEY_STALE)
        if stale is not None:
            snapshot = await self._load_or_heal(stale.decode())
            if snapshot is not None:
                self._start_refresh()
                return snapshot
        return await self._refresh_or_wait()

    async def keep_fresh(self) -> None:
        """Rebuild the current snapshot before it expires, for as long as the app runs (a task
        started in the app's lifespan). Only once there is one: the first is built on demand."""
        period = max(1.0, self.ctx.settings.feed_cache_seconds * (1 - REFRESH_AT) / 2)
        while True:
            await asyncio.sleep(period)
            try:
                await self.refresh_if_due()
            except Exception as exc:  # the next round tries again; requests serve the stale
                log.warning("feed snapshot refresh check failed: %r", exc)

    async def refresh_if_due(self) -> None:
        """Rebuild when the current (or, once it expired, the stale) snapshot is old enough."""
        cache = self.ctx.cache
        sid = await cache.get(KEY_CURRENT) or await cache.get(KEY_STALE)
        if sid is None:
            return
        try:
            snapshot = await self._load(sid.decode())
        except SnapshotCorrupt:
            snapshot = None
        age_ms = now_ms() - snapshot.built_at if snapshot is not None else None
        if age_ms is None or age_ms >= self.ctx.settings.feed_cache_seconds * 1000 * REFRESH_AT:
            await asyncio.shield(self._start_refresh())

    async def pinned(self, sid: str) -> Snapshot | None:
        """The snapshot a cursor names, or None when it has expired."""
        return await self._load_or_heal(sid)

    async def _load_or_heal(self, sid: str) -> Snapshot | None:
        try:
            return await self._load(sid)
        except SnapshotCorrupt:
            # Serve the fallback now, and replace the bad entry for the next requests.
            self._start_refresh()
            raise

    async def _load(self, sid: str) -> Snapshot | None:
        snapshot = self._memory.get(sid)
        if snapshot is not None:
            self._memory.move_to_end(sid)
            return snapshot
        data = await self.ctx.cache.get(snapshot_key(sid))
        if data is None:
            return None
        try:
            snapshot = _DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise SnapshotCorrupt(f"feed snapshot {sid!r} is corrupt: {exc}") from exc
        if snapshot.sid != sid:
            raise SnapshotCorrupt(f"feed snapshot {sid!r} holds {snapshot.sid!r}")
        self._remember(snapshot)
        return snapshot

    def _remember(self, snapshot: Snapshot) -> None:
        self._memory[snapshot.sid] = snapshot
        self._memory.move_to_end(snapshot.sid)
        while len(self._memory) > MEMORY_SNAPSHOTS:
            self._memory.popitem(last=False)

    def _start_refresh(self) -> asyncio.Task[Snapshot | None]:
        """One recompute per process at a time; the task outlives the request that began it."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._refresh())
            self._refreshing.add_done_callback(_log_failure)
        return self._refreshing

    async def _refresh_or_wait(self) -> Snapshot:
        # Shielded: a caller that times out leaves the recompute running for the next ones.
        snapshot = await asyncio.shield(self._start_refresh())
        if snapshot is not None:
            return snapshot
        # Another process holds the lock: wait for its snapshot (the caller's timeout bounds
        # the wait).
        while True:
            await asyncio.sleep(WAIT_POLL_SECONDS)
            sid = await self.ctx.cache.get(KEY_CURRENT)
            if sid is not None:
                found = await self._load(sid.decode())
                if found is not None:
                    return found

    async def _refresh(self) -> Snapshot | None:
        """Recompute and publish a snapshot, unless another process is doing it (None)."""
        cache = self.ctx.cache
        holders, _ = await cache.incr_window(KEY_LOCK, LOCK_SECONDS)
        if holders != 1:
            return None
        try:
            snapshot = await build_snapshot(self.ctx)
            await self.publish(snapshot)
            await asyncio.to_thread(warm_top, self.ctx, snapshot)
            return snapshot
        finally:
            await cache.delete(KEY_LOCK)

    async def publish(self, snapshot: Snapshot) -> None:
        """Store a snapshot and make it the current and the stale one."""
        cache = self.ctx.cache
        sid = snapshot.sid.encode()
        await cache.set(snapshot_key(snapshot.sid), _ENCODER.encode(snapshot), SNAPSHOT_SECONDS)
        await cache.set(KEY_STALE, sid, STALE_SECONDS)
        await cache.set(KEY_CURRENT, sid, self.ctx.settings.feed_cache_seconds)
        self._remember(snapshot)

    async def close(self) -> None:
        for task in (self._keeper, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("feed snapshot recompute failed: %r", task.exception())
