"""The processing job (api/jobs/transcode.py) against the real embedded app: SQLite, local
storage, the engine, and the in-process Dramatiq worker.

Issue 3, "Video lifecycle and jobs": reload the row, skip what is not processing, reject bad
input with a reason and never retry it, publish in one step, publish once however often the
job runs, and leave nothing behind for a video deleted meanwhile.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, select, update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import sync_engine
from api.core.settings import Settings
from api.core.tables import users, videos
from api.jobs.inputs import UploadIncompleteError
from api.jobs.report import owner_reason, summarize
from api.jobs.transcode import MAX_ATTEMPTS, Runtime
from cdn.storage import LocalStorage, ObjectInfo
from engine.errors import NotMediaError
from engine.sample import make_sample
from tests.support.api import api_client, make_settings
from tests.support.clips import ffmpeg
from tests.support.jobs import (
    history,
    insert_processing_video,
    insert_user,
    put_upload,
    stage_video,
    video_row,
    wait_for,
)

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def sample_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s 360x640 clip with audio: one rung, quick to transcode."""
    return make_sample(
        tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=3, width=360, height=640
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    with api_client(tmp_path_factory.mktemp("processing")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ctx(client: TestClient[Any]) -> AppContext:
    context: AppContext = client.app.state.ctx
    return context


@pytest.fixture(scope="module")
def db(ctx: AppContext) -> Iterator[Engine]:
    engine = sync_engine(ctx.settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def runtime(ctx: AppContext) -> Iterator[Runtime]:
    job = Runtime(ctx.settings)
    yield job
    job.close()


def video_count(db: Engine, user_id: str) -> int:
    with db.connect() as conn:
        return int(
            conn.execute(select(users.c.video_count).where(users.c.id == user_id)).scalar_one()
        )


def keys(storage: Any, prefix: str) -> list[str]:
    return [info.key for info in storage.list(prefix)]


def read(storage: Any, key: str) -> bytes:
    return b"".join(storage.open_range(key))


def delete_video(db: Engine, video_id: str) -> None:
    """What the owner's DELETE does to the row."""
    with db.begin() as conn:
        lifecycle.move_sync(conn, video_id, lifecycle.DELETED, "deleted by its owner")


# ------------------------------------------------------------------------ publishing


def test_process_publishes_once(
    ctx: AppContext, db: Engine, runtime: Runtime, sample_clip: Path
) -> None:
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip)

    runtime.process(vid)

    row = video_row(db, vid)
    assert row.status == "published", row.status_reason
    assert row.render_id and row.render_id.startswith("r_")
    assert row.published_at and row.attempts == 1
    prefix = f"media/{vid}/{row.render_id}/"
    stored = keys(ctx.storage, f"media/{vid}/")
    assert stored and all(key.startswith(prefix) for key in stored)
    names = {key[len(prefix) :] for key in stored}
    for name in ("master.m3u8", "manifest.mpd", "poster.jpg", "storyboard.jpg", "report.json"):
        assert name in names
    report = json.loads(read(ctx.storage, prefix + "report.json"))
    for rung in report["ladder"]["video"]:
        count = report["renditions"][rung["name"]]["segment_count"]
        segments = [n for n in names if n.startswith(rung["name"] + "/") and n.endswith(".m4s")]
        assert len(segments) == count > 0
        assert f"{rung['name']}/init.mp4" in names

    renditions = json.loads(row.renditions)
    assert [r["name"] for r in renditions] == [r["name"] for r in report["ladder"]["video"]]
    master = read(ctx.storage, prefix + "master.m3u8").decode()
    for rendition in renditions:
        assert set(rendition) == {"name", "width", "height", "bandwidth", "codecs"}
        assert f"BANDWIDTH={rendition['bandwidth']}," in master
        assert f'CODECS="{rendition["codecs"]}"' in master
    assert (row.width, row.height) == (360, 640)
    assert row.duration_s == pytest.approx(3.0, abs=0.2)
    assert video_count(db, owner) == 1
    assert history(db, vid)[-1] == ("processing", "published", "published")
    assert list(ctx.settings.work_dir.iterdir()) == []  # the job's temp dir is gone

    # Delivered again: nothing new is published, stored or counted.
    runtime.process(vid)
    again = video_row(db, vid)
    assert (again.status, again.render_id, again.attempts) == ("published", row.render_id, 1)
    assert keys(ctx.storage, f"media/{vid}/") == stored
    assert [h for h in history(db, vid) if h[1] == "published"] == [
        ("processing", "published", "published")
    ]
    assert video_count(db, owner) == 1


def test_real_clip_through_the_in_process_worker(
    client: TestClient[Any], ctx: AppContext, db: Engine, media: Path
) -> None:
    smallest = min(
        (p for p in media.iterdir() if p.suffix in (".mp4", ".webm", ".ts")),
        key=lambda p: p.stat().st_size,
    )
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, smallest)

    ctx.jobs.enqueue_transcode(vid, "normal")
    wait_for(lambda: video_row(db, vid).status != "processing", 300, f"{vid} to be processed")

    row = video_row(db, vid)
    assert row.status == "published", f"{smallest.name}: {row.status_reason}"
    assert json.loads(row.renditions)
    master = client.get(f"/media/{vid}/{row.render_id}/master.m3u8")
    assert master.status_code == 200
    variant = next(line for line in master.text.splitlines() if line.endswith(".m3u8"))
    playlist = client.get(f"/media/{vid}/{row.render_id}/{variant}")
    assert playlist.status_code == 200
    rung = variant.split("/")[0]
    segment_name = next(line for line in playlist.text.splitlines() if line.endswith(".m4s"))
    segment = client.get(f"/media/{vid}/{row.render_id}/{rung}/{segment_name}")
    assert segment.status_code == 200
    assert segment.content == read(
        ctx.storage, f"media/{vid}/{row.render_id}/{rung}/{segment_name}"
    )


def test_two_deliveries_at_once_publish_once(
    ctx: AppContext, db: Engine, sample_clip: Path
) -> None:
    """Two workers on the same video: one takes the job's lease and publishes, the other is
    skipped (issue 16: a job is held with a lease, api/jobs/joblease.py) and stores nothing."""
    import threading

    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip)
    runtimes = [Runtime(ctx.settings), Runtime(ctx.settings)]
    errors: list[BaseException] = []

    def work(job: Runtime) -> None:
        try:
            job.process(vid)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(job,)) for job in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    for job in runtimes:
        job.close()

    assert errors == []
    row = video_row(db, vid)
    assert row.status == "published" and row.attempts == 1  # the second never ran
    renders = {key.split("/")[2] for key in keys(ctx.storage, f"media/{vid}/")}
    assert renders == {row.render_id}
    assert sum(1 for h in history(db, vid) if h[1] == "published") == 1
    assert video_count(db, owner) == 1


