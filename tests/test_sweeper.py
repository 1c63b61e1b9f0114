"""The storage sweeper (api/jobs/sweeper.py; issue 16 item 3, "Nothing left behind"), against
real PostgreSQL and both storages (a local directory, and moto's S3 server over the protocol):
a render or work prefix no row points at goes once it is older than the grace period and not
before; the prefix a video points at never goes; a writer killed mid-stream leaves an incomplete
multipart upload (local: a temp file) that the sweep aborts; and a production worker killed
with SIGKILL while it stores a video's outputs leaves a partial prefix that the sweep removes,
while the retry publishes the video normally.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, update

import worker
from api.core.db import create_schema, new_id, now_ms, sync_engine
from api.core.keys import media_prefix, safety_prefix, work_prefix
from api.core.settings import Settings
from api.core.tables import superseded_renders, video_parts, video_safety, videos
from api.jobs.publish import early_render_id
from api.jobs.sweeper import sweep
from cdn.storage import TEMP_PREFIX, LocalStorage, S3Storage, Storage
from tests.conftest import MEDIA
from tests.support.api import api_client, make_settings
from tests.support.jobs import (
    insert_processing_video,
    insert_user,
    stage_video,
    video_row,
    wait_for,
)
from tests.support.pg import schema_engine
from tests.support.s3 import ACCESS_KEY, SECRET_KEY
from tests.support.services import (
    ROOT,
    WorkerProcess,
    ensure_postgres,
    ensure_redis,
    fresh_postgres_database,
    production_env,
    redis_database,
    start_moto,
)
from tests.support.throttle import ThrottledRelay

HOUR = 3600.0


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    with schema_engine() as engine:
        yield engine


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


def s3_storage(endpoint: str, bucket: str | None = None) -> S3Storage:
    storage = S3Storage(endpoint, ACCESS_KEY, SECRET_KEY, bucket or "sweep-" + new_id("b")[2:])
    storage.ensure_bucket()
    return storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return LocalStorage(tmp_path / "origin")
    endpoint: str = request.getfixturevalue("moto_endpoint")
    return s3_storage(endpoint)


def point_at(pg: Engine, video_id: str, render_id: str, status: str = "published") -> None:
    with pg.begin() as conn:
        conn.execute(
            update(videos).where(videos.c.id == video_id).values(render_id=render_id, status=status)
        )


def keys(storage: Storage, prefix: str) -> list[str]:
    return [info.key for info in storage.list(prefix)]


def test_an_unreferenced_render_goes_after_the_grace_period_never_the_pointed_one(
    pg: Engine, storage: Storage
) -> None:
    vid = insert_processing_video(pg, insert_user(pg), 1)
    point_at(pg, vid, "r_current")
    # A frame a moderator is shown keeps its render's safety frames, even once superseded.
    with pg.begin() as conn:
        conn.execute(
            insert(video_safety).values(
                video_id=vid,
                worst_frames=json.dumps([{"key": f"{safety_prefix(vid, 'r_judged')}0.jpg"}]),
                created_at=now_ms(),
            )
        )
    orphan = new_id("v")  # a video no row knows at all
    for key in (
        f"{media_prefix(vid, 'r_current')}master.m3u8",
        f"{safety_prefix(vid, 'r_current')}0.jpg",
        f"{media_prefix(vid, 'r_superseded')}master.m3u8",
        f"{media_prefix(vid, 'r_superseded')}v360/init.mp4",
        f"{safety_prefix(vid, 'r_superseded')}0.jpg",
        f"{safety_prefix(vid, 'r_judged')}0.jpg",
        f"{media_prefix(orphan, 'r_lost')}master.m3u8",
        f"uploads/{vid}/000000000000",
    ):
        storage.put_bytes(key, b"x")

    young = sweep(pg, storage, grace_s=HOUR)
    assert (young.renders, young.objects) == ([], 0)
    assert len(keys(storage, "media/")) == 4 and len(keys(storage, "safety/")) == 3

    # The same objects an hour and a second later (the clock moves, not the objects).
    later = sweep(pg, storage, grace_s=HOUR, now=time.time() + HOUR + 1)
    assert sorted(later.renders) == sorted(
        [media_prefix(vid, "r_superseded"), media_prefix(orphan, "r_lost")]
    )
    assert later.objects == 4
    assert keys(storage, "media/") == [f"{media_prefix(vid, 'r_current')}master.m3u8"]
    assert keys(storage, "safety/") == [
        f"{safety_prefix(vid, 'r_current')}0.jpg",
        f"{safety_prefix(vid, 'r_judged')}0.jpg",
    ]
    assert keys(storage, "uploads/") == [f"uploads/{vid}/000000000000"]  # not the sweep's

    # Even with no grace at all, the prefix the row points at stays.
    assert sweep(pg, storage, grace_s=0).renders == []
    assert keys(storage, media_prefix(vid, "r_current")) != []


def test_a_replaced_render_stays_while_the_origin_still_serves_it(
    pg: Engine, storage: Storage
) -> None:
    """A render swapped out by the full ladder (issue 15, "Playable early") stays, however old,
    until its `served_until`; then it goes like any other unreferenced render."""
    vid = insert_processing_video(pg, insert_user(pg), 1)
    point_at(pg, vid, "r_full")
    with pg.begin() as conn:
        conn.execute(
            insert(superseded_renders),
            [
                {"video_id": vid, "render_id": "r_served", "served_until": now_ms() + 60_000},
                {"video_id": vid, "render_id": "r_expired", "served_until": now_ms() - 1},
            ],
        )
    for render in ("r_full", "r_served", "r_expired"):
        storage.put_bytes(f"{media_prefix(vid, render)}master.m3u8", b"x")
    report = sweep(pg, storage, grace_s=HOUR, now=time.time() + 2 * HOUR)
    assert report.renders == [media_prefix(vid, "r_expired")]
    assert keys(storage, "media/") == [
        f"{media_prefix(vid, 'r_full')}master.m3u8",
        f"{media_prefix(vid, 'r_served')}master.m3u8",
    ]


def test_work_prefixes_of_runs_that_are_over_go_live_runs_stay(
    pg: Engine, storage: Storage
) -> None:
    owner = insert_user(pg)
    live, early, done = (insert_processing_video(pg, owner, 1) for _ in range(3))
    runs = {live: new_id("p"), early: new_id("p"), done: new_id("p")}
    with pg.begin() as conn:
        conn.execute(
            insert(video_parts),
            [
                {"video_id": vid, "run_id": run, "kind": "chunk", "part": 0,
                 "state": "done", "attempts": 1, "updated_at": now_ms()}
                for vid, run in runs.items()
            ],
        )  # fmt: skip
    point_at(pg, done, "r_stitched")  # published by its assembly: the run is over
    # Published early (its run's own render): the chunks still go on (api/jobs/partrows.py).
    point_at(pg, early, early_render_id(runs[early]))
    superseded = new_id("p")  # a run a newer one replaced: its rows are gone
    for vid, run in [*runs.items(), (live, superseded)]:
        storage.put_bytes(f"{work_prefix(vid, run)}chunk-0000/v360/init.mp4", b"x")

    assert sweep(pg, storage, grace_s=HOUR).work == []
    later = sweep(pg, storage, grace_s=HOUR, now=time.time() + HOUR + 1)
    assert sorted(later.work) == sorted(
        [work_prefix(done, runs[done]), work_prefix(live, superseded)]
    )
    assert keys(storage, "work/") == sorted(
        f"{work_prefix(vid, runs[vid])}chunk-0000/v360/init.mp4" for vid in (live, early)
    )


WRITER = """
import sys, time
from cdn.storage import LocalStorage, S3Storage
from tests.support.s3 import ACCESS_KEY, SECRET_KEY
kind, where, bucket = sys.argv[1:4]
if kind == "s3":
    storage = S3Storage(where, ACCESS_KEY, SECRET_KEY, bucket)
    size = storage.part_size + 1024 * 1024  # one whole part goes out, the rest never comes
