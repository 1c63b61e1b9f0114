"""worker.py and the job's robustness: actor options set on purpose, lanes, retries that end
`failed`, unfinished work picked up at start, and no orphan encoder when a worker dies.

Issue 3, "Video lifecycle and jobs" and "Faults".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import worker
from api.core.db import create_schema, sync_engine
from api.core.services import make_storage
from api.jobs.transcode import MAX_ATTEMPTS, InputRejectedError
from engine.sample import make_sample
from tests.support.api import api_client, make_settings
from tests.support.jobs import (
    history,
    insert_processing_video,
    insert_user,
    put_upload,
    stage_video,
    video_row,
)

ROOT = Path(__file__).resolve().parent.parent


def wait_status(db: Engine, video_id: str, leaving: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = video_row(db, video_id)
        if row.status != leaving:
            return row
        time.sleep(0.1)
    raise AssertionError(f"{video_id} still {leaving} after {timeout:g} s")


# ---------------------------------------------------------------------- actor options


@pytest.fixture
def jobs(tmp_path: Path) -> Iterator[worker.Jobs]:
    built = worker.build(make_settings(tmp_path, transcode_time_limit_s=120))
    yield built
    built.stop()


def test_actor_options_are_set_on_purpose(jobs: worker.Jobs) -> None:
    for actor in (jobs.transcode, jobs.transcode_bulk):
        options = actor.options
        assert options["time_limit"] == (120 + worker.TRANSFER_ALLOWANCE_S) * 1000
        assert options["max_retries"] == MAX_ATTEMPTS - 1
        assert 0 < options["min_backoff"] <= options["max_backoff"] <= 600_000
        assert issubclass(InputRejectedError, options["throws"])
        assert options["on_retry_exhausted"] in jobs.broker.get_declared_actors()
    assert jobs.cleanup.options["max_retries"] > 0
    assert jobs.cleanup.options["time_limit"] < 3_600_000


def test_busy_creators_have_their_own_lower_priority_lane(jobs: worker.Jobs) -> None:
    assert jobs.transcode.queue_name != jobs.transcode_bulk.queue_name
    assert jobs.transcode_bulk.priority > jobs.transcode.priority  # higher runs later

    jobs.send_transcode("v_a", "bulk")
    jobs.send_transcode("v_b", "normal")
    jobs.send_transcode("v_c", "normal")

    queues = jobs.broker.queues  # type: ignore[attr-defined]
    assert queues[worker.BULK_QUEUE].qsize() == 1
    assert queues[worker.TRANSCODE_QUEUE].qsize() == 2


# ------------------------------------------------------------------ retries → failed


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with api_client(tmp_path_factory.mktemp("worker")) as client:
        yield client


@pytest.fixture(scope="module")
def db(app: Any) -> Iterator[Engine]:
    engine = sync_engine(app.app.state.ctx.settings)
    yield engine
    engine.dispose()


def test_a_failing_job_is_retried_then_failed(app: Any, db: Engine) -> None:
    """Our own failure (here: the upload's bytes are missing) is retried with backoff, and
    the last delivery leaves the video failed with a reason."""
    ctx = app.app.state.ctx
    owner = insert_user(db, "worker")
    vid = insert_processing_video(db, owner, 1000, attempts=MAX_ATTEMPTS - 2)
    put_upload(ctx.storage, vid, b"x" * 10)

    ctx.jobs.enqueue_transcode(vid, "normal")
    row = wait_status(db, vid, "processing", 60)

    assert row.status == "failed"
    assert row.attempts == MAX_ATTEMPTS  # two deliveries: the first one was retried
    assert "processing failed" in row.status_reason
    assert history(db, vid)[-1][1] == "failed"


def test_exhausted_retries_end_failed(app: Any, db: Engine) -> None:
    """When Dramatiq gives up before process() could record it (here: a message allowed no
    retry), the on_retry_exhausted actor marks the video failed."""
    ctx = app.app.state.ctx
    owner = insert_user(db, "worker")
    vid = insert_processing_video(db, owner, 1000)
    put_upload(ctx.storage, vid, b"x" * 10)

    ctx.jobs.transcode.send_with_options(args=(vid,), max_retries=0)
    row = wait_status(db, vid, "processing", 60)

    assert row.status == "failed" and row.attempts == 1
    assert "processing failed" in row.status_reason


def test_unfinished_videos_are_picked_up_at_start(tmp_path: Path) -> None:
    """The database is the source of truth: a video left processing by a stopped server
    (its queued job lost with the in-memory broker) is processed after a restart."""
    settings = make_settings(tmp_path)
    engine = sync_engine(settings)
    create_schema(engine)
    clip = make_sample(tmp_path / "clip.mp4", seconds=2, width=360, height=640)
    owner = insert_user(engine, "worker")
    vid = stage_video(engine, make_storage(settings), owner, clip)

    with api_client(tmp_path):
        row = wait_status(engine, vid, "processing", 180)
    engine.dispose()

    assert row.status == "published", row.status_reason


# ------------------------------------------------------------- no orphan encoders


def record_pid_and_sleep(path: str, progress: Any = None) -> None:
    """A stand-in job for the sandbox child: says who it is, then works for a long time."""
    Path(path).write_text(str(os.getpid()))
    time.sleep(120)


WORKER_SCRIPT = """
import sys, threading, time
from engine.sandbox import run_limited
from tests.test_worker import record_pid_and_sleep
if sys.argv[2] == "threads":  # like a Dramatiq worker: the child is spawned, not forked
    threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
run_limited(record_pid_and_sleep, sys.argv[1], wall_seconds=300, memory_bytes=2 * 1024**3)
"""


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("mode", ["single-threaded", "threads"])
def test_the_job_child_dies_with_its_worker(tmp_path: Path, mode: str) -> None:
    pid_file = tmp_path / "child.pid"
    worker_proc = subprocess.Popen(
        [sys.executable, "-c", WORKER_SCRIPT, str(pid_file), mode], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.exists() and pid_file.read_text()):
            assert worker_proc.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the job child never started"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert child != worker_proc.pid and alive(child)

        os.kill(worker_proc.pid, signal.SIGKILL)
        worker_proc.wait(10)

        deadline = time.monotonic() + 5
        while alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(child), "the job child outlived its killed worker"
    finally:
        if worker_proc.poll() is None:
            worker_proc.kill()
            worker_proc.wait()
        if pid_file.exists() and pid_file.read_text():
            leftover = int(pid_file.read_text())
            if alive(leftover):
                os.kill(leftover, signal.SIGKILL)