# ------------------------------------------------------------------------- rejection


@pytest.mark.parametrize(
    ("name", "expected"),
    [("text", "not a media file"), ("multiple-aac-tracks.mp4", "no video stream")],
)
def test_rejected_input_says_why_and_stores_nothing(
    ctx: AppContext,
    db: Engine,
    runtime: Runtime,
    media: Path,
    tmp_path: Path,
    name: str,
    expected: str,
) -> None:
    if name == "text":
        source = tmp_path / "holiday.mp4"
        source.write_text("this is a text file pretending to be a video\n" * 50)
    else:
        source = media / name
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, source)

    runtime.process(vid)  # returns normally: a rejection is never retried

    row = video_row(db, vid)
    assert row.status == "rejected"
    assert expected in row.status_reason
    assert str(ctx.settings.data_dir) not in row.status_reason
    assert "Errno" not in row.status_reason
    assert history(db, vid)[-1] == ("processing", "rejected", row.status_reason)
    assert keys(ctx.storage, f"media/{vid}/") == []
    assert video_count(db, owner) == 0

    runtime.process(vid)
    assert video_row(db, vid).attempts == 1  # not claimed again


def test_owner_reason_hides_server_paths() -> None:
    workdir = Path("/srv/reelforge/work/v_abc-123")
    exc = NotMediaError(
        "not a media file: [Errno 1094995529] Invalid data found when processing input: "
        f"'{workdir}/source'"
    )
    assert (
        owner_reason(exc, workdir) == "not a media file: Invalid data found when processing input"
    )


def test_a_still_image_upload_is_rejected_with_the_reason(
    ctx: AppContext, db: Engine, runtime: Runtime, tmp_path: Path
) -> None:
    source = tmp_path / "holiday.mp4"  # a PNG, named like a video
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360", "-frames:v", "1", "-c:v", "png",
           "-f", "image2", str(source))  # fmt: skip
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, source)

    runtime.process(vid)

    row = video_row(db, vid)
    assert row.status == "rejected"
    assert row.status_reason == "still image: the file holds one picture (png), not a video"
    assert keys(ctx.storage, f"media/{vid}/") == []


