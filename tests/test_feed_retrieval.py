"""A viewer's own for-you list from the model's whole catalogue (issue 17, "Retrieval";
api/feed/personal.py): videos outside the snapshot that the viewer's taste picks, and their
followees' newest, are served under the same rules (never an unservable one), pages never
repeat, a session keeps its list across a model swap, and a failing model means trending.

The snapshot is made small (`api.feed.store.CANDIDATES`) so that a few seeded videos lie
outside it, as most of a 100,000-video catalogue lies outside a 1,000-video snapshot."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar.testing import TestClient

from api.core.db import now_ms
from api.feed import personal, store
from api.feed.cursors import FEED_CURSORS, RankedCursor
from api.feed.ranking import HOUR_MS, Candidate
from recsys import artifact
from tests.support.api import api_client, auth, register, seed_video

SLOW_OK_MS = 20_000
SNAPSHOT = 3


@pytest.fixture(autouse=True)
def small_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "CANDIDATES", SNAPSHOT)


def write_model(root: Path, viewers: list[str], scores: dict[str, float]) -> str:
    """A one-factor model: each viewer's vector is [1], each video's is [its score]."""
    videos = list(scores)
    return artifact.save(
        root,
        users=np.array(viewers),
        items=np.array(videos),
        user_factors=np.ones((len(viewers), 1)),
        item_factors=np.array([[scores[v]] for v in videos]),
        popular=np.arange(len(videos)),
    )


def page(
    client: TestClient[Any], token: str, cursor: str | None = None, limit: int = 20
) -> dict[str, Any]:
    params: dict[str, Any] = {"type": "for_you", "limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = client.get("/v1/feed", params=params, headers=auth(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids(body: dict[str, Any]) -> list[str]:
    return [v["id"] for v in body["videos"]]


def seed_ranked(client: TestClient[Any], n: int) -> list[str]:
    """`n` videos of `n` creators, v1 order: the last first (most completions per impression);
    their creators' tokens go to `TOKENS`."""
    settings = client.app.state.ctx.settings
    out = []
    for i in range(n):
        owner, token = register(client, f"creator{i}")
        counts: dict[str, Any] = {"impression_count": 2000, "completion_count": 200 + 10 * i}
        out.append(seed_video(settings, owner, published_at=now_ms() - HOUR_MS, **counts))
        TOKENS[out[-1]] = token
    return out


TOKENS: dict[str, str] = {}


def client_for(tmp_path: Path, **overrides: Any) -> Any:
    settings: dict[str, Any] = {
        "feed_timeout_ms": SLOW_OK_MS,
        "feed_model_dir": str(tmp_path / "models"),
        "feed_cache_seconds": 0,
    }
    return api_client(tmp_path / "data", **(settings | overrides))


def test_a_taste_outside_the_snapshot_reaches_the_viewer(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        viewer, token = register(client, "viewer")
        _, other = register(client, "other")
        v = seed_ranked(client, 8)
        # The snapshot holds v[7], v[6], v[5]; the viewer's taste is v[0] then v[1].
        assert ids(page(client, token)) == [v[7], v[6], v[5]]
        scores = {v[0]: 5.0, v[1]: 4.0, v[7]: 1.0, v[6]: 0.5, v[5]: 0.2}
        write_model(tmp_path / "models", [viewer], scores)
        body = page(client, token)
        assert ids(body) == [v[0], v[1], v[7], v[6], v[5]]
        assert body["source"] == "ranked" and body["personal"] is True
        # A viewer the model does not know: the snapshot, not personal.
        plain = page(client, other)
        assert ids(plain) == [v[7], v[6], v[5]] and plain["personal"] is False


def test_followees_newest_videos_are_candidates(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        settings = client.app.state.ctx.settings
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 5)
        followed, _ = register(client, "followed")
        # Outside the snapshot (fewer completions than all) and unknown to the model.
        counts: dict[str, Any] = {"impression_count": 2000, "completion_count": 10}
        new = seed_video(settings, followed, published_at=now_ms() - HOUR_MS, **counts)
        write_model(tmp_path / "models", [viewer], {v[0]: 5.0})
        assert new not in ids(page(client, token))
        response = client.post(f"/v1/users/{followed}/follow", headers=auth(token))
        assert response.status_code in (200, 201, 204), response.text
        got = ids(page(client, token))
        assert v[0] in got and new in got


def test_an_unservable_candidate_never_appears(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        settings = client.app.state.ctx.settings
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 5)
        owner, _ = register(client, "owner")
        when = now_ms() - 2 * HOUR_MS
        bad = {
            status: seed_video(settings, owner, status=status, published_at=when)
            for status in ("deleted", "in_review", "rejected", "processing")
        }
        bad["private"] = seed_video(settings, owner, privacy="private", published_at=when)
        bad["unlisted"] = seed_video(settings, owner, privacy="unlisted", published_at=when)
        bad["own"] = seed_video(settings, viewer, published_at=when)
        bad["seen"] = seed_video(settings, owner, published_at=when)
        good = seed_video(settings, owner, published_at=when)
        events = [{"event_id": "e1", "video_id": bad["seen"], "type": "completed"}]
        response = client.post("/v1/events", json={"events": events}, headers=auth(token))
        assert response.status_code == 200, response.text
        # The model likes every one of them better than anything else.
        scores = {video: 10.0 for video in bad.values()} | {good: 9.0}
        scores |= {video: 1.0 - 0.1 * i for i, video in enumerate(v)}
        write_model(tmp_path / "models", [viewer], scores)
        got = ids(page(client, token))
        assert got[0] == good and v[0] in got
        assert not set(got) & set(bad.values())
        # Deleted after the list was built: dropped from the next page of the same session.
        write_model(tmp_path / "models", [viewer], scores | {v[1]: 8.0, v[2]: 7.5})
        first = page(client, token, limit=2)
        assert ids(first) == [good, v[1]]
        response = client.delete(f"/v1/videos/{v[2]}", headers=auth(TOKENS[v[2]]))
        assert response.status_code in (200, 204), response.text
        rest = ids(page(client, token, first["next_cursor"]))
        assert v[2] not in rest and v[0] in rest


def test_pages_never_repeat_and_keep_their_list_across_a_model_swap(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 12)
        models = tmp_path / "models"
        write_model(models, [viewer], {video: float(i % 5) for i, video in enumerate(v)})
        first = page(client, token, limit=4)
        assert first["personal"] is True
        served = ids(first)
        # Another version in between: the session pages on through the list it began.
        write_model(models, [viewer], {video: -float(i) for i, video in enumerate(v)})
        cursor = first["next_cursor"]
        while cursor:
            body = page(client, token, cursor, limit=4)
            assert body["personal"] is True
            served += ids(body)
            cursor = body["next_cursor"]
        assert len(served) == len(set(served)) == 12
        # The first version's order (ties: v1 order; every creator differs here).
        by_first = sorted(v, key=lambda video: (-(v.index(video) % 5), -v.index(video)))
        assert served == by_first


def sid_of(body: dict[str, Any]) -> str:
    cursor = FEED_CURSORS.decode(body["next_cursor"])
    assert isinstance(cursor, RankedCursor)
    return cursor.sid


def test_a_new_snapshot_starts_in_the_last_list_while_its_own_is_built(tmp_path: Path) -> None:
    with client_for(tmp_path, feed_cache_seconds=600, feed_personal_rebuild_seconds=0) as client:
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 6)
        write_model(tmp_path / "models", [viewer], {x: 10.0 - i for i, x in enumerate(v)})
        first = page(client, token, limit=2)
        assert ids(first) == [v[0], v[1]] and first["personal"] is True
        portal, feeds = client.blocking_portal, client.app.state.feed_store
        old = sid_of(first)
        newer = portal.call(store.build_snapshot, client.app.state.ctx)
        portal.call(feeds.publish, newer)
        # The next session starts at once in the last list, of the snapshot it was built on.
        again = page(client, token, limit=2)
        assert sid_of(again) == old and ids(again) == ids(first)
        # Then in the new snapshot's, built in the background meanwhile.
        deadline = time.monotonic() + 10
        while sid_of(again) == old and time.monotonic() < deadline:
            time.sleep(0.05)
            again = page(client, token, limit=2)
        assert sid_of(again) == newer.sid and ids(again) == [v[0], v[1]]


