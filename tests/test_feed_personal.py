"""A viewer's own order of the for-you snapshot (issue 17; api/feed/personal.py): the merge
follows it under the same serving rules, and `GET /v1/feed` uses the model of
`feed_model_dir` for the viewers it knows, picks up a new version and a rollback, and serves
the snapshot's order when there is no usable model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from litestar.testing import TestClient

from api.core.db import now_ms
from api.feed import ranking
from api.feed.ranking import HOUR_MS, Candidate, Exclusions, MergeState
from recsys import artifact
from tests.support.api import api_client, auth, register, seed_video

SLOW_OK_MS = 20_000


def test_merge_follows_an_order_under_the_serving_rules() -> None:
    # Six creators; the order pairs each creator's two videos (0, 6, 1, 7, ...).
    items = [Candidate(f"v{i}", f"c{i % 6}", 100.0 - i) for i in range(12)]
    order = [i + k for i in range(6) for k in (0, 6)]
    picks, state, _ = ranking.merge(items, [], MergeState(), Exclusions(), 6, order=order)
    # One creator per 5: 6 waits until c0 left the window, then comes before 5.
    assert picks == [0, 1, 2, 3, 4, 6]
    more, _, _ = ranking.merge(items, [], state, Exclusions({"v7"}), 3, order=order)
    assert more == [5, 8, 9]
    # Without an order: the snapshot's.
    plain, _, _ = ranking.merge(items, [], MergeState(), Exclusions(), 6)
    assert plain == [0, 1, 2, 3, 4, 5]


def write_model(root: Path, viewer: str, scores: dict[str, float]) -> str:
    """A one-factor model: the viewer's vector is [1], each video's is [its score]."""
    videos = list(scores)
    return artifact.save(
        root,
        users=np.array([viewer]),
        items=np.array(videos),
        user_factors=np.ones((1, 1)),
        item_factors=np.array([[scores[v]] for v in videos]),
        popular=np.arange(len(videos)),
    )


def feed_ids(client: TestClient[Any], token: str | None) -> list[str]:
    headers = auth(token) if token else {}
    response = client.get("/v1/feed", params={"type": "for_you", "limit": 20}, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == "ranked"
    return [v["id"] for v in body["videos"]]


def test_feed_uses_the_viewers_model_and_follows_its_versions(tmp_path: Path) -> None:
    models = tmp_path / "models"
    with api_client(
        tmp_path / "data",
        feed_timeout_ms=SLOW_OK_MS,
        feed_model_dir=str(models),
        feed_cache_seconds=0,
    ) as client:
        settings = client.app.state.ctx.settings
        viewer, token = register(client, "viewer")
        _, other = register(client, "other")
        v = []
        for n in range(6):  # v1 order: v[5] first (most engagement), v[0] last
            owner, _ = register(client, f"creator{n}")
            counts: dict[str, Any] = {"impression_count": 2000, "completion_count": 200 + 10 * n}
            v.append(seed_video(settings, owner, published_at=now_ms() - HOUR_MS, **counts))
        snapshot_order = v[::-1]
        # No model yet: the snapshot's order for everyone.
        assert feed_ids(client, token) == snapshot_order

        # The model prefers v[0] > v[1] > ... > v[4]; v[5] is newer than the model.
        write_model(models, viewer, {v[i]: 6.0 - i for i in range(5)})
        assert feed_ids(client, token) == [v[5], v[0], v[1], v[2], v[3], v[4]]
        # Viewers it does not know, and anonymous ones, keep the snapshot's order.
        assert feed_ids(client, other) == snapshot_order
        assert feed_ids(client, None) == snapshot_order

        # A new version is picked up; a rollback brings the previous one back.
        write_model(models, viewer, {v[4]: 2.0, v[3]: 1.0})
        assert feed_ids(client, token) == [v[5], v[4], v[3], v[2], v[1], v[0]]
        write_model(models, viewer, {v[1]: 9.0, v[2]: 1.0})
        assert feed_ids(client, token)[3:5] == [v[1], v[2]]
        artifact.rollback(models)
        assert feed_ids(client, token) == [v[5], v[4], v[3], v[2], v[1], v[0]]

        # CURRENT naming a version that is not there: the loaded model stays in use.
        (models / "CURRENT").write_text("v000099\n")
        assert feed_ids(client, token) == [v[5], v[4], v[3], v[2], v[1], v[0]]


def test_feed_without_a_usable_model_serves_the_snapshot(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "CURRENT").write_text("v000001\n")  # names nothing
    with api_client(
        tmp_path / "data", feed_timeout_ms=SLOW_OK_MS, feed_model_dir=str(models)
    ) as client:
        settings = client.app.state.ctx.settings
        _, token = register(client, "viewer")
        v = []
        for n in range(3):
            owner, _ = register(client, f"creator{n}")
            counts: dict[str, Any] = {"impression_count": 2000, "completion_count": 200 + 10 * n}
            v.append(seed_video(settings, owner, published_at=now_ms() - HOUR_MS, **counts))
        assert feed_ids(client, token) == v[::-1]
