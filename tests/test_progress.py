"""Processing progress (issue 15, "Progress"): the arithmetic (api/core/progress.py) as
tables, and the worker's writes (api/jobs/progress.py) against real SQLite and PostgreSQL:
throttling, stages that only move forwards, a stale run that writes nothing, a failed write
that is skipped, and parts counted exactly under concurrent workers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from api.core import progress as p
from api.core.db import create_schema, sync_engine
from api.core.tables import video_progress
from api.jobs.progress import RunProgress
from api.videos.schemas import processing_out
from tests.support.api import make_settings
from tests.support.jobs import insert_processing_video, insert_user
from tests.support.pg import fresh_database

# ------------------------------------------------------------------------- arithmetic


def test_the_bands_tile_zero_to_one_in_stage_order() -> None:
    running = [p.BANDS[stage] for stage in p.ORDER[1:]]
    assert running[0][0] == 0.0 and running[-1][1] == 1.0
    for (_, end), (start, _) in pairwise(running):
        assert end == start
    assert all(start <= end for start, end in running)
    assert all(p.BANDS[stage] == (1.0, 1.0) for stage in p.FINAL)


@pytest.mark.parametrize(
    ("stage", "done", "total", "fraction", "expected"),
    [
        ("queued", 0, 1, 0.0, 0.0),
        ("downloading", 0, 1, 0.0, 0.0),
        ("probing", 0, 1, 0.5, 0.06),
        ("transcoding", 0, 1, 0.0, 0.10),
        ("transcoding", 0, 1, 0.5, 0.49),
        ("transcoding", 1, 1, 0.0, 0.88),
        ("transcoding", 2, 4, 0.0, 0.49),  # half the chunks done
        ("transcoding", 2, 4, 1.0, 0.685),  # ... and a third one finished, not yet counted
        ("transcoding", 4, 4, 0.9, 0.88),  # never past the band
        ("packaging", 1, 1, 0.0, 0.88),
        ("storing", 1, 1, 0.0, 0.96),
        ("published", 1, 1, 0.0, 1.0),
        ("failed", 0, 1, 0.0, 1.0),
    ],
)
def test_overall_fraction(
    stage: str, done: int, total: int, fraction: float, expected: float
) -> None:
    assert p.overall(stage, done, total, fraction) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("elapsed", "done", "eta"),
    [
        (10.0, 0.0, None),
        (10.0, 0.049, None),  # under 5 %
        (2.9, 0.5, None),  # under 3 s
        (3.0, 0.05, 57.0),
        (10.0, 0.25, 30.0),
        (10.0, 0.5, 10.0),
        (30.0, 0.96, 1.25),
        (0.0, 1.0, 0.0),
    ],
)
def test_eta_is_linear_once_there_is_signal(elapsed: float, done: float, eta: float) -> None:
    assert p.eta_seconds(elapsed, done) == (None if eta is None else pytest.approx(eta))


def test_a_stored_eta_counts_down_and_stops_at_zero() -> None:
    # Half done 10 s after the start: 10 s to go, as of that update.
    assert p.eta_now(0, 10_000, 10_000, 0.5) == pytest.approx(10.0)
    assert p.eta_now(0, 10_000, 14_000, 0.5) == pytest.approx(6.0)
    assert p.eta_now(0, 10_000, 60_000, 0.5) == 0.0
    assert p.eta_now(0, 1_000, 2_000, 0.5) is None


def test_the_throttle_lets_one_write_through_per_interval() -> None:
    throttle = p.Throttle(interval_s=1.0)
    passed = []
    for tick in range(31):  # 3 s in steps of 0.1 s
        now = tick / 10
        if throttle.due(now):
            throttle.mark(now)
            passed.append(now)
    assert passed == [0.0, 1.0, 2.0, 3.0]


def test_the_owner_view_of_a_row() -> None:
    row = _Row(stage="transcoding", parts_done=0, parts_total=1, fraction=0.5)
    view = processing_out(row, now_ms=row.updated_at + 2000)
    assert (view.stage, view.parts_done, view.parts_total) == ("transcoding", 0, 1)
    assert view.percent == 49.0
    # 0.49 done after 10 s: 10.4 s to go then, 8.4 s now, rounded up.
    assert view.eta_s == 9
    assert view.started_at == row.started_at
    queued = processing_out(None, now_ms=0)
    assert (queued.stage, queued.percent, queued.eta_s, queued.started_at) == (
        "queued",
        0.0,
        None,
        None,
    )


class _Row:
    def __init__(self, **values: Any) -> None:
        self.started_at, self.updated_at = 1_000_000, 1_010_000
        self.__dict__.update(values)


# ----------------------------------------------------------------------- the writes


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Engine]:
    engine = sync_engine(make_settings(tmp_path))
    create_schema(engine)
    yield engine
    engine.dispose()


def a_video(db: Engine) -> str:
    return insert_processing_video(db, insert_user(db), 1000)


def stored(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(
            select(video_progress).where(video_progress.c.video_id == video_id)
        ).one()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_fractions_are_throttled_and_stages_are_not(sqlite_db: Engine) -> None:
    video_id = a_video(sqlite_db)
    clock = Clock()
    run = RunProgress.begin(sqlite_db, video_id, attempt=1, clock=clock)
    assert (stored(sqlite_db, video_id).stage, run.stage_now) == ("downloading", "downloading")
    run.stage(p.PROBING)
    run.engine_fraction(0.01)  # the first frame: transcoding starts (a stage: written)
    assert stored(sqlite_db, video_id).stage == "transcoding"
    clock.now += 1.0
    run.engine_fraction(0.2)
    assert stored(sqlite_db, video_id).fraction == pytest.approx(0.2)
    clock.now += 0.5
    run.engine_fraction(0.3)  # within the interval: skipped
    assert stored(sqlite_db, video_id).fraction == pytest.approx(0.2)
    clock.now += 0.5
    run.engine_fraction(0.4)
    assert stored(sqlite_db, video_id).fraction == pytest.approx(0.4)
    run.engine_fraction(1.0)  # the last frame: its part is done, packaging at once
    row = stored(sqlite_db, video_id)
    assert (row.stage, row.parts_done, row.fraction) == ("packaging", 1, 0.0)
    run.engine_done()
    run.stage(p.STORING)
    run.finish("published")
    row = stored(sqlite_db, video_id)
    assert (row.stage, row.parts_done, row.attempt) == ("published", 1, 1)
    assert row.updated_at >= row.started_at


def test_stages_and_fractions_never_move_back(sqlite_db: Engine) -> None:
    video_id = a_video(sqlite_db)
    run = RunProgress.begin(sqlite_db, video_id, attempt=1, interval_s=0.0)
    late = RunProgress(sqlite_db, video_id, run.run_id, interval_s=0.0)  # e.g. a chunk job
    run.stage(p.TRANSCODING)
    run.fraction(0.6)
    late.fraction(0.3)
    assert stored(sqlite_db, video_id).fraction == pytest.approx(0.6)
    run.stage(p.PACKAGING)
    late.stage(p.TRANSCODING)
    assert stored(sqlite_db, video_id).stage == "packaging"


def test_a_newer_run_takes_the_row_and_the_old_one_writes_nothing(sqlite_db: Engine) -> None:
    video_id = a_video(sqlite_db)
    old = RunProgress.begin(sqlite_db, video_id, attempt=1, interval_s=0.0)
    old.stage(p.TRANSCODING)
    old.fraction(0.7)
    new = RunProgress.begin(sqlite_db, video_id, attempt=2, interval_s=0.0)
    row = stored(sqlite_db, video_id)
    assert (row.run_id, row.attempt, row.stage, row.fraction) == (
        new.run_id,
        2,
        "downloading",
        0.0,
    )
    old.stage(p.STORING)
    old.finish("published")
    assert old.part_done() is None
    row = stored(sqlite_db, video_id)
    assert (row.run_id, row.stage, row.parts_done) == (new.run_id, "downloading", 0)


def test_a_retried_run_goes_back_to_queued(sqlite_db: Engine) -> None:
    video_id = a_video(sqlite_db)
    run = RunProgress.begin(sqlite_db, video_id, attempt=1, interval_s=0.0)
    run.stage(p.TRANSCODING)
    run.fraction(0.5)
    run.requeued()
    row = stored(sqlite_db, video_id)
    assert (row.stage, row.parts_done, row.fraction) == ("queued", 0, 0.0)


def test_a_failed_write_is_logged_and_skipped(
    sqlite_db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    video_id = a_video(sqlite_db)
    run = RunProgress.begin(sqlite_db, video_id, attempt=1, interval_s=0.0)
    with sqlite_db.begin() as conn:
        conn.execute(text("DROP TABLE video_progress"))
    with caplog.at_level(logging.WARNING, logger="reelforge.progress"):
        run.stage(p.TRANSCODING)
        run.fraction(0.5)
        assert run.part_done() is None
        again = RunProgress.begin(sqlite_db, video_id, attempt=2)
    assert again.stage_now == p.QUEUED  # nothing was written; the job goes on regardless
    warnings = [r for r in caplog.records if "progress not recorded" in r.getMessage()]
    assert len(warnings) == 4


# -------------------------------------------------------- parts counted concurrently

WORKERS, PARTS_EACH = 8, 25


def test_parts_are_counted_exactly_under_concurrent_workers(tmp_path: Path) -> None:
    """Eight threads, each on its own PostgreSQL connection, count 200 parts at once (and
    try 16 more): the row ends at exactly 200, and each count 1..200 was seen by exactly one
    caller, so "I counted the last part" is true for exactly one of them."""
    with fresh_database() as url:
        engine = sync_engine(make_settings(tmp_path, database_url=url))
        try:
            assert engine.dialect.name == "postgresql"
            create_schema(engine)
            video_id = a_video(engine)
            total = WORKERS * PARTS_EACH
            run = RunProgress.begin(engine, video_id, attempt=1, parts_total=total)
            run.stage(p.TRANSCODING)
            seen: list[int | None] = []
            lock = threading.Lock()
            start = threading.Barrier(WORKERS)

            def work() -> None:
                worker = RunProgress(engine, video_id, run.run_id)
                start.wait()
                for _ in range(PARTS_EACH + 2):
                    counted = worker.part_done()
                    with lock:
                        seen.append(counted)

            threads = [threading.Thread(target=work) for _ in range(WORKERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert stored(engine, video_id).parts_done == total
            assert sorted(n for n in seen if n is not None) == list(range(1, total + 1))
            assert seen.count(None) == 2 * WORKERS
        finally:
            engine.dispose()
