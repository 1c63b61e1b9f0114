"""The API's caches: in-process TTL maps (tokens, video views, followees, creators' newest
videos), the viewers' seen sets in the shared cache, and the for-you snapshot kept fresh.

Changes made through an API process evict its own entries at once; another process sees them
within the documented TTLs (api/core/settings.py). The cross-process cases run two app instances on
a real PostgreSQL database and a real Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import insert, select

from api.core.cache import MemoryCache, RedisCache
from api.core.db import now_ms, sync_engine
from api.core.tables import follows, seen, videos
from api.core.ttlcache import TTLCache
from api.feed.following import CREATOR_DEPTH, CreatorVideos, merge_newest
from api.feed.ranking import HOUR_MS
from api.feed.seen import FILLED, seen_key
from api.feed.trending import Entry, Pool, from_pool
from tests.support.api import api_client, auth, register, seed_video
from tests.support.pg import fresh_database
from tests.support.services import redis_database

SLOW_OK_MS = 20_000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- TTLCache ------------------------------------------------------------------------------


def test_ttl_cache_entries_expire() -> None:
    clock = Clock()
    cache: TTLCache[str, int] = TTLCache(2.0, clock=clock)
    cache.put("a", 1)
    cache.put("b", 2, ttl_seconds=0.5)  # a shorter life for this one (a token's expiry)
    cache.put("c", 3, ttl_seconds=60)  # never longer than the cache's own TTL
    clock.now += 0.4
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, 2, 3)
    clock.now += 0.2
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    clock.now += 1.5
    assert (cache.get("a"), cache.get("c")) == (None, None)
    assert cache.get("a", "missing") == "missing"


def test_ttl_cache_is_bounded_and_evicts() -> None:
    clock = Clock()
    cache: TTLCache[int, int | None] = TTLCache(10.0, max_items=100, clock=clock)
    for i in range(1000):
        cache.put(i, i)
        assert len(cache) <= 100
    assert cache.get(999) == 999 and cache.get(0) is None
    cache.pop(999)
    cache.pop_many([998, 997, 12345])
    assert cache.get(999) is None and cache.get(998) is None and cache.get(996) == 996
    cache.put(5000, None)  # a cached absence is not a miss
    assert cache.get(5000, "missing") is None
    cache.clear()
    assert len(cache) == 0


def test_ttl_zero_disables_the_cache() -> None:
    cache: TTLCache[str, int] = TTLCache(0)
    cache.put("a", 1)
    assert not cache.enabled and cache.get("a") is None and len(cache) == 0


# --- merging creators' lists (the following feed) -------------------------------------------


def listing(*keys: tuple[int, str], complete: bool = True) -> CreatorVideos:
    return CreatorVideos(tuple(sorted(keys)), complete)


A = listing((50, "a5"), (40, "a4"), (30, "a3"))
B = listing((45, "b4"), (35, "b3"), (30, "b2"), complete=False)  # older ones exist
C = listing((30, "c3"), (10, "c1"))


@pytest.mark.parametrize(
    ("lists", "before", "n", "exclude", "expected"),
    [
        ("ABC", None, 3, (), [(50, "a5"), (45, "b4"), (40, "a4")]),
        # Ties on published_at go by id, newest first.
        (
            "ABC",
            None,
            6,
            (),
            [(50, "a5"), (45, "b4"), (40, "a4"), (35, "b3"), (30, "c3"), (30, "b2")],
        ),
        ("ABC", (40, "a4"), 2, (), [(35, "b3"), (30, "c3")]),
        ("ABC", (40, "a4"), 2, ("b3",), [(30, "c3"), (30, "b2")]),
        # Reaching below B's oldest kept video: B's older ones are unknown, so undecided.
        ("ABC", None, 7, (), None),
        ("ABC", (30, "b2"), 1, (), None),
        # Only complete lists: decided however deep the page goes, even when short.
        ("AC", (30, "a3"), 5, (), [(10, "c1")]),
        ("AC", (10, "c1"), 5, (), []),
    ],
)
def test_merge_newest(
    lists: str,
    before: tuple[int, str] | None,
    n: int,
    exclude: tuple[str, ...],
    expected: list[tuple[int, str]] | None,
) -> None:
    chosen = [{"A": A, "B": B, "C": C}[name] for name in lists]
    assert merge_newest(chosen, before, n, set(exclude)) == expected


# --- tokens --------------------------------------------------------------------------------


@pytest.fixture
def production(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with fresh_database() as database_url, redis_database() as redis_url:
        yield {
            "mode": "production",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": "cache-test-secret",
            "feed_timeout_ms": SLOW_OK_MS,
        }


def follow_status(client: TestClient[Any], token: str, user_id: str) -> int:
    return client.post(f"/v1/users/{user_id}/follow", headers=auth(token)).status_code


def test_logout_evicts_the_token_here_and_elsewhere_within_the_ttl(
    tmp_path: Path, production: dict[str, Any]
) -> None:
    with (
        api_client(tmp_path / "a", **production) as first,
        api_client(tmp_path / "b", **production, token_cache_seconds=1.0) as second,
        api_client(tmp_path / "c", **production, token_cache_seconds=0) as third,
    ):
        target, _ = register(first, "target")
        _, token = register(first, "leaving")
        for client in (first, second, third):  # each process has looked the token up
            assert follow_status(client, token, target) == 200
        assert first.post("/v1/auth/logout", headers=auth(token)).status_code == 204
        # The process that served the logout and one without a cache refuse it at once...
        assert follow_status(first, token, target) == 401
        assert follow_status(third, token, target) == 401
        # ...another process may honor it until its cached entry expires.
        time.sleep(1.1)
        assert follow_status(second, token, target) == 401


def test_a_cached_token_still_expires_on_time(tmp_path: Path) -> None:
    with api_client(tmp_path, token_ttl_seconds=1, token_cache_seconds=60) as client:
        target, _ = register(client, "target")
        _, token = register(client, "shortlived")
        assert follow_status(client, token, target) == 200
        time.sleep(1.2)
        assert follow_status(client, token, target) == 401


# --- views, followees and creators' lists: evicted by changes made through the API ----------


def feed(client: TestClient[Any], token: str, feed_type: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"type": feed_type, **params}, headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [v["id"] for v in body["videos"]]


def seed(client: TestClient[Any], owner: str, age_hours: float = 1, **fields: Any) -> str:
    settings = client.app.state.ctx.settings
    published_at = now_ms() - int(age_hours * HOUR_MS)
    return seed_video(settings, owner, published_at=published_at, **fields)


def test_changes_through_the_api_show_at_once_with_the_caches_on(tmp_path: Path) -> None:
    with api_client(tmp_path, feed_timeout_ms=SLOW_OK_MS) as client:
        settings = client.app.state.ctx.settings
        assert settings.video_cache_seconds > 0 and settings.followees_cache_seconds > 0
        _, token = register(client, "viewer")
        creator, creator_token = register(client, "creator")
        videos = [seed(client, creator, age_hours=i) for i in range(3)]

        assert ids(feed(client, token, "following")) == []
        assert client.post(f"/v1/users/{creator}/follow", headers=auth(token)).status_code == 200
        assert ids(feed(client, token, "following")) == videos
        ranked = feed(client, token, "for_you")  # one creator: one video per five slots
        assert ranked["source"] == "ranked" and ids(ranked) == videos[:1]

        liked = client.post(f"/v1/videos/{videos[0]}/like", headers=auth(token)).json()
        assert liked["like_count"] == 1
        for feed_type in ("following", "for_you"):
            shown = {v["id"]: v for v in feed(client, token, feed_type)["videos"]}
            assert shown[videos[0]]["like_count"] == 1, feed_type

        gone = client.delete(f"/v1/videos/{videos[0]}", headers=auth(creator_token))
        assert gone.status_code == 204
        assert ids(feed(client, token, "following")) == videos[1:]
        assert ids(feed(client, token, "for_you")) == videos[1:2]

        assert client.delete(f"/v1/users/{creator}/follow", headers=auth(token)).status_code == 200
        assert ids(feed(client, token, "following")) == []


def test_another_writer_shows_within_the_ttls(tmp_path: Path) -> None:
    """Rows written straight to the database (another process, a worker) appear once the
    caches' entries expire: here with 0.3 s TTLs."""
    short = {"followees_cache_seconds": 0.3, "creator_videos_cache_seconds": 0.3}
    with api_client(tmp_path, video_cache_seconds=0.3, **short) as client:
        viewer, token = register(client, "viewer")
        creator, _ = register(client, "creator")
        first = seed(client, creator)
        assert ids(feed(client, token, "following")) == []
        engine = sync_engine(client.app.state.ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                insert(follows).values(follower_id=viewer, followee_id=creator, created_at=now_ms())
            )
        engine.dispose()
        time.sleep(0.4)
        assert ids(feed(client, token, "following")) == [first]
        second = seed(client, creator, age_hours=0)  # what a worker publishing would do
        time.sleep(0.4)
        assert ids(feed(client, token, "following")) == [second, first]


