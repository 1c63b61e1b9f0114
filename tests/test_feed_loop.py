"""A simulator for the For You learning loop (issue 17, "A simulator for the loop"), through the
real API (the embedded app, its in-process Dramatiq worker included).

The catalogue: `K` topics, each the videos of its own `CREATORS` creators; the global (v1)
order interleaves the topics. Viewers have a hidden taste (one topic): they watch what their
feed shows them and some videos reached otherwise (links, profiles), complete, rewatch, like,
share and follow the creators of their topic, and skip the rest within 2 s. Then the
`train_feed_model` job runs on the worker, the API picks up the new version, and each viewer's
for-you page holds more of their topic than before; a viewer who arrives later is served
personally after 10 events and a retrain. Everything is seeded; nothing waits on a timer but
the job (polled until its version appears).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from litestar.testing import TestClient

from api.core.db import now_ms, sync_engine
from api.feed.ranking import HOUR_MS
from api.jobs.feedtrain import train_feed_model
from recsys import artifact
from tests.support.api import api_client, auth, register, seed_video

K = 4
CREATORS = 5
PER_CREATOR = 6
VIEWERS_PER_TOPIC = 8
PAGE = 10
SLOW_OK_MS = 20_000
_ids = itertools.count()


class World:
    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.settings = client.app.state.ctx.settings
        self.topic: dict[str, int] = {}  # video → topic
        self.owner: dict[str, str] = {}
        total = K * CREATORS * PER_CREATOR
        creators = [[register(client, f"c{t}x{c}")[0] for c in range(CREATORS)] for t in range(K)]
        # v1 rank r: topic r % K, creator (r // K) % CREATORS; completions fall with the rank.
        for r in range(total):
            t, c = r % K, (r // K) % CREATORS
            video = seed_video(
                self.settings,
                creators[t][c],
                published_at=now_ms() - HOUR_MS,
                impression_count=20_000,
                completion_count=10_000 - 50 * r,
            )
            self.topic[video], self.owner[video] = t, creators[t][c]

    def feed(self, token: str, limit: int = PAGE) -> list[str]:
        response = self.client.get(
            "/v1/feed", params={"type": "for_you", "limit": limit}, headers=auth(token)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "ranked"
        return [v["id"] for v in body["videos"]]

    def hit_rate(self, token: str, taste: int) -> float:
        page = self.feed(token)
        assert len(page) == PAGE
        return sum(self.topic[v] == taste for v in page) / PAGE

    def events(self, token: str, events: list[tuple[str, str, int | None]]) -> None:
        body = {
            "events": [
                {"event_id": f"e{next(_ids)}", "video_id": v, "type": kind, "value": value}
                for v, kind, value in events
            ]
        }
        response = self.client.post("/v1/events", json=body, headers=auth(token))
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(events)

    def watch(self, token: str, taste: int, videos: list[str], rng: np.random.Generator) -> None:
        """A session: each video shown and played; the viewer's topic watched to the end (and
        sometimes rewatched, liked, shared, its creator followed), the rest left within 2 s."""
        events: list[tuple[str, str, int | None]] = []
        for video in videos:
            events += [(video, "impression", None), (video, "play", None)]
            if self.topic[video] != taste:
                events += [(video, "watch_ms", 800), (video, "skip", None)]
                continue
            events += [(video, "watch_ms", 10_000), (video, "completed", None)]
            if rng.random() < 0.3:
                events.append((video, "loop", None))
            if rng.random() < 0.2:
                events.append((video, "share", None))
            if rng.random() < 0.5:
                liked = self.client.post(f"/v1/videos/{video}/like", headers=auth(token))
                assert liked.status_code in (200, 201), liked.text
            if rng.random() < 0.2:
                followed = self.client.post(
                    f"/v1/users/{self.owner[video]}/follow", headers=auth(token)
                )
                assert followed.status_code in (200, 201), followed.text
        self.events(token, events)


def retrain(client: TestClient[Any], models: Path) -> str:
    """Run `train_feed_model` on the in-process worker; the version it made current."""
    before = artifact.versions(models)
    client.app.state.ctx.jobs.enqueue_feed_train()
    wait_for(lambda: artifact.versions(models) != before, 120, "the training job's version")
    return artifact.current_version(models)


def wait_for(done: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_viewers_feeds_learn_their_tastes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    rng = np.random.default_rng(17)
    with api_client(
        tmp_path / "data",
        feed_timeout_ms=SLOW_OK_MS,
        feed_model_dir=str(models),
        feed_cache_seconds=0,
        feed_train_interval_seconds=0,  # this test runs the job itself
        feed_train_threads=1,
        auth_rate_limit_per_minute=10_000,
    ) as client:
        world = World(client)
        catalogue = sorted(world.topic)
        viewers = []
        for n in range(K * VIEWERS_PER_TOPIC):
            _, token = register(client, f"viewer{n}")
            viewers.append((token, n % K))
        # Their first sessions: the feed's first page, and a few videos reached otherwise.
        for token, taste in viewers:
            shown = world.feed(token)
            others = [v for v in rng.permutation(catalogue).tolist() if v not in shown][:8]
            world.watch(token, taste, shown + others, rng)

        before = [world.hit_rate(token, taste) for token, taste in viewers]
        first = retrain(client, models)
        after = [world.hit_rate(token, taste) for token, taste in viewers]
        # One topic in K: the global order serves each viewer about 1/K of their taste.
        assert np.mean(before) <= 0.4, before
        assert np.mean(after) >= np.mean(before) + 0.4, (before, after)
        assert sum(a > b for a, b in zip(after, before, strict=True)) >= 0.8 * len(viewers)

        # Nothing new in the log: the job writes no version.
        settings = client.app.state.ctx.settings
        engine = sync_engine(settings)
        same = train_feed_model(engine, settings)
        engine.dispose()
        assert same is not None and not same.new and same.version == first
        assert artifact.versions(models) == [first]
        # A newcomer per topic: the global order until they have sent 10 events and the
        # model was retrained, then their own.
        newcomers = [(register(client, f"new{t}")[1], t) for t in range(K)]
        new_before = [world.hit_rate(token, taste) for token, taste in newcomers]
        for token, taste in newcomers:
            events: list[tuple[str, str, int | None]] = []
            for video in world.feed(token)[:5]:  # 5 videos, 2 events each
                ending = "completed" if world.topic[video] == taste else "skip"
                events += [(video, "play", None), (video, ending, None)]
            assert len(events) == 10
            world.events(token, events)
        second = retrain(client, models)
        assert second > first and artifact.load(models).meta["warm_start"] is True
        new_after = [world.hit_rate(token, taste) for token, taste in newcomers]
        assert np.mean(new_before) <= 0.4, new_before
        assert np.mean(new_after) >= np.mean(new_before) + 0.3, (new_before, new_after)


def test_the_app_retrains_on_its_interval(tmp_path: Path) -> None:
    """Embedded mode: `feed_train_loop` enqueues `train_feed_model`, the in-process worker
    writes a version from the events sent through the API."""
    models = tmp_path / "models"
    with api_client(
        tmp_path / "data",
        feed_timeout_ms=SLOW_OK_MS,
        feed_model_dir=str(models),
        feed_train_interval_seconds=0.2,
        feed_train_threads=1,
    ) as client:
        settings = client.app.state.ctx.settings
        owner, _ = register(client, "creator")
        videos = [seed_video(settings, owner) for _ in range(3)]
        for n in range(3):
            _, token = register(client, f"viewer{n}")
            events = [{"event_id": f"e{v}", "video_id": v, "type": "completed"} for v in videos]
            response = client.post("/v1/events", json={"events": events}, headers=auth(token))
            assert response.status_code == 200, response.text
        # An interval may fall between two viewers' events: a later one trains on all 9.
        wait_for(lambda: trained_on(models) == 9, 60, "the periodic training on all events")


def trained_on(models: Path) -> int:
    try:
        return int(artifact.load(models).meta["interactions"])
    except artifact.ArtifactError:
        return 0
