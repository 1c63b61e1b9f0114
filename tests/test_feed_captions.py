"""Cold start by caption through the service (issue 17, "Cold start"): viewers with hidden tastes
send their events through the real API, the `train_feed_model` job reads the events and the
videos' captions from the tables, and the version it writes scores brand-new videos (published
after it, nobody watched them) from the captions stored in `videos`: on-taste above off-taste.
The vocabulary of the new captions shares no word with the trained ones
(tests/test_recsys_captions.py `TOPICS`)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from api.core.db import sync_engine
from api.core.tables import videos
from api.jobs.feedtrain import read_captions, train_feed_model
from recsys import artifact, captions
from tests.support.api import api_client, auth, register, seed_video
from tests.test_recsys_captions import TOPICS, auc, caption

PER_TOPIC, VIEWERS_PER_TOPIC, NEW_PER_TOPIC = 10, 5, 8


def test_the_job_learns_captions_from_the_tables_and_places_new_videos(tmp_path: Path) -> None:
    rng = np.random.default_rng(23)
    models = tmp_path / "models"
    ids = itertools.count()
    with api_client(
        tmp_path / "data",
        feed_model_dir=str(models),
        feed_train_interval_seconds=0,
        feed_train_threads=1,
        auth_rate_limit_per_minute=10_000,
    ) as client:
        settings = client.app.state.ctx.settings
        owner, _ = register(client, "creator")
        topic_of: dict[str, int] = {}
        for t, name in enumerate(TOPICS):
            for _ in range(PER_TOPIC):
                text = caption(TOPICS[name][0].split(), rng)
                topic_of[seed_video(settings, owner, caption=text)] = t
        catalogue = sorted(topic_of)
        taste: dict[str, int] = {}
        for n in range(VIEWERS_PER_TOPIC * len(TOPICS)):
            viewer, token = register(client, f"viewer{n}")
            taste[viewer] = n % len(TOPICS)
            events = []
            for video in rng.choice(catalogue, size=20, replace=False).tolist():
                liked = topic_of[video] == taste[viewer]
                events += [
                    {"event_id": f"e{next(ids)}", "video_id": video, "type": kind, "value": value}
                    for kind, value in (
                        [("play", None), ("completed", None)]
                        if liked
                        else [("play", None), ("watch_ms", 600), ("skip", None)]
                    )
                ]
            response = client.post("/v1/events", json={"events": events}, headers=auth(token))
            assert response.status_code == 200, response.text

        engine = sync_engine(settings)
        try:
            assert len(read_captions(engine)) == len(catalogue)
            done = train_feed_model(engine, settings)
            assert done is not None and done.new
            model = artifact.load(models)
            assert model.meta["captions"]["model"] == captions.MODEL
            assert model.meta["captions"]["items"] == len(catalogue)
            assert model.meta["caption_seconds"] >= 0

            new_topic: dict[str, int] = {}
            for t, name in enumerate(TOPICS):
                for _ in range(NEW_PER_TOPIC):
                    text = caption(TOPICS[name][1].split(), rng)
                    new_topic[seed_video(settings, owner, caption=text)] = t
            fresh = sorted(new_topic)
            with engine.connect() as conn:
                query = select(videos.c.id, videos.c.caption).where(videos.c.id.in_(fresh))
                stored = {str(video): str(text) for video, text in conn.execute(query)}
        finally:
            engine.dispose()

    assert all(model.codes(fresh) == -1)
    texts = [stored[v] for v in fresh]
    topics = np.asarray([new_topic[v] for v in fresh])
    aucs = []
    for viewer, mine in taste.items():
        assert model.knows(viewer)
        scores = model.cold_scores(viewer, texts)
        assert scores is not None
        aucs.append(auc(scores, topics == mine))
    assert np.mean(aucs) >= 0.8, aucs


def feed_order(client: Any, token: str, pages: int = 6) -> list[str]:
    """The viewer's for-you videos in the order served, page after page."""
    order: list[str] = []
    cursor = None
    for _ in range(pages):
        params: dict[str, Any] = {"type": "for_you", "limit": 20}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/v1/feed", params=params, headers=auth(token))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "ranked" and body["personal"], body
        order += [video["id"] for video in body["videos"]]
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return order


