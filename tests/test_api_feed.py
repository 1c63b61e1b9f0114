"""`GET /v1/feed` through the real app: embedded (SQLite, memory cache) and production
(PostgreSQL + Redis), with data seeded straight into the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from litestar.testing import TestClient
from sqlalchemy import insert, update

from api.core.db import now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import follows, seen, videos
from api.feed import store as feedstore
from api.feed import trending
from api.feed.ranking import HOUR_MS
from tests.support.api import api_client, auth, register, seed_video
from tests.support.pg import fresh_database
from tests.support.services import redis_database

# Generous, so the ranked path is never the one timing out on a busy test machine.
SLOW_OK_MS = 20_000
# Tests that change rows straight in the database (not through the API) read without the
# in-process caches, whose TTLs bound how long another writer's change takes to show
# (api/core/settings.py); changes made through the API evict them at once (tested below).
UNCACHED = {"video_cache_seconds": 0, "creator_videos_cache_seconds": 0}


def settings_of(client: TestClient[Any]) -> Settings:
    return client.app.state.ctx.settings  # type: ignore[no-any-return]


def seed(client: TestClient[Any], owner: str, *, age_hours: float = 1, **fields: Any) -> str:
    published_at = now_ms() - int(age_hours * HOUR_MS)
    return seed_video(settings_of(client), owner, published_at=published_at, **fields)


def popular(n: int) -> dict[str, int]:
    """Counters of an established video; a larger `n` scores higher."""
    return {"impression_count": 2000, "completion_count": 200 + 10 * n, "like_count": 100 + n}


def execute(client: TestClient[Any], *statements: Any) -> None:
    engine = sync_engine(settings_of(client))
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)
    engine.dispose()


def follow(client: TestClient[Any], follower: str, followee: str) -> None:
    execute(
        client,
        insert(follows).values(follower_id=follower, followee_id=followee, created_at=now_ms()),
    )


def mark_seen(client: TestClient[Any], user: str, video: str, not_interested: bool = False) -> None:
    execute(
        client,
        insert(seen).values(
            user_id=user, video_id=video, not_interested=not_interested, at=now_ms()
        ),
    )


def get_feed(client: TestClient[Any], token: str | None = None, **params: Any) -> dict[str, Any]:
    headers = auth(token) if token else {}
    response = client.get("/v1/feed", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"videos", "next_cursor", "source", "personal"}
    return body


def read_all(
    client: TestClient[Any], token: str | None, feed_type: str, limit: int, most: int = 500
) -> tuple[list[dict[str, Any]], set[str]]:
    """Every page until the feed ends; returns the videos and the sources seen."""
    items: list[dict[str, Any]] = []
    sources: set[str] = set()
    cursor = None
    while len(items) < most:
        params: dict[str, Any] = {"type": feed_type, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = get_feed(client, token, **params)
        items += body["videos"]
        sources.add(body["source"])
        assert len(body["videos"]) <= limit
        cursor = body["next_cursor"]
        if cursor is None:
            return items, sources
    raise AssertionError(f"the feed did not end after {most} items")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [v["id"] for v in items]


def assert_diverse(items: list[dict[str, Any]], window: int = 5) -> None:
    owners = [v["author"]["id"] for v in items]
    for start in range(len(owners)):
        chunk = owners[start : start + window]
        assert len(set(chunk)) == len(chunk), f"creator repeats in items {start}..: {chunk}"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with api_client(tmp_path, feed_timeout_ms=SLOW_OK_MS) as client:
        yield client


def test_for_you_keeps_a_prolific_creator_to_one_in_five_across_pages(
    embedded: TestClient[Any],
) -> None:
    client = embedded
    prolific, _ = register(client, "prolific")
    _, token = register(client, "viewer")
    top = {seed(client, prolific, **popular(100 + i)) for i in range(30)}
    others = {}
    for c in range(12):
        owner, _ = register(client, f"creator{c}")
        for k in range(3):
            others[seed(client, owner, **popular(c * 3 + k))] = owner

    served: list[dict[str, Any]] = []
    cursor = None
    for limit in (7, 3, 10, 1, 9, 10):
        params: dict[str, Any] = {"type": "for_you", "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = get_feed(client, token, **params)
        assert body["source"] == "ranked"
        assert len(body["videos"]) == limit
        served += body["videos"]
        cursor = body["next_cursor"]
    assert len(served) == 40
    assert len(set(ids(served))) == 40, "a page repeated an item of a previous page"
    assert_diverse(served)
    # The ranking still puts the prolific creator's videos first: one in every five slots.
    assert sum(v["id"] in top for v in served) == 8
    assert served[0]["id"] in top
    assert set(ids(served)) <= top | set(others)


def test_a_fresh_video_gets_a_slot_in_the_first_eight(embedded: TestClient[Any]) -> None:
    client = embedded
    for c in range(16):
        owner, _ = register(client, f"star{c}")
        seed(client, owner, **popular(c))
    newcomer, _ = register(client, "newcomer")
    fresh = seed(client, newcomer, age_hours=0)
    _, token = register(client, "viewer")

    first = get_feed(client, token, type="for_you", limit=8)
    assert first["source"] == "ranked"
    assert fresh in ids(first["videos"])
    store = client.app.state.feed_store
    snapshot = client.blocking_portal.call(store.current)
    order = [c.id for c in snapshot.items]
    assert order.index(fresh) >= 8, "the fresh video must need the cold slot to get in"


def test_seen_marked_and_own_videos_never_appear(embedded: TestClient[Any]) -> None:
    client = embedded
    viewer, token = register(client, "viewer")
    own = [seed(client, viewer, **popular(500 + i)) for i in range(3)]
    videos_by_owner = []
    for c in range(12):
        owner, _ = register(client, f"creator{c}")
        videos_by_owner.append(seed(client, owner, **popular(c)))
    watched, marked = videos_by_owner[:4], videos_by_owner[-2:]
    for video in watched:
        mark_seen(client, viewer, video)
    for video in marked:
        mark_seen(client, viewer, video, not_interested=True)

    anonymous, sources = read_all(client, None, "for_you", 4)
    assert sources == {"ranked"}
    assert set(own) | set(watched) | set(marked) <= set(ids(anonymous))

    personal, sources = read_all(client, token, "for_you", 4)
    assert sources == {"ranked"}
    assert set(ids(personal)) == set(videos_by_owner) - set(watched) - set(marked)
    assert_diverse(personal)


def test_following_is_newest_first_and_pages_without_gaps(embedded: TestClient[Any]) -> None:
    client = embedded
    viewer, token = register(client, "viewer")
    alice, _ = register(client, "alice")
    bob, _ = register(client, "bob")
    carol, _ = register(client, "carol")
    follow(client, viewer, alice)
    follow(client, viewer, bob)
    same_time = now_ms() - 5 * HOUR_MS
    expected = []
    for i in range(7):
        expected.append((now_ms() - i * HOUR_MS, seed(client, alice, age_hours=i)))
        expected.append((now_ms() - i * HOUR_MS - 1, seed(client, bob, age_hours=i + 0.5)))
    for _ in range(3):  # ties on published_at are broken by id
        expected.append((same_time, seed_video(settings_of(client), bob, published_at=same_time)))
    for i in range(4):
        seed(client, carol, age_hours=i, **popular(900))
    for status, privacy in (("published", "unlisted"), ("published", "private"),
                            ("deleted", "public"), ("processing", "public")):  # fmt: skip
        seed(client, alice, age_hours=0, status=status, privacy=privacy)

    items, sources = read_all(client, token, "following", 4)
    assert sources == {"following"}
    assert len(ids(items)) == len(set(ids(items))) == len(expected)
    published = [(v["published_at"], v["id"]) for v in items]
    assert published == sorted(published, reverse=True)
    assert set(ids(items)) == {video for _, video in expected}
    assert {v["author"]["id"] for v in items} == {alice, bob}

    response = client.get("/v1/feed", params={"type": "following"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_hidden_videos_never_appear_in_any_feed(tmp_path: Path) -> None:
    def hidden_everywhere(client: TestClient[Any], token: str, hidden: set[str]) -> set[str]:
        sources: set[str] = set()
        for feed_type in ("following", "for_you"):
            items, found = read_all(client, token, feed_type, 5)
            sources |= found
            assert not set(ids(items)) & hidden
        return sources

    for timeout_ms, source in ((SLOW_OK_MS, "ranked"), (0, "trending")):
        with api_client(tmp_path / source, feed_timeout_ms=timeout_ms, **UNCACHED) as client:
            viewer, token = register(client, "viewer")
            creator, _ = register(client, "creator")
            follow(client, viewer, creator)
            visible = {seed(client, creator, age_hours=i, **popular(i)) for i in range(6)}
            hidden = {
                seed(client, creator, status=status, privacy=privacy, **popular(1000))
                for status, privacy in (
                    ("published", "unlisted"), ("published", "private"),
                    ("deleted", "public"), ("processing", "public"), ("rejected", "public"),
                )
            }  # fmt: skip
            assert hidden_everywhere(client, token, hidden) == {"following", source}
            # Deleted after the candidates were cached: gone from the very next page.
            gone = sorted(visible)[0]
            execute(client, update(videos).where(videos.c.id == gone).values(status="deleted"))
            assert hidden_everywhere(client, token, hidden | {gone}) == {"following", source}


def test_a_video_deleted_after_caching_is_dropped_and_the_page_topped_up(
    tmp_path: Path,
) -> None:
    with api_client(tmp_path, feed_timeout_ms=SLOW_OK_MS, **UNCACHED) as client:
        deleted_after_caching(client)


def deleted_after_caching(client: TestClient[Any]) -> None:
    _, token = register(client, "viewer")
    for c in range(12):
        owner, _ = register(client, f"creator{c}")
        seed(client, owner, **popular(c))
    before = get_feed(client, token, type="for_you", limit=6)
    assert before["source"] == "ranked"
    doomed = ids(before["videos"])[:2]
    execute(client, update(videos).where(videos.c.id.in_(doomed)).values(status="deleted"))
    after = get_feed(client, token, type="for_you", limit=6)
    assert after["source"] == "ranked"
    assert len(after["videos"]) == 6
    assert not set(ids(after["videos"])) & set(doomed)
    assert ids(after["videos"])[:4] == ids(before["videos"])[2:]


@pytest.mark.parametrize("pool_size", [trending.POOL_SIZE, 4])
def test_fallback_serves_trending_when_the_ranked_path_is_slow(
    tmp_path: Path, pool_size: int
) -> None:
    with api_client(tmp_path, feed_timeout_ms=0) as client:
        # A small pool: pages reach past it and continue with the query.
        client.app.state.trending = trending.TrendingPools(pool_size)
        viewer, token = register(client, "viewer")
        creators = [register(client, f"creator{c}")[0] for c in range(4)]
        recent = {}
        for n, owner in enumerate(creators * 3):
            recent[seed(client, owner, age_hours=n, like_count=10 * n, view_count=n)] = 11 * n
        old = seed(client, creators[0], age_hours=24 * 9, like_count=10_000, view_count=10_000)
        own = seed(client, viewer, age_hours=1, like_count=500)
        watched = max(recent, key=recent.__getitem__)
        mark_seen(client, viewer, watched)

        items, sources = read_all(client, token, "for_you", 5)
        assert sources == {"trending"}
        expected = sorted((v for v in recent if v != watched), key=lambda v: -recent[v])
        assert ids(items) == [*expected, old]
        assert own not in ids(items)


def test_a_corrupt_cache_entry_falls_back_then_heals(embedded: TestClient[Any]) -> None:
    client = embedded
    for c in range(6):
        owner, _ = register(client, f"creator{c}")
        seed(client, owner, **popular(c))
    cache = client.app.state.ctx.cache
    portal = client.blocking_portal
    portal.call(cache.set, feedstore.KEY_CURRENT, b"broken", 60)
    portal.call(cache.set, feedstore.snapshot_key("broken"), b"\xc1 not msgpack", 60)
    assert get_feed(client, type="for_you")["source"] == "trending"
    assert wait_for_source(client, "ranked")


def wait_for_source(client: TestClient[Any], source: str, deadline_s: float = 20) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if get_feed(client, type="for_you")["source"] == source:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize(
    "params",
    [
        {"type": "for_you", "limit": 0},
        {"type": "for_you", "limit": 51},
        {"type": "sideways"},
        {"type": "for_you", "cursor": "not a cursor!"},
        {"type": "for_you", "cursor": "eyJ0IjoieCJ9"},  # {"t":"x"}: unknown cursor kind
    ],
)
def test_bad_parameters_are_rejected_with_the_error_shape(
    embedded: TestClient[Any], params: dict[str, Any]
) -> None:
    response = embedded.get("/v1/feed", params=params)
    assert response.status_code in (400, 422), response.text
    assert set(response.json()["error"]) == {"code", "message"}


def test_a_cursor_only_pages_its_own_feed(embedded: TestClient[Any]) -> None:
    client = embedded
    viewer, token = register(client, "viewer")
    for c in range(4):
        owner, _ = register(client, f"creator{c}")
        follow(client, viewer, owner)
        seed(client, owner, **popular(c))
    for_you = get_feed(client, token, type="for_you", limit=2)["next_cursor"]
    following = get_feed(client, token, type="following", limit=2)["next_cursor"]
    assert for_you and following
    for feed_type, cursor in (("following", for_you), ("for_you", following)):
        response = client.get(
            "/v1/feed", params={"type": feed_type, "cursor": cursor}, headers=auth(token)
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "bad_request"


def test_ranked_feed_on_postgresql_and_redis_shared_by_two_api_processes(
    tmp_path: Path,
) -> None:
    with fresh_database() as database_url, redis_database() as redis_url:
        production = {
            "mode": "production",
            "database_url": database_url,
            "redis_url": redis_url,
            "secret_key": "feed-test-secret",
            "feed_timeout_ms": SLOW_OK_MS,
        }
        with (
            api_client(tmp_path / "a", **production) as first,
            api_client(tmp_path / "b", **production) as second,
        ):
            viewer, token = register(first, "viewer")
            prolific, _ = register(first, "prolific")
            top = [seed(first, prolific, **popular(100 + i)) for i in range(4)]
            owners = [register(first, f"creator{c}")[0] for c in range(8)]
            rest = [seed(first, owner, **popular(c)) for c, owner in enumerate(owners * 2)]
            mark_seen(first, viewer, top[0])
            mark_seen(first, viewer, rest[-1], not_interested=True)
            own = seed(first, viewer, **popular(5000))

            # Pages alternate between the two processes: one snapshot, shared through Redis.
            served: list[dict[str, Any]] = []
            cursor = None
            for page in range(10):
                client = (first, second)[page % 2]
                params: dict[str, Any] = {"type": "for_you", "limit": 4}
                if cursor:
                    params["cursor"] = cursor
                body = get_feed(client, token, **params)
                assert body["source"] == "ranked"
                served += body["videos"]
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert cursor is None
            assert len(set(ids(served))) == len(served)
            assert set(ids(served)) == (set(top) | set(rest)) - {top[0], rest[-1]}
            assert own not in ids(served)
            assert_diverse(served)
            stores = [c.app.state.feed_store for c in (first, second)]
            sids = {
                c.blocking_portal.call(s.current).sid
                for c, s in zip((first, second), stores, strict=True)
            }
            assert len(sids) == 1

            # A corrupt shared entry: both processes fall back, then the cache is rebuilt.
            keys = redis.Redis.from_url(redis_url)
            keys.set("reelforge:" + feedstore.KEY_CURRENT, b"broken", ex=60)
            keys.set("reelforge:" + feedstore.snapshot_key("broken"), b"\xc1garbage", ex=60)
            keys.close()
            assert get_feed(second, type="for_you")["source"] == "trending"
            assert wait_for_source(second, "ranked")
            assert wait_for_source(first, "ranked")