def test_following_pages_past_the_kept_lists_without_gaps(tmp_path: Path) -> None:
    with api_client(tmp_path) as client:
        _, token = register(client, "viewer")
        prolific, _ = register(client, "prolific")
        quiet, _ = register(client, "quiet")
        for creator in (prolific, quiet):
            assert (
                client.post(f"/v1/users/{creator}/follow", headers=auth(token)).status_code == 200
            )
        expected = [seed(client, prolific, age_hours=i / 60) for i in range(2 * CREATOR_DEPTH + 5)]
        expected += [seed(client, quiet, age_hours=i + 0.5) for i in range(4)]
        engine = sync_engine(client.app.state.ctx.settings)
        with engine.connect() as conn:
            rows = conn.execute(select(videos.c.published_at, videos.c.id)).all()
        engine.dispose()
        order = [video_id for _, video_id in sorted(map(tuple, rows), reverse=True)]
        assert sorted(order) == sorted(expected)
        served: list[str] = []
        cursor = None
        while True:
            params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
            body = feed(client, token, "following", **params)
            served += ids(body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert served == order


# --- the seen set ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_cache_set_operations_and_expiry(kind: str) -> None:
    async def exercise(cache: Any) -> None:
        assert await cache.smembers("s") == set()
        await cache.sadd("s", ["a"], 0.3)
        await cache.sadd("s", ["b", "c"], 0.3)
        await cache.sadd("s", [], 0.3)
        assert await cache.smembers("s") == {"a", "b", "c"}
        await asyncio.sleep(0.4)
        assert await cache.smembers("s") == set()
        await cache.sadd("t", ["a"], 5)
        await cache.delete("t")
        assert await cache.smembers("t") == set()
        await cache.close()

    if kind == "memory":
        asyncio.run(exercise(MemoryCache()))
    else:
        with redis_database() as url:
            asyncio.run(exercise(RedisCache(url)))


def popular(n: int) -> dict[str, int]:
    return {"impression_count": 2000, "completion_count": 200 + 10 * n, "like_count": 100 + n}


def test_watched_videos_leave_the_feed_on_every_api_process(
    tmp_path: Path, production: dict[str, Any]
) -> None:
    with (
        api_client(tmp_path / "a", **production) as first,
        api_client(tmp_path / "b", **production) as second,
    ):
        _, token = register(first, "viewer")
        videos = []
        for c in range(10):
            owner, _ = register(first, f"creator{c}")
            videos.append(seed(first, owner, **popular(c)))
        # The second process reads the viewer's seen set first (loaded from the table: empty).
        before = feed(second, token, "for_you", limit=10)
        assert before["source"] == "ranked" and set(ids(before)) == set(videos)
        watched = ids(before)[:3]
        events = [
            {"event_id": f"e{i}", "video_id": video, "type": kind}
            for i, (video, kind) in enumerate(
                zip(watched, ("play", "skip", "not_interested"), strict=True)
            )
        ]
        events.append({"event_id": "imp", "video_id": ids(before)[3], "type": "impression"})
        posted = first.post("/v1/events", json={"events": events}, headers=auth(token))
        assert posted.status_code == 200 and posted.json()["accepted"] == 4
        # The events went through the first process; the second never shows them again.
        for client in (second, first):
            after = feed(client, token, "for_you", limit=10)
            assert after["source"] == "ranked"
            assert set(ids(after)) == set(videos) - set(watched)


def test_the_seen_set_reloads_from_the_table_once_expired(tmp_path: Path) -> None:
    with api_client(tmp_path, feed_timeout_ms=SLOW_OK_MS, seen_cache_seconds=1) as client:
        viewer, token = register(client, "viewer")
        owner, _ = register(client, "creator")
        video = seed(client, owner, **popular(1))
        other = seed(client, register(client, "creator2")[0], **popular(2))
        assert set(ids(feed(client, token, "for_you"))) == {video, other}
        cache = client.app.state.ctx.cache
        key = seen_key(viewer)
        assert FILLED in client.blocking_portal.call(cache.smembers, key)
        # A `seen` row written behind the API's back shows once the set expires.
        engine = sync_engine(client.app.state.ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                insert(seen).values(user_id=viewer, video_id=video, not_interested=False, at=1)
            )
        engine.dispose()
        time.sleep(1.1)
        assert ids(feed(client, token, "for_you")) == [other]


# --- the for-you snapshot is rebuilt off the request path -------------------------------------


def test_an_old_snapshot_is_rebuilt_in_the_background(tmp_path: Path) -> None:
    with api_client(tmp_path, feed_timeout_ms=SLOW_OK_MS, feed_cache_seconds=60) as client:
        _, token = register(client, "viewer")
        owner, _ = register(client, "creator")
        first_video = seed(client, owner, **popular(1))
        store = client.app.state.feed_store
        portal = client.blocking_portal
        portal.call(store.refresh_if_due)  # no snapshot yet: the first is built on demand
        assert ids(feed(client, token, "for_you")) == [first_video]
        built = portal.call(store.current)
        portal.call(store.refresh_if_due)  # fresh: kept
        assert portal.call(store.current).sid == built.sid

        later = seed(client, register(client, "creator2")[0], **popular(5))
        aged = type(built)(built.sid, built.built_at - 59_000, built.items, built.cold)
        portal.call(store.publish, aged)
        portal.call(store.refresh_if_due)  # old enough: rebuilt, requests never waited
        rebuilt = portal.call(store.current)
        assert rebuilt.sid != built.sid
        assert set(ids(feed(client, token, "for_you"))) == {first_video, later}


# --- the trending pool -------------------------------------------------------------------------


def trending_pool(*entries: tuple[int, int, str, str], complete: bool) -> Pool:
    ordered = tuple(Entry((r, e, v), o) for r, e, v, o in sorted(entries, reverse=True))
    return Pool(1, ordered, tuple(x.key for x in reversed(ordered)), complete, expires=0)


POOL = [(1, 90, "v9", "u1"), (1, 50, "v5", "u2"), (1, 50, "v4", "u3"), (0, 99, "v1", "u1")]


@pytest.mark.parametrize(
    ("complete", "after", "n", "exclude", "owner", "expected"),
    [
        (False, None, 2, (), None, ["v9", "v5"]),
        (False, (1, 50, "v5"), 2, (), None, ["v4", "v1"]),
        (False, None, 2, ("v5",), "u1", None),  # runs out: the pool cannot tell
        (True, None, 3, ("v5",), "u1", ["v4"]),  # it holds every video: the end
        (False, (0, 99, "v1"), 1, (), None, None),
        (True, (0, 99, "v1"), 1, (), None, []),
    ],
)
def test_trending_from_pool(
    complete: bool,
    after: tuple[int, int, str] | None,
    n: int,
    exclude: tuple[str, ...],
    owner: str | None,
    expected: list[str] | None,
) -> None:
    page = from_pool(trending_pool(*POOL, complete=complete), after, n, set(exclude), owner)
    assert (None if page is None else [e.id for e in page]) == expected


def test_without_the_shared_cache_the_feed_falls_back_and_still_hides_seen_videos(
    tmp_path: Path, production: dict[str, Any]
) -> None:
    unreachable = {**production, "redis_url": "redis://127.0.0.1:1/0"}  # nothing listens
    with api_client(tmp_path, **unreachable) as client:
        viewer, token = register(client, "viewer")
        videos = [seed(client, register(client, f"creator{c}")[0], **popular(c)) for c in range(4)]
        engine = sync_engine(client.app.state.ctx.settings)
        with engine.begin() as conn:
            conn.execute(
                insert(seen).values(user_id=viewer, video_id=videos[0], not_interested=False, at=1)
            )
        engine.dispose()
        body = feed(client, token, "for_you")
        assert body["source"] == "trending"
        assert set(ids(body)) == set(videos[1:])
