"""Cold start by caption through the service (issue 17, "Cold start"): viewers with hidden tastes
send their events through the real API, the `train_feed_model` job reads the events and the
videos' captions from the tables, and the version it writes scores brand-new videos (published
after it, nobody watched them) from the captions stored in `videos`: on-taste above off-taste.
The vocabulary of the new captions shares no word with the trained ones
(tests/test_recsys_captions.py `TOPICS`)."""

from __future__ import annotations

import itertools
from pathlib import Path

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
