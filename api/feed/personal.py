"""A viewer's own for-you list (issue 17, "Retrieval" and "Ranking"): candidates from the whole
catalogue of the For You model of `settings.feed_model_dir` (`recsys.artifact`, iALS
embeddings), the snapshot (the trending head and the cold pool) and the newest videos of the
creators the viewer follows, in the viewer's order, served under every rule of
`api.feed.ranking.merge` (seen, own, one creator per 5, the cold-start slot).

For a viewer the model knows, a session's list is built once per (snapshot, model version):

- **retrieval**: the top `candidates` (`settings.feed_personal_candidates`) videos of the
  model's whole catalogue by the viewer's score (`RetrievalModel.top_codes`: exact scoring,
  kept per (version, viewer), since it depends on nothing else), plus the `FOLLOWED_NEW`
  newest videos of the viewer's followees (`api.feed.following`, cached);
- **servable**: the snapshot's rows were listed (published, public) when it was built; the
  others are read in one batched query (`api.feed.servable`, kept per process for
  `feed_cache_seconds`), so a deleted, private, in-review or rejected video the model
  still knows is never a candidate; a video hidden since is dropped at serving time
  (`api.videos.viewcache`), and seen or own videos by the merge, as for the snapshot's;
- **order**: every candidate has a v1 place (the snapshot's order, the others inserted by
  their v1 score, `api.feed.ranking.score`); the ones the model knows trade those places
  among themselves by the viewer's score (`api.feed.scoring`: the version's ranker; a new
  video's caption places it among them; a reported video's positive score is cut by
  `api.moderation.report_penalty`, as its v1 score is); the others keep their v1 places.

The list (the snapshot's items, then the others, and the order) is kept in this process and
in `ctx.cache` (`feed:personal:{sid}:{tag}:{viewer}`, for `SNAPSHOT_SECONDS`; the tag is the
model version, a folded-in viewer's events key, and a checksum of the viewer's followees), and
a cursor names its tag: a viewer pages through one list, on any API process, even when the
model is swapped in between. A new session reuses the list of its snapshot, model and
followees, so a followee's new video reaches it with the next snapshot (`feed_cache_seconds`),
a follow at once.

Building a list takes queries, milliseconds of CPU and a cache write, so it stays off the
request path where it can, and is not redone for every snapshot: a new session starts in the
viewer's last list in this process (and its snapshot) if its snapshot is at most
`REUSE_CHECKS` × `feed_cache_seconds` old; when the list's tag changed since (a new model
version, new events of a folded-in viewer), or that snapshot is `rebuild_seconds` old
(`settings.feed_personal_rebuild_seconds`), the current one is built in the background for the
next session. A viewer's first list, or one after a follow, is built while the request waits
(shielded: a request that times out into trending leaves it running).

A viewer the model does not know is folded in (`api.feed.foldin`): with at least
`foldin.FOLD_IN_MIN` positive events on videos it knows, their factor is solved from their
newest events (two small queries and a k×k solve) and their list built as above, ordered by the
folded iALS scores (they have no row in the ranker's user features; `api.feed.scoring`). The
tag then holds their events key (their seen set's version): new events make a new list,
built at most once per key and, like a new model's, in the background when the viewer has
a recent list already. Too few events, or a failed read: the snapshot.

The model is (re)loaded in a thread when `CURRENT` names another version (looked at every
`feed_cache_seconds`); one that cannot be loaded leaves the one in use (or none). A failure
while building a list reaches `api.feed.service.for_you_page`, which serves trending."""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.ttlcache import TTLCache
from api.feed import foldin, ranking, scoring
from api.feed.following import followees, newest_followed
from api.feed.scoring import personal_order
from api.feed.servable import ServableRows
from api.feed.store import SNAPSHOT_SECONDS, Snapshot
from api.moderation.thresholds import report_penalty
from recsys import artifact

log = logging.getLogger("reelforge.feed")

