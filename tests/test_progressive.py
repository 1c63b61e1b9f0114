"""Playable early without a second decode (issue 15; api/jobs/progressive.py, packager/growing.py):
a chunked run with no preview part publishes its chunks as they land, in timeline order, as a
growing HLS presentation (EVENT playlists) its owner can play while the video is processing.

Through the embedded app (SQLite, local storage, the in-process worker with two threads, the
real engine), on real camera footage (`cockatoo.mp4`, 14 s, 1280x720: 4 chunks of 2 x 2 s) and
a generated source (10.4 s, 3 chunks, a short tail), the chunk jobs held at their start (the
runtime's `fault` hook) and released one by one, so what each step sees does not depend on
timing. Then a real Chromium with hls.js plays a presentation that has no ENDLIST yet, and two
parts finishing together on PostgreSQL never shrink what is published.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, insert, select, update

from api.core.db import new_id, now_ms
from api.core.keys import media_prefix, part_prefix
from api.core.services import make_storage
from api.core.tables import superseded_renders, video_growing, video_parts
from api.jobs import chunkwork, progressive
from api.jobs.publish import early_render_id
from engine.options import TranscodeOptions
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, make_settings, register, upload_and_publish
from tests.support.clips import chunking_clip
from tests.support.jobs import insert_processing_video, insert_user
from tests.support.pg import schema_engine
from tests.support.player import play
from tests.support.verify import verify_output

CLIP = MEDIA / "cockatoo.mp4"
TIMEOUT_S = 300.0
CHUNKED = {
    "chunk_threshold_seconds": 4.0,
    "chunk_segments": 2,
    "segment_seconds": 2.0,
    "embedded_workers": 2,
    "preview_rungs": 0,
    "feed_cache_seconds": 0,
}
SEGMENT = re.compile(r"^(\d{5})\.m4s$", re.M)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chunking_clip(tmp_path_factory.mktemp("progressive-clip") / "clip.mp4")


def _poll(client: TestClient[Any], video_id: str, token: str, done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        body: dict[str, Any] = client.get(f"/v1/videos/{video_id}", headers=auth(token)).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"timed out; last seen {body}"
        time.sleep(0.1)


class Gates:
    """Chunk jobs from index `free` on wait at their start until their gate is opened."""

    def __init__(self, client: TestClient[Any], free: int = 1) -> None:
        self.events: dict[int, threading.Event] = {}
        self.free = free
        client.app.state.ctx.jobs.chunking.fault = self.hold

    def event(self, index: int) -> threading.Event:
        return self.events.setdefault(index, threading.Event())

    def hold(self, video_id: str, kind: str, index: int) -> None:
        if kind == "chunk" and index >= self.free:
            self.event(index).wait(TIMEOUT_S)

    def open(self, index: int) -> None:
        self.event(index).set()

    def open_all(self) -> None:
        for index in range(64):
            self.open(index)


def _playlist(client: TestClient[Any], hls_url: str, path: str) -> str:
    url = hls_url.rsplit("/", 1)[0] + "/" + path
    answer = client.get(url)
    assert answer.status_code == 200, (url, answer.status_code)
    return answer.text


def _listed(text: str) -> list[int]:
    return [int(n) for n in SEGMENT.findall(text)]


def _growing(
    client: TestClient[Any], video_id: str, owner: str, chunks: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """The owner's view once `chunks` chunks are published, and the playlists then."""
    body = _poll(
        client, video_id, owner,
        lambda b: (b["processing"] or {}).get("playable_s", 0) >= 4.0 * chunks - 0.01
        or b["status"] != "processing",
    )  # fmt: skip
    assert body["status"] == "processing", body["status_reason"]
    url = body["processing"]["hls_url"]
    names = [r["name"] for r in body["processing"]["renditions"]]
    texts = {
        p: _playlist(client, url, p) for p in ["master.m3u8", *(f"{n}/index.m3u8" for n in names)]
    }
    texts["audio"] = _playlist(client, url, "audio/index.m3u8")
    return body, texts


