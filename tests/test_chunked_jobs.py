"""Split and stitch across the job system (api/jobs/chunking.py, issue 15): the real Dramatiq
actors on the in-memory broker with worker threads (the embedded mode's way), SQLite and local
storage, the engine in its sandboxed children; the assembly's exactly-once claim against
PostgreSQL with racing threads.

The source: 10.4 s of generated 640x360 30 fps video with a tone, keyframes every 1.5 s; with 2 s
segments, 2 segments a chunk and a 4 s threshold it is 3 chunks (frames 0, 120, 240; the short
tail merged into the last) plus the audio job.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

import worker
from api.core import lifecycle
from api.core import progress as stages
from api.core.db import create_schema, new_id, now_ms, sync_engine
from api.core.keys import media_prefix, work_prefix
from api.core.services import make_storage
from api.core.settings import PRODUCTION_CHUNK_THRESHOLD_S, Settings
from api.core.tables import video_parts, video_progress, videos
from api.jobs import partrows
from api.jobs.partrows import PART_ATTEMPTS, claim_assembly
from api.jobs.transcode import Runtime
from engine.jobs import transcode_limited
from tests.support.api import make_settings
from tests.support.clips import chunking_clip
from tests.support.jobs import (
    insert_processing_video,
    insert_user,
    stage_video,
    video_row,
    wait_for,
)
from tests.support.pg import schema_engine
from tests.support.services import (
    WorkerProcess,
    ensure_postgres,
    ensure_redis,
    fresh_postgres_database,
    production_env,
    redis_database,
)
from tests.support.verify import verify_output

TIMEOUT_S = 600  # a bound, never a measurement: the 2-CPU machine is shared


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chunking_clip(tmp_path_factory.mktemp("chunk-clip") / "clip.mp4")


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[worker.Jobs]:
    settings = make_settings(
        tmp_path_factory.mktemp("chunk-jobs"),
        chunk_threshold_seconds=4.0,
        chunk_segments=2,
        segment_seconds=2.0,
        embedded_workers=2,
        transcode_time_limit_s=300,
    )
    built = worker.build(settings)
    create_schema(built.chunking.host.db)
    built.start_embedded_worker()
    yield built
    built.stop()


@pytest.fixture(scope="module")
def db(jobs: worker.Jobs) -> Engine:
    return jobs.chunking.host.db


def parts(db: Engine, video_id: str) -> dict[tuple[str, int], tuple[str, int]]:
    """(kind, index) → (state, attempts) of the video's part rows."""
    query = select(video_parts).where(video_parts.c.video_id == video_id)
    with db.connect() as conn:
        return {(r.kind, r.part): (r.state, r.attempts) for r in conn.execute(query)}