# Newest videos of the viewer's followees among a list's candidates.
FOLLOWED_NEW = 20
# Per process: viewers' top candidates (per model version), lists, rows, snapshots' rows.
TOP_VIEWERS, TOP_SECONDS, LISTS, ROWS, SNAPSHOT_CODES = 10_000, 3600.0, 5_000, 50_000, 4
# A new session may start in the viewer's list of an earlier snapshot built at most this many
# `feed_cache_seconds` ago (the current one's is then built in the background).
REUSE_CHECKS = 10
# Lists built at once in a process (each takes database reads: a burst of them, as when a new
# snapshot comes, would hold the pool the requests' own reads wait for).
BUILDS = 1


@dataclass(frozen=True)
class PersonalFeed:
    """One viewer's list: the snapshot's items then the other candidates (indexes as the
    merge and the cursor's bitmap use them), and the viewer's order of them."""

    tag: str
    snapshot: Snapshot
    items: list[ranking.Candidate]
    order: list[int]


class _Stored(msgspec.Struct, array_like=True, frozen=True):
    """A list as kept in the shared cache: the candidates beyond the snapshot's items, and
    the order as little-endian int32."""

    tag: str
    extras: list[ranking.Candidate]
    order: bytes


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(_Stored)


def list_key(sid: str, tag: str, viewer: str) -> str:
    return f"feed:personal:{sid}:{tag}:{viewer}"