def test_the_feed_places_new_videos_by_their_caption(tmp_path: Path) -> None:
    """Through `GET /v1/feed` (api/feed/scoring.py): after a retrain, brand-new videos whose
    captions are on a viewer's taste come before off-taste ones in that viewer's feed. Without
    the caption scores they keep their v1 places, the same for every viewer (AUC ~0.5)."""
    rng = np.random.default_rng(29)
    ids = itertools.count()
    with api_client(
        tmp_path / "data",
        feed_model_dir=str(tmp_path / "models"),
        feed_train_interval_seconds=0,
        feed_train_threads=1,
        auth_rate_limit_per_minute=10_000,
        rate_limit_per_minute=100_000,
    ) as client:
        settings = client.app.state.ctx.settings
        creators = [register(client, f"creator{n}")[0] for n in range(8)]
        topic_of: dict[str, int] = {}
        for t, name in enumerate(TOPICS):
            for n in range(PER_TOPIC):
                text = caption(TOPICS[name][0].split(), rng)
                owner = creators[n % len(creators)]
                topic_of[seed_video(settings, owner, caption=text)] = t
        catalogue = sorted(topic_of)
        viewers: dict[str, tuple[str, int]] = {}
        for n in range(VIEWERS_PER_TOPIC * len(TOPICS)):
            viewer, token = register(client, f"viewer{n}")
            viewers[viewer] = (token, n % len(TOPICS))
            events = []
            for video in catalogue:  # every trained video seen: the feed serves the new ones
                liked = topic_of[video] == viewers[viewer][1]
                kinds = [("play", None), ("completed", None)] if liked else [("skip", None)]
                events += [
                    {"event_id": f"e{next(ids)}", "video_id": video, "type": k, "value": v}
                    for k, v in kinds
                ]
            response = client.post("/v1/events", json={"events": events}, headers=auth(token))
            assert response.status_code == 200, response.text
        engine = sync_engine(settings)
        try:
            done = train_feed_model(engine, settings)
            assert done is not None and done.new
        finally:
            engine.dispose()
        new_topic: dict[str, int] = {}
        for t, name in enumerate(TOPICS):
            for n in range(NEW_PER_TOPIC):
                text = caption(TOPICS[name][1].split(), rng)
                owner = creators[(n + t) % len(creators)]
                new_topic[seed_video(settings, owner, caption=text)] = t
        aucs = []
        for token, mine in viewers.values():
            served = [v for v in feed_order(client, token) if v in new_topic]
            assert len(served) >= len(new_topic) // 2, served
            # Earlier in the feed: a higher score.
            place = -np.arange(len(served), dtype=np.float64)
            aucs.append(auc(place, np.asarray([new_topic[v] == mine for v in served])))
    assert np.mean(aucs) >= 0.75, aucs


def test_onto_scale_keeps_the_order_of_the_estimates() -> None:
    """api/feed/scoring.py `onto_scale`: monotone in the estimate, on the target's range, and
    estimates beyond the known range (clamped to one value) keep their own order."""
    from api.feed.scoring import onto_scale

    base = np.array([0.0, 1.0, 2.0, 3.0])
    target = np.array([10.0, -5.0, 40.0, 7.0])  # another scale, in another order
    estimate = np.array([-3.0, -1.0, 0.5, 1.5, 2.5, 9.0, 12.0])
    mapped = onto_scale(estimate, base, target)
    assert np.all(np.diff(mapped) > 0), mapped
    assert mapped.min() >= target.min() - 1e-6 and mapped.max() <= target.max() + 1e-6
    assert np.array_equal(onto_scale(estimate, base[:0], target[:0]), estimate)