else:
    storage = LocalStorage(where)
    size = 1024 * 1024
def chunks():
    for _ in range(size // 65536):
        yield bytes(65536)
    time.sleep(600)  # the client is still sending when it is killed
storage.put_stream("uploads/v_killed/000000000000", chunks())
"""


def stale_writes(storage: Storage) -> list[str]:
    """The incomplete multipart uploads with a part sent (S3) or the in-flight temp files
    (local) in the store. (moto reports every upload as initiated in 2010, so an upload with
    no part yet would look stale to it; S3 and MinIO report the real time.)"""
    if isinstance(storage, S3Storage):
        page = storage.client._list_multipart_uploads(storage.bucket)
        return [
            upload.object_name
            for upload in page.uploads
            if storage.client._list_parts(
                storage.bucket, upload.object_name, str(upload.upload_id)
            ).parts
        ]
    assert isinstance(storage, LocalStorage)
    return [str(path) for path in storage.root.rglob(f"{TEMP_PREFIX}*")]


def test_a_writer_killed_mid_stream_leaves_an_upload_the_sweep_aborts(
    pg: Engine, storage: Storage
) -> None:
    if isinstance(storage, S3Storage):
        args = ["s3", storage.endpoint, storage.bucket]
    else:
        assert isinstance(storage, LocalStorage)
        args = ["local", str(storage.root), "-"]
    writer = subprocess.Popen([sys.executable, "-c", WRITER, *args], cwd=ROOT)
    try:
        wait_for(lambda: stale_writes(storage) != [], 60, "the writer to start its upload")
    finally:
        writer.kill()  # SIGKILL: no abort, no cleanup
        writer.wait(10)
    assert len(stale_writes(storage)) == 1
    assert storage.list("uploads/") == []  # never completed: no object

    assert sweep(pg, storage, grace_s=HOUR).aborted_uploads == 0  # young: it may be alive
    assert len(stale_writes(storage)) == 1
    assert sweep(pg, storage, grace_s=0).aborted_uploads == 1
    assert stale_writes(storage) == []


def test_embedded_mode_sweeps_on_its_interval(tmp_path: Path) -> None:
    """The app's `sweeper_loop` enqueues `sweep_storage`, which the in-process worker runs."""
    origin = LocalStorage(tmp_path / "origin")
    lost = f"{media_prefix(new_id('v'), 'r_lost')}master.m3u8"
    origin.put_bytes(lost, b"x")
    origin.put_bytes("uploads/v_kept/000000000000", b"x")
    with api_client(tmp_path, storage_sweep_interval_seconds=0.2, storage_grace_seconds=0):
        wait_for(lambda: not origin.exists(lost), 30, "the sweep to remove the lost render")
    assert origin.exists("uploads/v_kept/000000000000")


def test_default_grace_outlives_every_signed_url(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    longest = max(settings.playback_token_ttl_seconds, settings.review_token_ttl_seconds)
    # Signed URLs live their TTL plus up to 5 min (cdn/signing.py rounds the expiry up).
    assert settings.storage_grace_seconds > longest + 300 + settings.transcode_time_limit_s
    assert make_settings(tmp_path, storage_grace_seconds=0).storage_grace_seconds == 0


# ------------------------------------------------------------ a worker killed mid-store


def test_a_worker_killed_mid_store_leaves_a_prefix_the_sweep_removes(tmp_path: Path) -> None:
    """SIGKILL a `dramatiq worker:setup` process while it stores a video's outputs (its link to
    the S3 server slowed to 64 KB/s up, so the store takes seconds): a partial render prefix
    stays, no row points at it; the sweep (grace 0) removes it, and the retry on another
    worker publishes the video under a render of its own, which the next sweep keeps."""
    ensure_redis()
    ensure_postgres()
    with ExitStack() as stack:
        moto, endpoint = start_moto()
        stack.callback(moto.stop)
        relay = stack.enter_context(ThrottledRelay(endpoint, upload_bytes_per_s=64 * 1024))
        database_url = stack.enter_context(fresh_postgres_database())
        redis_url = stack.enter_context(redis_database())
        env = production_env(
            tmp_path / "data",
            database_url=database_url,
            redis_url=redis_url,
            s3_endpoint=relay.endpoint,
            REELFORGE_CHUNK_THRESHOLD_SECONDS="0",
        )
        settings = Settings.from_env(env)
        storage = s3_storage(endpoint, settings.s3_bucket)  # straight to the server
        db = sync_engine(settings)
        stack.callback(db.dispose)
        create_schema(db)
        slow = stack.enter_context(WorkerProcess(env, tmp_path / "w1.log"))
        slow.start()
        jobs = worker.build(settings)
        stack.callback(jobs.stop)
        vid = stage_video(db, storage, insert_user(db), MEDIA / "edts.mp4")
        jobs.enqueue_transcode(vid, "normal")

        wait_for(lambda: storage.list(media_prefix(vid)) != [], 300, "the store to begin")
        slow.kill()
        relay.wait_idle(120)  # what the dead worker had sent still arrives (see the relay)
        stored = storage.list(media_prefix(vid))
        row = video_row(db, vid)
        assert (row.status, row.render_id) == ("processing", None), slow.log_tail()
        partial = {info.key.split("/")[2] for info in stored}
        assert len(partial) == 1, stored

        report = sweep(db, storage, grace_s=0)
        assert report.renders == [media_prefix(vid, partial.pop())]
        assert storage.list(media_prefix(vid)) == [] and storage.list(safety_prefix(vid)) == []

        direct = {**env, "REELFORGE_S3_ENDPOINT": endpoint}
        stack.enter_context(WorkerProcess(direct, tmp_path / "w2.log")).start()
        wait_for(lambda: video_row(db, vid).status != "processing", 300, "the retry")
        row = video_row(db, vid)
        assert row.status == "published", row.status_reason
        published = storage.list(media_prefix(vid))
        assert {info.key.split("/")[2] for info in published} == {row.render_id}
        assert len(published) > len(stored)  # the killed store was partial
        print(f"killed mid-store: {len(stored)} of {len(published)} objects stored, swept")
        assert sweep(db, storage, grace_s=0).renders == []
        assert storage.list(media_prefix(vid)) == published