class PersonalOrder:
    """The model in use in this process, and the viewers' lists built from it."""

    def __init__(
        self, root: str, check_seconds: float, candidates: int = 300, rebuild_seconds: float = 0.0
    ) -> None:
        self.root, self.check_seconds = root, max(check_seconds, 0.0)
        self.candidates, self.rebuild_ms = max(candidates, 0), max(rebuild_seconds, 0.0) * 1000
        self.scoring = scoring.CandidateScores(check_seconds)
        self.folds = foldin.FoldIns()
        self.model: artifact.RetrievalModel | None = None
        self._checked = -float("inf")
        self._loading: asyncio.Task[None] | None = None
        self._top: TTLCache[tuple[str, str], npt.NDArray[np.int64]] = TTLCache(
            TOP_SECONDS, max_items=TOP_VIEWERS
        )
        self._lists: TTLCache[tuple[str, str, str], PersonalFeed] = TTLCache(
            SNAPSHOT_SECONDS, max_items=LISTS
        )
        # viewer → the last list built for them here, and the builds running in the background.
        self._latest: TTLCache[str, PersonalFeed] = TTLCache(SNAPSHOT_SECONDS, max_items=LISTS)
        self._building: dict[tuple[str, str, str], asyncio.Task[PersonalFeed | None]] = {}
        self._builds = asyncio.Semaphore(BUILDS)
        self._checksums: TTLCache[str, tuple[tuple[str, ...], str]] = TTLCache(
            TOP_SECONDS, max_items=TOP_VIEWERS
        )
        self._servable = ServableRows(self.check_seconds, ROWS)
        # (snapshot id, model version) → (the snapshot's index by id, its items as model rows).
        self._codes: OrderedDict[tuple[str, str], tuple[dict[str, int], npt.NDArray[np.int64]]]
        self._codes = OrderedDict()

    async def current(self) -> artifact.RetrievalModel | None:
        """The model in use. Its folder is looked at in the background once `check_seconds`
        have passed (the requests go on with the model in use); a request waits for it only
        while there is none, or when `check_seconds` is 0."""
        if time.monotonic() - self._checked >= self.check_seconds and (
            self._loading is None or self._loading.done()
        ):
            self._checked = time.monotonic()
            self._loading = asyncio.get_running_loop().create_task(self._reload())
        waits = self.model is None or self.check_seconds == 0
        if waits and self._loading is not None and not self._loading.done():
            await asyncio.shield(self._loading)
        return self.model

    async def _reload(self) -> None:
        self.model = await asyncio.to_thread(self._refresh)
        self._checked = time.monotonic()

    def _refresh(self) -> artifact.RetrievalModel | None:
        try:
            version = artifact.current_version(self.root)
            if self.model is not None and self.model.version == version:
                return self.model
            model = artifact.load(self.root, version)
            scoring.warm(model)
        except artifact.ArtifactError as exc:
            log.warning("for-you model not loaded, keeping %s: %s", self._version(), exc)
            return self.model
        log.info("for-you model %s loaded from %s", model.version, self.root)
        return model

    def _version(self) -> str:
        return self.model.version if self.model is not None else "none"

    async def fresh(
        self, ctx: AppContext, viewer: str, snapshot: Snapshot, events: bytes | None = None
    ) -> PersonalFeed | None:
        """The list a new session of `viewer` pages through (None: the snapshot's order);
        `events` (their seen set's version) names a fold-in's events (`api.feed.foldin`)."""
        model = await self.current()
        if model is None:
            return None
        key = None
        if not model.knows(viewer):
            if events is None or "ials" not in model.meta:
                return None
            key = foldin.events_key(events)
            if self.folds.too_few(model, viewer, key):
                return None
        follows = await self._follows(ctx, viewer)
        tag = f"{model.version}.{follows}" if key is None else f"{model.version}.{key}.{follows}"
        feed = self._lists.get((snapshot.sid, tag, viewer))
        if feed is not None:
            return feed
        latest = self._latest.get(viewer)
        if latest is not None and latest.tag.endswith(tag[-9:]) and self._recent(latest):
            # Off the request path: the list of the snapshot (or events) before (its own sid
            # and tag, so the cursor pins it), while this one is built for the next sessions
            # if due.
            if latest.tag != tag or now_ms() - latest.snapshot.built_at >= self.rebuild_ms:
                self._start_build(ctx, model, viewer, snapshot, tag, key)
            return latest
        # Shielded: a request that runs out of time (trending) leaves the build running for the
        # viewer's next one (cancelled, every try under load would start over).
        return await asyncio.shield(self._start_build(ctx, model, viewer, snapshot, tag, key))

    async def _follows(self, ctx: AppContext, viewer: str) -> str:
        """A checksum of who the viewer follows: part of a list's identity (a follow makes a
        new list). Computed again only when the followees' cached tuple is another."""
        owners = await followees(ctx, viewer)
        known = self._checksums.get(viewer)
        if known is not None and known[0] is owners:
            return known[1]
        checksum = f"{zlib.crc32(chr(10).join(sorted(owners)).encode()):08x}"
        self._checksums.put(viewer, (owners, checksum))
        return checksum

    def _recent(self, feed: PersonalFeed) -> bool:
        age_ms = now_ms() - feed.snapshot.built_at
        return age_ms <= REUSE_CHECKS * self.check_seconds * 1000

    def _start_build(
        self,
        ctx: AppContext,
        model: artifact.RetrievalModel,
        viewer: str,
        snapshot: Snapshot,
        tag: str,
        events: str | None,
    ) -> asyncio.Task[PersonalFeed | None]:
        """The task building this list: the one under way, or a new one."""
        key = (snapshot.sid, tag, viewer)
        running = self._building.get(key)
        if running is not None:
            return running
        build = self._load_or_build(ctx, model, viewer, snapshot, tag, events)
        task = asyncio.get_running_loop().create_task(build)
        self._building[key] = task

        def done(task: asyncio.Task[PersonalFeed | None]) -> None:
            self._building.pop(key, None)
            if not task.cancelled() and task.exception() is not None:
                log.warning("personal for-you list not built: %r", task.exception())

        task.add_done_callback(done)
        return task

    async def _load_or_build(
        self,
        ctx: AppContext,
        model: artifact.RetrievalModel,
        viewer: str,
        snapshot: Snapshot,
        tag: str,
        events: str | None,
    ) -> PersonalFeed | None:
        """The list of (snapshot, tag) for `viewer`: another process's, or a new one (None: a
        viewer the model does not know, with too few events to fold in)."""
        feed = await self.pinned(ctx, viewer, snapshot, tag)
        if feed is None:
            async with self._builds:
                feed = await self._build(ctx, model, viewer, snapshot, tag, events)
            if feed is None:
                return None
            stored = _Stored(
                tag,
                feed.items[len(snapshot.items) :],
                np.asarray(feed.order, dtype="<i4").tobytes(),
            )
            key = list_key(snapshot.sid, tag, viewer)
            await ctx.cache.set(key, _ENCODER.encode(stored), SNAPSHOT_SECONDS)
            self._lists.put((snapshot.sid, tag, viewer), feed)
        self._latest.put(viewer, feed)
        return feed

    async def pinned(
        self, ctx: AppContext, viewer: str, snapshot: Snapshot, tag: str
    ) -> PersonalFeed | None:
        """The list a cursor's session pages through (its `tag`: the model version and the
        viewer's followees), or None when it has expired."""
        memo = (snapshot.sid, tag, viewer)
        feed = self._lists.get(memo)
        if feed is not None:
            return feed
        data = await ctx.cache.get(list_key(*memo))
        if data is None:
            return None
        stored = _DECODER.decode(data)
        order = np.frombuffer(stored.order, dtype="<i4").tolist()
        feed = PersonalFeed(stored.tag, snapshot, [*snapshot.items, *stored.extras], order)
        self._lists.put(memo, feed)
        return feed

    async def _build(
        self,
        ctx: AppContext,
        model: artifact.RetrievalModel,
        viewer: str,
        snapshot: Snapshot,
        tag: str,
        events: str | None,
    ) -> PersonalFeed | None:
        folded = None
        if events is not None:  # a viewer the model does not know: their folded-in factor
            found = await self.folds.factor(ctx, model, viewer, events)
            if found is None:
                return None
            folded = found.factor
        index, snapshot_codes = self._snapshot_codes(model, snapshot)
        # The CPU parts of a build (milliseconds: the catalogue's top-K, the ranker, the
        # order) run in a thread, so the event loop goes on serving pages meanwhile.
        top = await asyncio.to_thread(self._top_items, model, viewer, folded)
        wanted = [v for v in top if v not in index]
        taken = set(wanted)
        for _, video_id in await newest_followed(ctx, viewer, None, FOLLOWED_NEW):
            if video_id not in index and video_id not in taken:
                wanted.append(video_id)
                taken.add(video_id)
        rows = await self._servable.rows(ctx, wanted)
        now = now_ms()
        extras: list[ranking.Candidate] = []
        penalties: list[float] = []
        for video_id in wanted:
            stats = rows.get(video_id)
            if stats is not None:
                v1 = ranking.score(stats, now)
                extras.append(ranking.Candidate(video_id, stats.owner_id, v1))
                penalties.append(report_penalty(stats.report_count))
        codes = np.concatenate([snapshot_codes, model.codes([c.id for c in extras])])
        everyone = [*snapshot.items, *extras]
        ids = [c.id for c in everyone]
        scores = await self.scoring.scores(ctx, model, viewer, ids, codes, folded)
        if scores is None:  # the model stopped knowing the viewer: v1 places
            scores = np.full(len(codes), np.nan, dtype=np.float32)
        order = await asyncio.to_thread(personal_order, snapshot.items, extras, scores, penalties)
        return PersonalFeed(tag, snapshot, everyone, order)

    def _top_items(
        self,
        model: artifact.RetrievalModel,
        viewer: str,
        folded: npt.NDArray[np.float32] | None,
    ) -> list[str]:
        if folded is not None:  # built once per events key: nothing to keep
            return model.items[model.top_codes_for(folded, self.candidates)].tolist()  # type: ignore[no-any-return]
        memo = (model.version, viewer)
        top = self._top.get(memo)
        if top is None:
            top = model.top_codes(viewer, self.candidates)
            if top is None:
                return []
            self._top.put(memo, top.astype(np.int32))
        return model.items[top].tolist()  # type: ignore[no-any-return]

    def _snapshot_codes(
        self, model: artifact.RetrievalModel, snapshot: Snapshot
    ) -> tuple[dict[str, int], npt.NDArray[np.int64]]:
        memo = (snapshot.sid, model.version)
        found = self._codes.get(memo)
        if found is None:
            ids = [c.id for c in snapshot.items]
            found = ({v: i for i, v in enumerate(ids)}, model.codes(ids))
            self._codes[memo] = found
            while len(self._codes) > SNAPSHOT_CODES:
                self._codes.popitem(last=False)
        return found