@pytest.mark.parametrize("source", ["cockatoo", "generated"])
def test_the_owner_plays_the_chunks_as_they_land(
    tmp_path: Path, source: str, generated: Path
) -> None:
    clip = CLIP if source == "cockatoo" else generated
    chunks, ladder = (4, ["v720", "v540", "v360"]) if source == "cockatoo" else (3, ["v360"])
    with api_client(tmp_path, **CHUNKED) as client:
        settings = client.app.state.ctx.settings
        _, owner = register(client)
        _, viewer = register(client)
        gates = Gates(client)
        try:
            video_id = upload_and_publish(client, owner, clip.read_bytes(), "")
            body, texts = _growing(client, video_id, owner, 1)
            processing = body["processing"]
            assert body["hls_url"] is None  # the video itself is not published
            assert [r["name"] for r in processing["renditions"]] == ladder
            assert processing["playable_s"] == pytest.approx(4.0, abs=0.01)
            assert "/~" in processing["hls_url"]  # signed for the owner
            assert "#EXT-X-START:TIME-OFFSET=0" in texts["master.m3u8"]
            for rung in ladder:
                media = texts[f"{rung}/index.m3u8"]
                assert "#EXT-X-PLAYLIST-TYPE:EVENT" in media and "#EXT-X-ENDLIST" not in media
                assert _listed(media) == [1, 2]  # exactly chunk 0's segments
            audio = texts["audio"]
            assert audio and "#EXT-X-ENDLIST" not in audio
            assert _listed(audio) == [1, 2]  # starts 0 and 2.005 s: before 4 s; 4.011 is not
            # Nobody else gets anything playable: no processing object, no URL without the token.
            other = client.get(f"/v1/videos/{video_id}", headers=auth(viewer))
            assert other.status_code == 404 or other.json()["processing"] is None
            unsigned = re.sub(r"/~[^/]+/", "/", processing["hls_url"])
            assert client.get(unsigned).status_code in (403, 404)
            # Released one by one, they grow in order.
            for index in range(1, chunks - 1):
                gates.open(index)
                _, texts = _growing(client, video_id, owner, index + 1)
                for rung in ladder:
                    media = texts[f"{rung}/index.m3u8"]
                    assert _listed(media) == list(range(1, 2 * index + 3))
                    assert "#EXT-X-ENDLIST" not in media
            growing_url = processing["hls_url"]
        finally:
            gates.open_all()
        final = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        assert final["status"] == "published", final["status_reason"]
        _poll(client, video_id, owner, lambda b: b["processing"] is None)
        render = final["hls_url"].split("/")[-2]
        full_dir = settings.origin_dir / media_prefix(video_id, render)
        assert verify_output(full_dir, clip) == []
        growing_render = growing_url.split("/")[-3]
        grown_dir = settings.origin_dir / media_prefix(video_id, growing_render)
        for rung in ladder:
            media = (grown_dir / rung / "index.m3u8").read_text()
            assert media.rstrip().endswith("#EXT-X-ENDLIST")
            # The growing track's segments are the finished track's, all but the last chunk's
            # (the finished one merges a short tail and lengthens its last sample).
            for number in range(1, 2 * (chunks - 1) + 1):
                name = f"{number:05d}.m4s"
                assert (grown_dir / rung / name).read_bytes() == (
                    full_dir / rung / name
                ).read_bytes(), (rung, name)
            assert (grown_dir / rung / "init.mp4").read_bytes() == (
                full_dir / rung / "init.mp4"
            ).read_bytes()
        audio_text = (grown_dir / "audio" / "index.m3u8").read_text()
        assert audio_text.rstrip().endswith("#EXT-X-ENDLIST")
        # The growing render keeps being served until the token's lifetime is over.
        assert client.get(growing_url).status_code == 200
        assert _served_until(client, video_id, growing_render) > now_ms()


def _served_until(client: TestClient[Any], video_id: str, render: str) -> int:
    from api.core.db import sync_engine

    engine = sync_engine(client.app.state.ctx.settings)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    select(superseded_renders.c.served_until).where(
                        superseded_renders.c.video_id == video_id,
                        superseded_renders.c.render_id == render,
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()
