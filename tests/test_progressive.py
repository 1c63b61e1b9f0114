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
import tempfile
import threading
import time
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


def test_hlsjs_plays_the_growing_presentation_from_its_start(tmp_path: Path) -> None:
    """Chunks 0 and 1 published (8 s), the rest held: the playlists have no ENDLIST, so hls.js
    takes it for a live presentation; EXT-X-START makes it start at 0, not at the live edge
    (3 target durations from the end: 2 s in), and playback advances."""
    with api_client(tmp_path, **CHUNKED) as client:
        settings = client.app.state.ctx.settings
        _, owner = register(client)
        gates = Gates(client, free=2)
        try:
            video_id = upload_and_publish(client, owner, CLIP.read_bytes(), "")
            body, _ = _growing(client, video_id, owner, 2)
            render = body["processing"]["hls_url"].split("/")[-3]
            folder = settings.origin_dir / media_prefix(video_id, render)
            result = play(folder, "hlsjs", timeout=90, until=3.0)
            # Still growing while it played.
            assert "#EXT-X-ENDLIST" not in (folder / "v720" / "index.m3u8").read_text()
        finally:
            gates.open_all()
        assert not result.failures(min_time=3.0), result.summary()
        assert result.first_frame_media_time is not None, result.summary()
        assert result.first_frame_media_time < 0.2, result.summary()
        assert result.current_time < 8.0  # what was there
        _poll(client, video_id, owner, lambda b: b["processing"] is None)


def test_a_chunk_that_keeps_failing_fails_the_video_and_ends_the_growing_one(
    tmp_path: Path, generated: Path
) -> None:
    """Chunk 0 published, chunk 1 fails every attempt: the video fails with a reason naming
    it, the growing presentation is served no more and never extended."""
    with api_client(tmp_path, **CHUNKED) as client:
        settings = client.app.state.ctx.settings
        _, owner = register(client)
        published = threading.Event()

        def broken(video_id: str, kind: str, index: int) -> None:
            if kind == "chunk" and index >= 1:
                published.wait(TIMEOUT_S)
                if index == 1:
                    raise RuntimeError("chunk 1 is broken")

        client.app.state.ctx.jobs.chunking.fault = broken
        try:
            video_id = upload_and_publish(client, owner, generated.read_bytes(), "")
            body, _ = _growing(client, video_id, owner, 1)
        finally:
            published.set()
        url = body["processing"]["hls_url"]
        assert client.get(url).status_code == 200
        final = _poll(client, video_id, owner, lambda b: b["status"] != "processing")
        assert final["status"] == "failed"
        assert "chunk 2 of 3 failed" in final["status_reason"]
        assert final["processing"] is None
        time.sleep(2.5)  # the origin's visibility cache
        assert client.get(url).status_code == 404
        render = url.split("/")[-3]
        media = settings.origin_dir / media_prefix(video_id, render) / "v360" / "index.m3u8"
        assert _listed(media.read_text()) == [1, 2]  # never extended past chunk 0


# ------------------------------------------------------------ two parts finishing together


@pytest.fixture(scope="module")
def parts_folder(generated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated clip's parts as the chunk and audio jobs write them (3 chunks, audio)."""
    root = tmp_path_factory.mktemp("progressive-parts")
    options = TranscodeOptions(segment_seconds=2.0)
    for index in range(3):
        chunkwork.chunk_job(generated, options, 2, 0, index, root / chunkwork.chunk_folder(index))
    chunkwork.audio_job(generated, options, root / "audio")
    return root


def _part_rows(pg: Engine, video_id: str, run_id: str, done: set[int]) -> None:
    rows = [("chunk", i, "done" if i in done else "pending") for i in range(3)]
    rows += [("audio", 0, "done"), ("assembly", 0, "pending")]
    with pg.begin() as conn:
        conn.execute(
            insert(video_parts),
            [
                {"video_id": video_id, "run_id": run_id, "kind": kind, "part": index,
                 "state": state, "attempts": 1, "updated_at": now_ms()}
                for kind, index, state in rows
            ],
        )  # fmt: skip
        progressive.open_run(conn, video_id, run_id, 3)


def _finish(pg: Engine, jobs: Any, video_id: str, run_id: str, index: int, start: Any) -> None:
    """What a chunk job does once its work is stored: its row done, then the growth."""
    start.wait()
    with pg.begin() as conn:
        conn.execute(
            update(video_parts)
            .where(
                video_parts.c.video_id == video_id,
                video_parts.c.run_id == run_id,
                video_parts.c.kind == "chunk",
                video_parts.c.part == index,
            )
            .values(state="done")
        )
    progressive.grow(jobs, video_id, run_id)


def test_two_parts_finishing_together_never_shrink_the_prefix(
    parts_folder: Path, tmp_path: Path
) -> None:
    """PostgreSQL: chunk 0 and the audio published; chunks 1 and 2 finish at the same instant
    and both extend it. Whichever goes first, the published count and the playlists only
    grow (a reader polling the playlist never sees fewer segments than before) and end with
    every chunk and ENDLIST. A run whose row a newer run replaced publishes nothing."""
    settings = make_settings(tmp_path, segment_seconds=2.0, chunk_segments=2)
    storage = make_storage(settings)
    with schema_engine() as pg:
        host = SimpleNamespace(db=pg, storage=storage, settings=settings)
        work = tmp_path / "work"
        work.mkdir()
        jobs = SimpleNamespace(host=host, workdir=lambda vid: Path(tempfile.mkdtemp(dir=work)))
        owner = insert_user(pg, "growing")
        for _ in range(6):
            video_id, run_id = insert_processing_video(pg, owner, 100), new_id("p")
            for folder in parts_folder.iterdir():
                storage.put_tree(part_prefix(video_id, run_id, folder.name).rstrip("/"), folder)
            _part_rows(pg, video_id, run_id, {0})
            assert progressive.grow(jobs, video_id, run_id) == 1
            key = f"{media_prefix(video_id, early_render_id(run_id))}v360/index.m3u8"
            seen: list[int] = []
            stop = threading.Event()

            def watch(key: str = key, seen: list[int] = seen, stop: Any = stop) -> None:
                while not stop.is_set():
                    seen.append(len(_listed(b"".join(storage.open_range(key)).decode())))

            watcher = threading.Thread(target=watch)
            watcher.start()
            start = threading.Barrier(2)
            racers = [
                threading.Thread(target=_finish, args=(pg, jobs, video_id, run_id, i, start))
                for i in (1, 2)
            ]
            for racer in racers:
                racer.start()
            for racer in racers:
                racer.join()
            stop.set()
            watcher.join()
            assert seen == sorted(seen) and seen[0] >= 2, seen
            text = b"".join(storage.open_range(key)).decode()
            assert _listed(text) == list(range(1, 7)) and "#EXT-X-ENDLIST" in text
            with pg.connect() as conn:
                row = conn.execute(
                    select(video_growing).where(video_growing.c.video_id == video_id)
                ).one()
            assert (row.chunks, row.ended) == (3, True)
        # A superseded run: its row replaced by a newer run's, it publishes nothing.
        video_id, old, new = insert_processing_video(pg, owner, 100), new_id("p"), new_id("p")
        for folder in parts_folder.iterdir():
            storage.put_tree(part_prefix(video_id, old, folder.name).rstrip("/"), folder)
        _part_rows(pg, video_id, old, {0, 1, 2})
        with pg.begin() as conn:
            progressive.open_run(conn, video_id, new, 3)
        assert progressive.grow(jobs, video_id, old) is None
        assert storage.list(media_prefix(video_id)) == []