def test_a_list_is_not_rebuilt_for_every_snapshot_but_for_a_new_model(tmp_path: Path) -> None:
    """Within `feed_personal_rebuild_seconds` of its snapshot, a viewer's list serves new
    sessions through newer snapshots (no build); a new model version is built at once."""
    with client_for(tmp_path, feed_cache_seconds=600, feed_personal_rebuild_seconds=600) as client:
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 6)
        write_model(tmp_path / "models", [viewer], {x: 10.0 - i for i, x in enumerate(v)})
        first = page(client, token, limit=2)
        assert ids(first) == [v[0], v[1]] and first["personal"] is True
        portal, feeds = client.blocking_portal, client.app.state.feed_store
        personal = client.app.state.personal
        old = sid_of(first)
        for _ in range(3):
            portal.call(feeds.publish, portal.call(store.build_snapshot, client.app.state.ctx))
            again = page(client, token, limit=2)
            time.sleep(0.2)  # a background build would be done by now
            assert sid_of(again) == old and ids(again) == ids(first)
            assert not personal._building
        assert sid_of(page(client, token, limit=2)) == old
        # A new version: this session still starts in the last list, the next in the new one.
        write_model(tmp_path / "models", [viewer], {x: float(i) for i, x in enumerate(v)})
        portal.call(personal._reload)
        assert sid_of(page(client, token, limit=2)) == old
        deadline = time.monotonic() + 10
        again = page(client, token, limit=2)
        while sid_of(again) == old and time.monotonic() < deadline:
            time.sleep(0.05)
            again = page(client, token, limit=2)
        assert sid_of(again) != old and ids(again) == [v[5], v[4]]


def test_a_failing_model_means_trending(tmp_path: Path) -> None:
    with client_for(tmp_path) as client:
        viewer, token = register(client, "viewer")
        v = seed_ranked(client, 4)
        write_model(tmp_path / "models", [viewer], {v[0]: 1.0})
        assert page(client, token)["personal"] is True
        # A model whose viewer and video vectors do not match: scoring raises.
        artifact.save(
            tmp_path / "models",
            users=np.array([viewer]),
            items=np.array(v),
            user_factors=np.ones((1, 2)),
            item_factors=np.ones((len(v), 3)),
            popular=np.arange(len(v)),
        )
        body = page(client, token)
        assert body["source"] == "trending" and body["personal"] is False
        assert set(ids(body)) == set(v)


def test_personal_order_places_extras_by_v1_and_trades_known_places() -> None:
    items = [Candidate("a", "1", 9.0), Candidate("b", "2", 5.0), Candidate("c", "3", 1.0)]
    extras = [Candidate("x", "4", 6.0), Candidate("y", "5", 0.5)]
    # v1 places: a, x, b, c, y. Known: a (1), x (3), y (2, but reported: cut to 0.2, below a).
    scores = np.array([1.0, np.nan, np.nan, 3.0, 2.0])
    order = personal.personal_order(items, extras, scores, [1.0, 0.1])
    assert order == [3, 0, 1, 2, 4]
    assert personal.personal_order(items, extras, scores, [1.0, 1.0]) == [3, 4, 1, 2, 0]
