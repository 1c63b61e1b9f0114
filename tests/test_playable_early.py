"""Playable early (issue 15): a chunked run publishes its lowest rung and the audio before the
rest of the ladder is done, then swaps in the complete ladder; old URLs keep working.

Real camera footage (`cockatoo.mp4`, 1280x720: a 720/540/360 ladder) through the embedded app
(SQLite, local storage, the in-process worker with two threads, the real engine), chunked
into 2-segment chunks. The chunk jobs are held at their start (the runtime's `fault` hook,
called before a part's work) until the test has looked at the early state, so what it sees
does not depend on timing; the preview and the audio run as they would.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from api.core.keys import media_prefix
from api.jobs.publish import early_render_id
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, register, upload_and_publish
from tests.support.verify import verify_output

CLIP = MEDIA / "cockatoo.mp4"
TIMEOUT_S = 300.0
CHUNKED = {
    "chunk_threshold_seconds": 4.0,
    "chunk_segments": 2,
    "segment_seconds": 2.0,
    "embedded_workers": 2,
    "preview_rungs": 1,
    "feed_cache_seconds": 0,
}


def _publish(client: TestClient[Any], token: str, caption: str = "") -> str:
    return upload_and_publish(client, token, CLIP.read_bytes(), caption)


def _poll(client: TestClient[Any], video_id: str, token: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        body: dict[str, Any] = client.get(f"/v1/videos/{video_id}", headers=auth(token)).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"timed out; last seen {body}"
        time.sleep(0.1)


def _hold_chunks(client: TestClient[Any]) -> threading.Event:
    """Chunk jobs wait at their start until the returned event is set."""
    gate = threading.Event()

    def hold(video_id: str, kind: str, index: int) -> None:
        if kind == "chunk":
            gate.wait(TIMEOUT_S)

    client.app.state.ctx.jobs.chunking.fault = hold
    return gate


def _run_id(client: TestClient[Any], video_id: str) -> str:
    from sqlalchemy import select

    from api.core.db import sync_engine
    from api.core.tables import video_progress

    engine = sync_engine(client.app.state.ctx.settings)
    try:
        with engine.connect() as conn:
            query = select(video_progress.c.run_id).where(video_progress.c.video_id == video_id)
            return str(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


def _segments(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.m4s"))}


def test_the_low_rung_plays_first_then_the_whole_ladder(tmp_path: Path) -> None:
    assert CLIP.is_file(), f"real test media missing: {CLIP}"
    with api_client(tmp_path, **CHUNKED) as client:
        settings = client.app.state.ctx.settings
        _, owner = register(client)
        _, viewer = register(client)
        gate = _hold_chunks(client)
        try:
            video_id = _publish(client, owner)
            early = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        finally:
            gate.set()
        # Published with the preview rung and the audio while every chunk is still held.
        assert early["status"] == "published", early["status_reason"]
        assert [r["name"] for r in early["renditions"]] == ["v360"]
        assert early["processing"] is not None and early["processing"]["stage"] == "transcoding"
        render = early_render_id(_run_id(client, video_id))
        assert f"/{render}/" in early["hls_url"]
        early_dir = settings.origin_dir / media_prefix(video_id, render)
        assert verify_output(early_dir, CLIP) == []
        master = client.get(early["hls_url"])
        assert master.status_code == 200 and master.text.count("#EXT-X-STREAM-INF") == 1
        # Anyone sees it, and the For You feed may serve it (it is published).
        public = client.get(f"/v1/videos/{video_id}", headers=auth(viewer)).json()
        assert public["status"] == "published" and public["processing"] is None
        feed = client.get("/v1/feed?type=for_you&limit=50", headers=auth(viewer)).json()
        assert video_id in [item["id"] for item in feed["videos"]]
        early_report = json.loads((early_dir / "report.json").read_text())

        full = _poll(client, video_id, owner, lambda b: len(b["renditions"]) == 3)
        assert full["status"] == "published"
        assert [r["name"] for r in full["renditions"]] == ["v720", "v540", "v360"]
        assert full["processing"] is None
        assert full["published_at"] == early["published_at"]
        assert f"/{render}/" not in full["hls_url"]
        full_dir = settings.origin_dir / media_prefix(video_id, full["hls_url"].split("/")[-2])
        assert verify_output(full_dir, CLIP) == []
        # The URLs of the early render keep working (until the sweeper's grace period).
        assert client.get(early["hls_url"]).status_code == 200
        # The whole ladder reuses the preview's encode of v360, segment for segment, and the
        # one analysis the preview made.
        assert _segments(full_dir / "v360") == _segments(early_dir / "v360")
        full_report = json.loads((full_dir / "report.json").read_text())
        assert full_report["analysis"] == early_report["analysis"]
        assert "early" in early_report and "early" not in full_report
        author = client.get(f"/v1/users/{early['author']['id']}").json()
        assert author["video_count"] == 1  # counted once, by the early publish


def test_a_video_held_for_review_is_not_published_early(tmp_path: Path) -> None:
    """Routing that would hold the video: nothing is shown early; the moderator gets the
    whole ladder (the early presentation is never stored)."""
    with api_client(tmp_path, **CHUNKED, watched_words=("spoiler",)) as client:
        settings = client.app.state.ctx.settings
        _, owner = register(client)
        video_id = _publish(client, owner, caption="a spoiler ahead")
        final = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        assert final["status"] == "in_review", final["status_reason"]
        render = early_render_id(_run_id(client, video_id))
        assert not (settings.origin_dir / media_prefix(video_id, render)).exists()
        stored = list((settings.origin_dir / media_prefix(video_id)).iterdir())
        assert len(stored) == 1
        assert {p.name for p in stored[0].iterdir()} >= {"v720", "v540", "v360", "master.m3u8"}


def test_a_chunk_that_keeps_failing_leaves_the_early_rungs_playable(tmp_path: Path) -> None:
    """After an early publish, a part that fails its last attempt ends the run: the video stays
    published with its early rungs (not failed: viewers may be watching it), and its owner's
    progress ends."""
    with api_client(tmp_path, **CHUNKED) as client:
        _, owner = register(client)
        early = threading.Event()

        def broken(video_id: str, kind: str, index: int) -> None:
            if kind == "chunk":
                early.wait(TIMEOUT_S)  # after the early publish, so the order is certain
                if index == 0:
                    raise RuntimeError("chunk 0 is broken")

        client.app.state.ctx.jobs.chunking.fault = broken
        video_id = _publish(client, owner)
        first = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        early.set()
        assert first["status"] == "published", first["status_reason"]
        final = _poll(client, video_id, owner, lambda b: b["processing"] is None)
        assert final["status"] == "published"
        assert [r["name"] for r in final["renditions"]] == ["v360"]
        assert client.get(final["hls_url"]).status_code == 200


def test_an_embedded_restart_finishes_a_ladder_published_early(tmp_path: Path) -> None:
    """Embedded mode: the process stops after the early publish with its chunks never run (their
    messages lost with it); at the next start the run's unfinished parts are sent again and the
    whole ladder replaces the early render."""
    with api_client(tmp_path, **CHUNKED) as client:
        _, owner = register(client)
        chunking = client.app.state.ctx.jobs.chunking
        send = chunking.dispatch

        def lose_chunks(video_id: str, run_id: str, kind: str, index: int) -> None:
            if kind != "chunk":
                send(video_id, run_id, kind, index)

        chunking.dispatch = lose_chunks
        video_id = _publish(client, owner)
        early = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        assert early["status"] == "published", early["status_reason"]
        assert [r["name"] for r in early["renditions"]] == ["v360"]
    with api_client(tmp_path, **CHUNKED) as client:
        full = _poll(client, video_id, owner, lambda b: len(b["renditions"]) == 3)
        assert full["processing"] is None and full["status"] == "published"
        assert full["hls_url"] != early["hls_url"]
