"""The whole flow in production mode, as separate processes on real servers (issue 3, "Tests
that must exist and pass"): one API process (`reelforge serve`), `dramatiq worker:setup`
processes, Redis as the broker, a fresh PostgreSQL database, and moto's S3 server standing in
for MinIO (it speaks the protocol but checks no signatures: nothing here proves S3 auth).

Fault: a worker killed with SIGKILL in the middle of a transcode (its whole process group, as
when its machine dies) leaves no encoder behind; once its heartbeat times out the job is
redelivered to another worker and the video is published exactly once, under one render prefix.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from api.core.services import make_storage
from api.core.settings import Settings
from tests.conftest import MEDIA
from tests.support.e2e import Account, Flow
from tests.support.services import (
    ApiProcess,
    WorkerProcess,
    alive,
    ensure_postgres,
    ensure_redis,
    free_port,
    fresh_postgres_database,
    group_processes,
    process_tree,
    production_env,
    redis_database,
    start_moto,
)

SIGNED_CLIP, DIRECT_CLIP, TUS_CLIP = "edts.mp4", "sar_2x1.mp4", "rotate-buck-bunny.mp4"
SLOW_CLIP = "cockatoo.mp4"


def media(name: str) -> Path:
    path = MEDIA / name
    assert path.is_file(), f"real test media missing: {path}"
    return path


@dataclass
class Production:
    env: dict[str, str]
    api: ApiProcess
    database_url: str
    start_worker: Callable[[str], WorkerProcess]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


@pytest.fixture
def production(tmp_path: Path) -> Iterator[Production]:
    ensure_redis()
    ensure_postgres()
    with ExitStack() as stack:
        moto, endpoint = start_moto()
        stack.callback(moto.stop)
        database_url = stack.enter_context(fresh_postgres_database())
        redis_url = stack.enter_context(redis_database())
        env = production_env(
            tmp_path / "data", database_url=database_url, redis_url=redis_url, s3_endpoint=endpoint
        )
        api = stack.enter_context(ApiProcess(env, free_port(), tmp_path / "api.log"))
        api.start()
        assert "production mode: API only" in api.log(), api.log_tail()

        def start_worker(name: str) -> WorkerProcess:
            worker = stack.enter_context(WorkerProcess(env, tmp_path / f"{name}.log"))
            worker.start()
            return worker

        yield Production(env, api, database_url, start_worker)


def published_once(flow: Flow, who: Account, video_id: str) -> None:
    response = flow.http.get(f"/v1/videos/{video_id}/history", headers=who.headers)
    assert response.status_code == 200, response.text
    moves = [entry["to_status"] for entry in response.json()["history"]]
    assert moves.count("published") == 1, moves


def render_prefixes(settings: Settings, video_id: str) -> set[str]:
    """The render ids under `media/{vid}/` in the object store."""
    storage = make_storage(settings)
    keys = [info.key for info in storage.list(f"media/{video_id}/")]
    return {key.split("/")[2] for key in keys}


def test_production_end_to_end(production: Production) -> None:
    production.start_worker("w1")
    production.start_worker("w2")
    with Flow(production.api.url) as flow:
        creator, fan = flow.register(), flow.register()
        ticket_url = flow.upload_ticket(creator, media(SIGNED_CLIP))["upload_url"]
        assert not ticket_url.startswith(production.api.url), "presigned: straight to storage"
        uploads = {
            "signed": flow.upload_signed(creator, media(SIGNED_CLIP)),
            "direct": flow.upload_direct(creator, media(DIRECT_CLIP)),
            "tus": flow.upload_tus(creator, media(TUS_CLIP)),
        }
        for kind, video_id in uploads.items():
            assert flow.publish(creator, video_id, caption=kind)["status"] == "processing"
        videos = {kind: flow.wait_status(vid, creator) for kind, vid in uploads.items()}
        for kind, video in videos.items():
            assert video["status"] == "published", (kind, video["status_reason"])
            assert video["renditions"] and video["hls_url"].startswith(production.api.url)
            published_once(flow, creator, video["id"])
            assert render_prefixes(production.settings, video["id"]) == {
                video["hls_url"].split("/")[-2]
            }
            playback = flow.play(video)
            assert playback.init_section[4:8] == b"ftyp"
            assert playback.segment[4:8] in (b"styp", b"moof"), playback.segment[:16]
        assert videos["tus"]["height"] > videos["tus"]["width"]

        signed = videos["signed"]
        for _ in range(2):
            flow.like(fan, signed["id"], key="like-1")
            flow.follow(fan, creator.id, key="follow-1")
        first = flow.comment(fan, signed["id"], "great", key="comment-1").json()
        assert flow.comment(fan, signed["id"], "great", key="comment-1").json() == first
        reused = flow.http.post(
            f"/v1/videos/{signed['id']}/comments",
            json={"body": "something else"},
            headers={**fan.headers, "Idempotency-Key": "comment-1"},
        )
        assert reused.status_code in (409, 422), reused.text
        after = flow.video(signed["id"], fan)
        assert (after["like_count"], after["comment_count"]) == (1, 1)
        assert flow.user(creator.id)["follower_count"] == 1
        assert [c["body"] for c in flow.comments(signed["id"])["comments"]] == ["great"]

        following = flow.feed(fan, "following")
        assert following["source"] == "following"
        assert {v["id"] for v in following["videos"]} == set(uploads.values())
        for_you = flow.feed(fan, "for_you")
        assert for_you["source"] in ("ranked", "trending")
        shown = {v["id"] for v in for_you["videos"]}
        assert shown and shown <= set(uploads.values()), shown


def attempts(database_url: str, video_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT attempts FROM videos WHERE id = %s", (video_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_killed_worker_job_is_redelivered_and_published_once(production: Production) -> None:
    w1 = production.start_worker("w1")
    with Flow(production.api.url) as flow:
        creator = flow.register()
        video_id = flow.upload_direct(creator, media(SLOW_CLIP))
        flow.publish(creator, video_id, caption="survives a dead worker")
        flow.wait_status(video_id, creator, {"processing"}, deadline_s=60, interval_s=0.05)
        deadline = time.monotonic() + 60
        while not w1.encoder_children():
            assert time.monotonic() < deadline, w1.log_tail()
            assert flow.video(video_id, creator)["status"] == "processing", w1.log_tail()
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the encode (the clip takes several seconds)
        assert flow.video(video_id, creator)["status"] == "processing"
        pgid, tree = w1.pgid, process_tree(w1.pid)
        assert set(w1.encoder_children()) <= set(tree)
        w1.kill()
        assert alive(tree) == [], "a process of the killed worker survived"
        assert group_processes(pgid) == []

        w2 = production.start_worker("w2")
        video = flow.wait_status(video_id, creator, deadline_s=240)
        assert video["status"] == "published", (video["status_reason"], w2.log_tail())
        published_once(flow, creator, video_id)
        assert attempts(production.database_url, video_id) == 2
        assert render_prefixes(production.settings, video_id) == {video["hls_url"].split("/")[-2]}
        playback = flow.play(video)
        assert playback.segment[4:8] in (b"styp", b"moof")