def progress_row(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        query = select(video_progress).where(video_progress.c.video_id == video_id)
        return conn.execute(query).one()


def process(jobs: worker.Jobs, db: Engine, clip: Path) -> Any:
    """Stage the clip as a processing video, enqueue its job, wait until it leaves processing."""
    vid = stage_video(db, jobs.chunking.host.storage, insert_user(db, "chunks"), clip)
    jobs.enqueue_transcode(vid, "normal")
    wait_for(lambda: video_row(db, vid).status != "processing", TIMEOUT_S, f"{vid} processed")
    # The assembly publishes, then marks its row done and removes the work prefix.
    wait_for(
        lambda: parts(db, vid).get(("assembly", 0), ("",))[0] != "claimed",
        TIMEOUT_S,
        f"{vid}'s assembly to end",
    )
    return video_row(db, vid)


def test_a_long_upload_is_chunked_stitched_and_published(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    jobs.chunking.fault = None
    row = process(jobs, db, clip)
    assert row.status == "published", row.status_reason
    # Each part ran once and counted once; the assembly ran once.
    # No preview part (off by default): the chunks are the run's one decode of the video.
    assert parts(db, row.id) == {
        ("chunk", 0): ("done", 1),
        ("chunk", 1): ("done", 1),
        ("chunk", 2): ("done", 1),
        ("audio", 0): ("done", 1),
        ("assembly", 0): ("done", 1),
    }
    progress = progress_row(db, row.id)
    assert (progress.stage, progress.parts_done, progress.parts_total) == ("published", 4, 4)
    assert stages.overall(progress.stage, progress.parts_done, progress.parts_total, 0) == 1.0
    storage = jobs.chunking.host.storage
    assert storage.list(work_prefix(row.id)) == []
    # The stored render is the stitched presentation, and it passes the project's verifier.
    rendered = jobs.settings.origin_dir / media_prefix(row.id, row.render_id)
    assert verify_output(rendered, clip) == []
    report = json.loads((rendered / "report.json").read_text())
    chunks = report["chunked"]["chunks"]
    assert [c["start_frame"] for c in chunks] == [0, 120, 240]
    assert report["decode"]["output_frames"] == 312
    # The analysis the single pass runs, run by the chunks and merged by the assembly.
    assert {"moderation", "pdq"} <= set(report["analysis"])
    assert report["analysis"]["moderation"]["frames"] > 0
    assert report["output"]["poster"] == "poster.jpg" and (rendered / "poster.jpg").is_file()


def test_a_chunk_that_fails_once_is_retried_alone(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    failed: set[str] = set()

    def fail_once(video_id: str, kind: str, index: int) -> None:
        if (kind, index) == ("chunk", 1) and video_id not in failed:
            failed.add(video_id)
            raise RuntimeError("a worker hiccup")

    jobs.chunking.fault = fail_once
    try:
        row = process(jobs, db, clip)
    finally:
        jobs.chunking.fault = None
    assert failed == {row.id}
    assert row.status == "published", row.status_reason
    assert row.attempts == 1  # the planner ran once: nothing but the chunk was redone
    assert parts(db, row.id) == {
        ("chunk", 0): ("done", 1),
        ("chunk", 1): ("done", 2),
        ("chunk", 2): ("done", 1),
        ("audio", 0): ("done", 1),
        ("assembly", 0): ("done", 1),
    }
    assert jobs.chunking.host.storage.list(work_prefix(row.id)) == []


def test_a_chunk_that_keeps_failing_fails_the_video_naming_it(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    def always(video_id: str, kind: str, index: int) -> None:
        if (kind, index) == ("chunk", 2):
            raise RuntimeError("this chunk is cursed")

    jobs.chunking.fault = always
    try:
        row = process(jobs, db, clip)
    finally:
        jobs.chunking.fault = None
    assert row.status == "failed"
    assert "chunk 3 of 3 failed after 3 attempts" in row.status_reason
    rows = parts(db, row.id)
    assert rows[("chunk", 2)] == ("failed", PART_ATTEMPTS)
    assert rows[("assembly", 0)] == ("pending", 0)
    assert progress_row(db, row.id).stage == "failed"
    assert row.render_id in (None, "")


# ----------------------------------------------------------------------------- settings


def test_chunking_is_on_in_production_and_off_in_embedded_by_default(tmp_path: Path) -> None:
    embedded = make_settings(tmp_path)
    assert embedded.chunk_threshold_seconds == 0 and not embedded.chunked(3600)
    env = {
        "REELFORGE_MODE": "production",
        "REELFORGE_DATA_DIR": str(tmp_path),
        "REELFORGE_DATABASE_URL": "postgresql://x@127.0.0.1/x",
        "REELFORGE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "REELFORGE_SECRET_KEY": "k" * 32,
    }
    production = Settings.from_env(env)
    assert production.chunk_threshold_seconds == PRODUCTION_CHUNK_THRESHOLD_S == 60
    assert production.chunked(61) and not production.chunked(60)
    off = Settings.from_env({**env, "REELFORGE_CHUNK_THRESHOLD_SECONDS": "0"})
    assert not off.chunked(3600)


# ------------------------------------------------------------- the exactly-once claim


@pytest.fixture(scope="module")
def pg() -> Iterator[Engine]:
    with schema_engine() as engine:
        yield engine


def run_parts(pg: Engine, chunks: int) -> tuple[str, str]:
    """A video with a run of `chunks` chunks + audio, every part done but the last two."""
    vid = insert_processing_video(pg, insert_user(pg, "chunks"), 100)
    run = new_id("p")
    rows = [("chunk", i, "done") for i in range(chunks - 2)]
    rows += [("chunk", chunks - 2, "pending"), ("audio", 0, "pending"), ("assembly", 0, "pending")]
    with pg.begin() as conn:
        conn.execute(
            insert(video_parts),
            [
                {"video_id": vid, "run_id": run, "kind": kind, "part": index,
                 "state": state, "attempts": 1, "updated_at": now_ms()}
                for kind, index, state in rows
            ],
        )  # fmt: skip
    return vid, run


def finish_part(
    pg: Engine,
    video_id: str,
    run_id: str,
    kind: str,
    index: int,
    start: threading.Barrier,
    won: list[bool],
) -> None:
    """What a part job does once its work is stored: its row done, then the claim."""
    start.wait()
    with pg.begin() as conn:
        conn.execute(
            video_parts.update()
            .where(
                video_parts.c.video_id == video_id,
                video_parts.c.run_id == run_id,
                video_parts.c.kind == kind,
                video_parts.c.part == index,
            )
            .values(state="done")
        )
    won.append(claim_assembly(pg, video_id, run_id))


def test_the_assembly_is_claimed_once_when_the_last_parts_finish_together(pg: Engine) -> None:
    vid, run = run_parts(pg, 4)
    assert not claim_assembly(pg, vid, run)  # two parts are still pending
    for _ in range(25):
        vid, run = run_parts(pg, 4)
        start = threading.Barrier(2)
        won: list[bool] = []
        racers = [
            threading.Thread(target=finish_part, args=(pg, vid, run, kind, index, start, won))
            for kind, index in (("chunk", 2), ("audio", 0))
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        assert sorted(won) == [False, True]
        assert not claim_assembly(pg, vid, run)  # and never again
    with pg.connect() as conn:
        assert conn.execute(select(videos.c.status).where(videos.c.id == vid)).scalar() == (
            "processing"
        )
    assert partrows.CLAIMED == "claimed"


def test_the_chunks_analyse_exactly_what_the_single_pass_analyses(
    jobs: worker.Jobs, db: Engine, clip: Path, tmp_path: Path
) -> None:
    """Safety routing gets the single pass's inputs from the chunks' taps merged by the
    assembly (engine/tapmerge.py): the same sampled times, moderation scores, worst frames
    and PDQ hashes (all but the timings), the same fingerprint from the audio job, and the
    same poster and storyboard, to the byte; no part decoded the video twice."""
    row = process(jobs, db, clip)
    assert row.status == "published", row.status_reason
    rendered = jobs.settings.origin_dir / media_prefix(row.id, row.render_id)
    chunked = json.loads((rendered / "report.json").read_text())
    options = jobs.chunking.host.options(tmp_path / "artifacts")
    single = transcode_limited(clip, tmp_path / "single", options)

    def untimed(analysis: dict[str, Any]) -> dict[str, Any]:
        return {k: {n: v for n, v in part.items() if n != "timing"} for k, part in analysis.items()}

    assert chunked["analysis"]["moderation"]["frames"] > 5
    assert untimed(chunked["analysis"]) == untimed(single["analysis"])
    # The audio job fingerprints the very frames the single pass's audio taps see.
    assert chunked["analysis"]["fingerprint"]["count"] > 0
    for name in ("poster", "storyboard", "storyboard_vtt"):
        assert chunked["output"][name] == single["output"][name]
        file = single["output"][name]
        assert (rendered / file).read_bytes() == (tmp_path / "single" / file).read_bytes()
    # Each chunk decoded its range once (from the keyframe before it, and one frame earlier).
    decoded = chunked["decode"]["decoded_video_frames"]
    assert decoded < 1.5 * single["decode"]["decoded_video_frames"]


# ----------------------------------------------------------------- the production path


def test_production_workers_share_a_chunked_run(clip: Path, tmp_path: Path) -> None:
    """Two `dramatiq worker:setup` processes on Redis and PostgreSQL take the parts of one
    run between them: it publishes once, each part done once, the work prefix gone."""
    ensure_redis()
    ensure_postgres()
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database())
        redis_url = stack.enter_context(redis_database())
        env = production_env(
            tmp_path / "data",
            database_url=database_url,
            redis_url=redis_url,
            s3_endpoint="127.0.0.1:1",
            REELFORGE_STORAGE="local",
            REELFORGE_CHUNK_THRESHOLD_SECONDS="4",
            REELFORGE_CHUNK_SEGMENTS="2",
            REELFORGE_SEGMENT_SECONDS="2",
        )
        settings = Settings.from_env(env)
        db = sync_engine(settings)
        stack.callback(db.dispose)
        create_schema(db)
        for name in ("w1", "w2"):
            stack.enter_context(WorkerProcess(env, tmp_path / f"{name}.log")).start()
        jobs = worker.build(settings)
        stack.callback(jobs.stop)
        vid = stage_video(db, make_storage(settings), insert_user(db, "chunks"), clip)
        jobs.enqueue_transcode(vid, "normal")
        wait_for(lambda: video_row(db, vid).status != "processing", TIMEOUT_S, "publication")
        wait_for(lambda: parts(db, vid)[("assembly", 0)][0] == "done", TIMEOUT_S, "assembly")
        row = video_row(db, vid)
        assert row.status == "published", row.status_reason
        assert set(parts(db, vid).values()) == {("done", 1)}
        assert make_storage(settings).list(work_prefix(vid)) == []
        assert verify_output(settings.origin_dir / media_prefix(vid, row.render_id), clip) == []


def test_parts_of_a_superseded_run_or_a_deleted_video_do_nothing(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    """A message of a run whose rows a newer run replaced, or of a video deleted meanwhile, is
    skipped: no attempt counted, nothing encoded or stored, the assembly never claimed."""
    vid = stage_video(db, jobs.chunking.host.storage, insert_user(db, "chunks"), clip)
    current = new_id("p")
    with db.begin() as conn:
        conn.execute(
            insert(video_parts),
            [
                {"video_id": vid, "run_id": current, "kind": kind, "part": index,
                 "state": "pending", "attempts": 0, "updated_at": now_ms()}
                for kind, index in (("chunk", 0), ("assembly", 0))
            ],
        )  # fmt: skip
    jobs.chunking.run_part(vid, new_id("p"), "chunk", 0)  # an older run's message
    jobs.chunking.assemble(vid, new_id("p"))
    assert parts(db, vid) == {("chunk", 0): ("pending", 0), ("assembly", 0): ("pending", 0)}
    with db.begin() as conn:
        lifecycle.move_sync(conn, vid, lifecycle.DELETED, "deleted by its owner")
    jobs.chunking.run_part(vid, current, "chunk", 0)
    assert parts(db, vid)[("chunk", 0)] == ("pending", 0)
    assert jobs.chunking.host.storage.list(work_prefix(vid)) == []


# ----------------------------------------------------------------- one encoder per run


def test_every_part_uses_the_encoder_its_planner_chose(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    """The planner records the encoder it resolved (`video_runs`); a worker whose own
    REELFORGE_ENCODER differs (here NVENC, which this machine cannot even open) still encodes
    the run's parts, and stitches them, with the run's encoder."""
    host = jobs.chunking.host
    original = host.settings
    started, gate = threading.Event(), threading.Event()

    def hold(video_id: str, kind: str, index: int) -> None:
        started.set()
        gate.wait(TIMEOUT_S)

    jobs.chunking.fault = hold
    try:
        vid = stage_video(db, host.storage, insert_user(db, "encoders"), clip)
        jobs.enqueue_transcode(vid, "normal")
        assert started.wait(TIMEOUT_S), "no part started"
        host.settings = dataclasses.replace(original, encoder="h264_nvenc")
        gate.set()
        wait_for(lambda: video_row(db, vid).status != "processing", TIMEOUT_S, "publication")
        row = video_row(db, vid)
        assert row.status == "published", row.status_reason
        wait_for(lambda: parts(db, vid)[("assembly", 0)][0] == "done", TIMEOUT_S, "assembly")
    finally:
        gate.set()
        host.settings = original
        jobs.chunking.fault = None
    run = progress_row(db, vid).run_id
    assert partrows.run_encoder(db, vid, run) == "libx264"
    assert set(parts(db, vid).values()) == {("done", 1)}


def test_the_video_parts_of_a_gpu_run_go_to_the_gpu_pool(jobs: worker.Jobs, db: Engine) -> None:
    vid = insert_processing_video(db, insert_user(db, "gpu"), 1)
    for run, encoder in (("p_gpu", "h264_nvenc"), ("p_cpu", "libx264")):
        with db.begin() as conn:
            partrows.record_run(conn, vid, run, encoder)
        queues = {
            kind: jobs.part_actor(vid, run, kind).queue_name
            for kind in (partrows.PREVIEW, partrows.CHUNK, partrows.AUDIO)
        }
        video = worker.PARTS_GPU_QUEUE if encoder == "h264_nvenc" else worker.PARTS_QUEUE
        assert queues == {"preview": video, "chunk": video, "audio": worker.PARTS_QUEUE}
    # A newer run's record replaces the older one's.
    assert partrows.run_encoder(db, vid, "p_gpu") is None


def test_a_chunked_run_tells_the_edges_when_it_publishes(
    jobs: worker.Jobs, db: Engine, clip: Path
) -> None:
    """The after-publication hook (the edge pre-warm) runs for a chunked run as for the single
    pass: the assembly's publish announces the video."""
    host = jobs.chunking.host
    assert isinstance(host, Runtime)
    announced: list[str] = []
    hook = host._on_published
    host._on_published = announced.append
    try:
        row = process(jobs, db, clip)
    finally:
        host._on_published = hook
    assert row.status == "published", row.status_reason
    assert announced == [row.id]