def test_the_duration_cap_is_a_setting(
    ctx: AppContext, db: Engine, sample_clip: Path, tmp_path: Path
) -> None:
    env = {"REELFORGE_DATA_DIR": str(tmp_path), "REELFORGE_MAX_DURATION_SECONDS": "2.5"}
    assert Settings.from_env(env).max_duration_seconds == 2.5
    assert Settings(data_dir=tmp_path).resolved().max_duration_seconds == 600
    capped = Runtime(replace(ctx.settings, max_duration_seconds=2.0), storage=ctx.storage, db=db)
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip)  # 3 s

    capped.process(vid)

    row = video_row(db, vid)
    assert row.status == "rejected"
    assert row.status_reason == "video too long: 3.0 s, the limit is 2 s"


# -------------------------------------------------------------------------- deletion


class HookedStorage(LocalStorage):
    """Real local storage that runs a callback at one point of the job (to time a delete)."""

    def __init__(
        self,
        root: Path,
        *,
        after_put_tree: Callable[[], None] | None = None,
        on_upload_read: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(root)
        self.after_put_tree = after_put_tree
        self.on_upload_read = on_upload_read
        self.trees: list[list[ObjectInfo]] = []

    def put_tree(self, prefix: str, directory: Path) -> list[ObjectInfo]:
        infos = super().put_tree(prefix, directory)
        self.trees.append(infos)
        if self.after_put_tree is not None:
            # Once: the job may store more than one tree (outputs, then safety frames).
            hook, self.after_put_tree = self.after_put_tree, None
            hook()
        return infos

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if key.startswith("uploads/") and self.on_upload_read is not None:
            self.on_upload_read()
        return super().open_range(key, start, end)


def test_deleted_after_outputs_are_stored_leaves_nothing(
    ctx: AppContext, db: Engine, sample_clip: Path
) -> None:
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip)
    storage = HookedStorage(ctx.settings.origin_dir, after_put_tree=lambda: delete_video(db, vid))
    job = Runtime(ctx.settings, storage=storage, db=db)

    job.process(vid)

    assert storage.trees and storage.trees[0]  # the outputs were stored...
    assert video_row(db, vid).status == "deleted"
    assert keys(ctx.storage, f"media/{vid}/") == []  # ...and removed by the job
    assert keys(ctx.storage, f"safety/{vid}/") == []
    assert all(h[1] != "published" for h in history(db, vid))
    assert video_count(db, owner) == 0


def test_deleted_during_transcode_stores_nothing(
    ctx: AppContext, db: Engine, sample_clip: Path
) -> None:
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip)
    deleted: list[bool] = []

    def delete_once() -> None:
        if not deleted:
            delete_video(db, vid)
            deleted.append(True)

    storage = HookedStorage(ctx.settings.origin_dir, on_upload_read=delete_once)
    job = Runtime(ctx.settings, storage=storage, db=db)

    job.process(vid)

    assert deleted and storage.trees == []
    assert video_row(db, vid).status == "deleted"
    assert keys(ctx.storage, f"media/{vid}/") == []
    assert list(ctx.settings.work_dir.iterdir()) == []


def test_deleted_video_is_skipped(ctx: AppContext, db: Engine, runtime: Runtime) -> None:
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 10)
    put_upload(ctx.storage, vid, b"0123456789")
    delete_video(db, vid)

    runtime.process(vid)
    runtime.process("v_doesnotexist")

    row = video_row(db, vid)
    assert (row.status, row.attempts) == ("deleted", 0)


def test_cleanup_removes_a_deleted_videos_objects(
    ctx: AppContext, db: Engine, runtime: Runtime
) -> None:
    owner = insert_user(db)
    gone = insert_processing_video(db, owner, 4)
    kept = insert_processing_video(db, owner, 4)
    for vid in (gone, kept):
        put_upload(ctx.storage, vid, b"abcd", parts=2)
        ctx.storage.put_bytes(f"media/{vid}/r_old/master.m3u8", b"#EXTM3U\n")
        ctx.storage.put_bytes(f"media/{vid}/r_old/v360/00001.m4s", b"segment")
    delete_video(db, gone)

    runtime.cleanup(gone)
    runtime.cleanup(kept)  # not deleted: untouched

    assert keys(ctx.storage, f"media/{gone}/") == []
    assert keys(ctx.storage, f"uploads/{gone}/") == []
    assert len(keys(ctx.storage, f"media/{kept}/")) == 2
    assert len(keys(ctx.storage, f"uploads/{kept}/")) == 2
    runtime.cleanup(gone)  # idempotent
    runtime.cleanup("v_neverexisted")
    assert keys(ctx.storage, f"media/{gone}/") == []


# --------------------------------------------------------------------- our failures


