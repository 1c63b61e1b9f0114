"""The whole flow against `reelforge serve` in a subprocess, embedded mode (issue 3, "Tests
that must exist and pass"): SQLite, a local origin directory, jobs in-process.

Real clips from tests/media (short ones: the suite runs on two cores), uploaded the three
ways a client can, processed by the server's own worker and played back through `hls_url`.
Faults: a text file named .mp4 ends `rejected` with its reason; a server killed with SIGKILL in
the middle of a transcode finishes the job after a restart, publishing exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.core.tables import videos
from tests.conftest import MEDIA
from tests.support.e2e import Account, Flow
from tests.support.services import (
    ApiProcess,
    alive,
    cmdline,
    embedded_env,
    free_port,
    group_processes,
    process_tree,
)

# 854x480 with AAC and an edit list, 9 s; 640x360 2:1 SAR, no audio, 5 s; 1920x1080 with a
# -90° display matrix, 2 s (must come out portrait).
SIGNED_CLIP, DIRECT_CLIP, TUS_CLIP = "edts.mp4", "sar_2x1.mp4", "rotate-buck-bunny.mp4"
# 14 s of 1280x720: long enough to be caught in the middle of its transcode.
SLOW_CLIP = "cockatoo.mp4"


def media(name: str) -> Path:
    path = MEDIA / name
    assert path.is_file(), f"real test media missing: {path}"
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiProcess]:
    api = ApiProcess(embedded_env(tmp_path / "data"), free_port(), tmp_path / "serve.log")
    with api:
        api.start()
        yield api


def history(flow: Flow, who: Account, video_id: str) -> list[dict[str, str]]:
    response = flow.http.get(f"/v1/videos/{video_id}/history", headers=who.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["history"])


def published_once(flow: Flow, who: Account, video_id: str) -> None:
    moves = [entry["to_status"] for entry in history(flow, who, video_id)]
    assert moves.count("published") == 1, moves


def test_embedded_end_to_end(server: ApiProcess, tmp_path: Path) -> None:
    with Flow(server.url) as flow:
        creator, fan = flow.register(), flow.register()
        uploads = {
            "signed": flow.upload_signed(creator, media(SIGNED_CLIP)),
            "direct": flow.upload_direct(creator, media(DIRECT_CLIP)),
            "tus": flow.upload_tus(creator, media(TUS_CLIP)),
        }
        fake = tmp_path / "holiday.mp4"
        fake.write_text("this is a text file, not a video\n" * 200)
        rejected_id = flow.upload_direct(creator, fake)
        for kind, video_id in uploads.items():
            assert flow.video(video_id, creator)["status"] == "uploaded", kind
            body = flow.publish(creator, video_id, caption=f"via {kind}")
            assert body["status"] == "processing"
        flow.publish(creator, rejected_id, caption="not a video")

        videos = {kind: flow.wait_status(vid, creator) for kind, vid in uploads.items()}
        for kind, video in videos.items():
            assert video["status"] == "published", (kind, video["status_reason"])
            assert video["caption"] == f"via {kind}"
            assert video["author"]["id"] == creator.id
            assert video["renditions"] and video["duration_s"] > 0
            assert video["hls_url"] and video["dash_url"] and video["poster_url"]
            published_once(flow, creator, video["id"])
        rotated = videos["tus"]
        assert rotated["height"] > rotated["width"], "the -90° source must play upright"

        rejected = flow.wait_status(rejected_id, creator)
        assert rejected["status"] == "rejected"
        reason = rejected["status_reason"]
        assert "media" in reason.lower() and "\n" not in reason, reason
        assert str(tmp_path) not in reason, "the reason must not leak server paths"
        assert rejected["hls_url"] is None

        # Playback through the origin: what a player fetches first.
        for video in videos.values():
            playback = flow.play(video)
            assert playback.init_section[4:8] == b"ftyp"
            assert playback.segment[4:8] in (b"styp", b"moof"), playback.segment[:16]
            assert playback.segment_content_type.startswith(("video/", "audio/"))
        signed = videos["signed"]
        dash = flow.http.get(signed["dash_url"])
        assert dash.status_code == 200 and "<MPD" in dash.text
        poster = flow.http.get(signed["poster_url"])
        assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"

        # Social: each retried with the same Idempotency-Key counts once.
        for _ in range(2):
            flow.like(fan, signed["id"], key="like-1")
            flow.follow(fan, creator.id, key="follow-1")
        first = flow.comment(fan, signed["id"], "nice edit", key="comment-1").json()
        again = flow.comment(fan, signed["id"], "nice edit", key="comment-1").json()
        assert again == first
        after = flow.video(signed["id"], fan)
        assert (after["like_count"], after["comment_count"]) == (1, 1)
        assert flow.user(creator.id)["follower_count"] == 1
        comments = flow.comments(signed["id"], fan)["comments"]
        assert [c["body"] for c in comments] == ["nice edit"]

        following = flow.feed(fan, "following")
        assert following["source"] == "following"
        assert {v["id"] for v in following["videos"]} == set(uploads.values())
        for_you = flow.feed(fan, "for_you")
        assert for_you["source"] in ("ranked", "trending")
        shown = {v["id"] for v in for_you["videos"]}
        assert shown and shown <= set(uploads.values()), shown
        assert all(v["status"] == "published" for v in for_you["videos"])
        # The creator's own grid and the lone fan: nothing but what they follow.
        assert flow.feed(creator, "following")["videos"] == []


def _encoder_running(api: ApiProcess) -> bool:
    """The engine's sandboxed child (a multiprocessing spawn) runs in the server's group."""
    return any("spawn_main" in cmdline(pid) for pid in group_processes(api.pgid) if pid != api.pid)


def test_restart_mid_job_publishes_once(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    first = ApiProcess(embedded_env(data_dir), port, tmp_path / "first.log")
    with first, Flow(first.url) as flow:
        first.start()
        creator = flow.register()
        video_id = flow.upload_direct(creator, media(SLOW_CLIP))
        flow.publish(creator, video_id, caption="interrupted")
        flow.wait_status(video_id, creator, {"processing"}, deadline_s=60, interval_s=0.05)
        deadline = time.monotonic() + 60
        while not _encoder_running(first):
            assert time.monotonic() < deadline, first.log_tail()
            assert flow.video(video_id, creator)["status"] == "processing", first.log_tail()
            time.sleep(0.05)
        pgid, tree = first.pgid, process_tree(first.pid)
        first.kill()
        assert alive(tree) == [], "an encoder outlived the killed server"
        assert group_processes(pgid) == []

    second = ApiProcess(embedded_env(data_dir), port, tmp_path / "second.log")
    with second, Flow(second.url) as flow:
        second.start()
        assert "re-enqueued 1 unfinished video" in second.log(), second.log_tail()
        video = flow.wait_status(video_id, creator, deadline_s=240)
        assert video["status"] == "published", (video["status_reason"], second.log_tail())
        moves = [entry["to_status"] for entry in history(flow, creator, video_id)]
        assert moves.count("published") == 1, moves
        assert moves.count("processing") >= 1, moves
        playback = flow.play(video)
        assert playback.segment[4:8] in (b"styp", b"moof")
        renders = {p.name for p in (data_dir / "origin" / "media" / video_id).iterdir()}
        assert renders == {video["hls_url"].split("/")[-2]}, renders
    assert attempts(data_dir, video_id) == 2, "the killed run and the one after the restart"


def attempts(data_dir: Path, video_id: str) -> int:
    """Deliveries the job has had, from the server's own database."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"sqlite:///{data_dir / 'reelforge.db'}")
    with engine.connect() as conn:
        query = sqlalchemy.select(videos.c.attempts).where(videos.c.id == video_id)
        value = int(conn.execute(query).scalar_one())
    engine.dispose()
    return value