def test_incomplete_upload_is_retried_then_failed(
    ctx: AppContext, db: Engine, runtime: Runtime
) -> None:
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 1000)
    put_upload(ctx.storage, vid, b"x" * 400)

    with pytest.raises(UploadIncompleteError, match="400 bytes stored, 1000 declared"):
        runtime.process(vid)
    assert (video_row(db, vid).status, video_row(db, vid).attempts) == ("processing", 1)

    with db.begin() as conn:
        conn.execute(update(videos).where(videos.c.id == vid).values(attempts=MAX_ATTEMPTS - 1))
    runtime.process(vid)  # the last attempt records the failure instead of raising

    row = video_row(db, vid)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert f"after {MAX_ATTEMPTS} attempts" in row.status_reason
    assert history(db, vid)[-1] == ("processing", "failed", row.status_reason)
    assert list(ctx.settings.work_dir.iterdir()) == []


def test_parts_that_do_not_line_up_are_refused(
    ctx: AppContext, db: Engine, runtime: Runtime
) -> None:
    owner = insert_user(db)
    vid = insert_processing_video(db, owner, 8)
    ctx.storage.put_bytes(f"uploads/{vid}/000000000000", b"abcd")
    ctx.storage.put_bytes(f"uploads/{vid}/000000000005", b"efgh")  # a byte is missing

    with pytest.raises(UploadIncompleteError, match="part at 5 but 4 bytes before it"):
        runtime.process(vid)


def test_past_the_budget_fails_without_running(
    ctx: AppContext, db: Engine, runtime: Runtime, sample_clip: Path
) -> None:
    """Deliveries after killed workers count too: past the budget the video is failed."""
    owner = insert_user(db)
    vid = stage_video(db, ctx.storage, owner, sample_clip, attempts=MAX_ATTEMPTS)

    runtime.process(vid)

    row = video_row(db, vid)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS + 1
    assert keys(ctx.storage, f"media/{vid}/") == []


def test_unfinished_lists_processing_videos_with_their_lane(db: Engine, runtime: Runtime) -> None:
    owner = insert_user(db)
    normal = insert_processing_video(db, owner, 1)
    bulk = insert_processing_video(db, owner, 1, lane="bulk")
    waiting = insert_processing_video(db, owner, 1, status="uploaded")
    done = insert_processing_video(db, owner, 1, status="published")

    pending = dict(runtime.unfinished())

    assert pending[normal] == "normal" and pending[bulk] == "bulk"
    assert waiting not in pending and done not in pending


def test_summarize_takes_the_top_rendition() -> None:
    report = {
        "source": {"duration": 9.9},
        "ladder": {
            "video": [
                {"name": "v720", "width": 720, "height": 1280},
                {"name": "v360", "width": 360, "height": 640},
            ]
        },
        "renditions": {
            "v720": {"codecs": "avc1.64001f", "peak_bitrate": 2_000_000, "duration": 10.0},
            "v360": {"codecs": "avc1.64001e", "peak_bitrate": 600_000, "duration": 10.0},
            "audio": {"codecs": "mp4a.40.2", "peak_bitrate": 130_000, "duration": 10.0},
        },
    }
    summary = summarize(report)
    assert (summary["width"], summary["height"], summary["duration_s"]) == (720, 1280, 10.0)
    assert json.loads(summary["renditions"]) == [
        {
            "name": "v720",
            "width": 720,
            "height": 1280,
            "bandwidth": 2_130_000,
            "codecs": "avc1.64001f,mp4a.40.2",
        },
        {
            "name": "v360",
            "width": 360,
            "height": 640,
            "bandwidth": 730_000,
            "codecs": "avc1.64001e,mp4a.40.2",
        },
    ]


def test_sweep_removes_work_dirs_left_by_killed_runs(tmp_path: Path) -> None:
    """A SIGKILLed run skips its `finally`: the next run's sweep removes what it left, but
    never a dir young enough to belong to a job still running in another worker."""
    from dataclasses import replace as dc_replace

    settings = dc_replace(make_settings(tmp_path), transcode_time_limit_s=60)
    job = Runtime(settings)
    settings.work_dir.mkdir(parents=True)
    stale = settings.work_dir / "v_stale-abc"
    (stale / "out").mkdir(parents=True)
    (stale / "source").write_bytes(b"x" * 1000)
    old = time.time() - (60 + 900 + 5)
    os.utime(stale, (old, old))
    running = settings.work_dir / "v_running-def"
    running.mkdir()
    assert job.sweep_work() == 1
    assert not stale.exists()
    assert running.is_dir()
    assert job.sweep_work(older_than_s=0) == 1
    assert not running.exists()
