"""Part leases and the run reaper (issue 15, "Split and stitch": a killed chunk is redone alone;
api/jobs/partrows.py `count_attempt`/`holding`, api/jobs/partreaper.py).

Production processes throughout: `dramatiq` worker processes on a Redis database and a
PostgreSQL database of their own, local storage shared through the data dir, and (where the run
reaper is wanted) the API app in this process in production mode, its reaper every
`REAPER_S`. The broker redelivers a dead worker's messages after 5 s of silence
(tests/support/services.py `production_env`), so the lease in force is 2.5 s
(`Settings.part_lease_s`). Lost messages come from tests/support/lossyworker.py, a worker that
drops the first message of the parts it is told to.

The source: 10.4 s of generated 1280x720 video with a tone (a 720/540/360 ladder, the 360 rung
published early); 2 s segments, 2 a chunk: 3 chunks, the preview and the audio.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, select, update

import worker
from api.app import create_app
from api.core.db import create_schema, new_id, now_ms, sync_engine
from api.core.keys import media_prefix, work_prefix
from api.core.services import make_storage
from api.core.settings import Settings
from api.core.tables import users, video_parts
from api.jobs.partreaper import MARGIN_SECONDS
from api.jobs.partrows import CHUNK, part_name
from api.jobs.publish import early_render_id
from cdn.storage import Storage
from tests.support.clips import chunking_clip
from tests.support.jobs import insert_user, stage_video, video_row, wait_for
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
REAPER_S = 1.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chunking_clip(tmp_path_factory.mktemp("lease-clip") / "clip.mp4", size="1280x720")


@dataclass
class Pool:
    settings: Settings
    db: Engine
    storage: Storage
    workers: list[WorkerProcess]
    jobs: Any  # the API's JobQueue (api/core/context.py)


@contextmanager
def pool(
    tmp_path: Path, *, workers: int = 2, threads: int = 1, lose: str = "", api: bool = True
) -> Iterator[Pool]:
    """Worker processes (lossy ones when `lose` names parts) and, with `api`, the API app
    running the run reaper; all on fresh databases."""
    ensure_redis()
    ensure_postgres()
    with ExitStack() as stack:
        env = production_env(
            tmp_path / "data",
            database_url=stack.enter_context(fresh_postgres_database()),
            redis_url=stack.enter_context(redis_database()),
            s3_endpoint="127.0.0.1:1",
            REELFORGE_STORAGE="local",
            REELFORGE_CHUNK_THRESHOLD_SECONDS="4",
            REELFORGE_CHUNK_SEGMENTS="2",
            REELFORGE_SEGMENT_SECONDS="2",
            REELFORGE_PREVIEW_RUNGS="1",  # a preview part and an early publish (off by default)
            REELFORGE_PART_REAPER_INTERVAL_SECONDS=str(REAPER_S),
            LOSE_PARTS=lose,
        )
        settings = Settings.from_env(env)
        assert settings.part_lease_s == 2.5
        db = sync_engine(settings)
        stack.callback(db.dispose)
        create_schema(db)
        target = "tests.support.lossyworker:setup" if lose else "worker:setup"
        procs = [
            stack.enter_context(WorkerProcess(env, tmp_path / f"w{n}.log", target, threads))
            for n in range(workers)
        ]
        for proc in procs:
            proc.start()
        if api:
            client = stack.enter_context(
                TestClient(app=create_app(settings), base_url=settings.public_url)
            )
            jobs = client.app.state.ctx.jobs
        else:
            jobs = worker.build(settings)
            stack.callback(jobs.stop)
        yield Pool(settings, db, make_storage(settings), procs, jobs)


def parts(db: Engine, video_id: str) -> dict[tuple[str, int], tuple[str, int]]:
    """(kind, index) → (state, attempts) of the video's part rows."""
    query = select(video_parts).where(video_parts.c.video_id == video_id)
    with db.connect() as conn:
        return {(r.kind, r.part): (r.state, r.attempts) for r in conn.execute(query)}


def part_row(db: Engine, video_id: str, kind: str, index: int) -> Any:
    query = select(video_parts).where(
        video_parts.c.video_id == video_id,
        video_parts.c.kind == kind,
        video_parts.c.part == index,
    )
    with db.connect() as conn:
        return conn.execute(query).one()


def upload(p: Pool, clip: Path) -> str:
    vid = stage_video(p.db, p.storage, insert_user(p.db, "leases"), clip)
    p.jobs.enqueue_transcode(vid, "normal")
    return vid


def wait_complete(p: Pool, vid: str) -> Any:
    """Until the run's assembly is done; the video row then."""
    wait_for(
        lambda: parts(p.db, vid).get(("assembly", 0), ("",))[0] == "done", TIMEOUT_S, "assembly"
    )
    return video_row(p.db, vid)


def check_complete(p: Pool, clip: Path, vid: str, row: Any) -> None:
    """Published once, with the whole ladder, verified; the work prefix gone."""
    assert row.status == "published", row.status_reason
    with p.db.connect() as conn:
        count = conn.execute(select(users.c.video_count).where(users.c.id == row.owner_id))
        assert count.scalar_one() == 1
    rendered = p.settings.origin_dir / media_prefix(vid, row.render_id)
    assert {d.name for d in rendered.iterdir() if d.is_dir()} >= {"v720", "v540", "v360"}
    assert verify_output(rendered, clip) == []
    assert p.storage.list(work_prefix(vid)) == []


def encoding_chunk(p: Pool, vid: str) -> tuple[WorkerProcess, int]:
    """Wait until a worker's sandboxed child encodes a chunk (its row: pending, attempt 1);
    that worker and the chunk's index."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for (kind, index), (state, attempts) in parts(p.db, vid).items():
            if (kind, state, attempts) != (CHUNK, "pending", 1):
                continue
            for proc in p.workers:
                # A worker runs one part at a time: its latest taken part is the one it works on.
                taken = re.findall(rf"video {vid} (\S+) of run \S+: attempt \d+", proc.log())
                if taken and taken[-1] == part_name(CHUNK, index) and proc.encoder_children():
                    return proc, index
        time.sleep(0.05)
    raise AssertionError(f"no chunk of {vid} was seen encoding")


def test_a_killed_chunk_is_redone_alone(clip: Path, tmp_path: Path) -> None:
    """SIGKILL to a worker's process group in the middle of a chunk, a second worker alive:
    the chunk alone is done again (by the broker's redelivery or the run reaper, whichever
    comes first; the other is skipped by the lease), and the video publishes once."""
    with pool(tmp_path) as p:
        vid = upload(p, clip)
        victim, index = encoding_chunk(p, vid)
        killed_at = now_ms()
        victim.kill()
        assert parts(p.db, vid)[(CHUNK, index)] == ("pending", 1), "the chunk ended before the kill"
        wait_for(
            lambda: part_row(p.db, vid, CHUNK, index).state == "done", TIMEOUT_S, "the chunk redone"
        )
        recovered_s = (part_row(p.db, vid, CHUNK, index).updated_at - killed_at) / 1000
        row = wait_complete(p, vid)
        print(f"killed chunk {index} done again {recovered_s:.1f} s after the kill")
        rows = parts(p.db, vid)
        assert rows == {key: ("done", 2 if key == (CHUNK, index) else 1) for key in rows}
        assert len(rows) == 7  # preview, audio, 3 chunks, the early publish, the assembly
        check_complete(p, clip, vid, row)


def test_a_lost_assembly_message_is_sent_again_by_the_reaper(clip: Path, tmp_path: Path) -> None:
    """The assembly claimed, its message lost: the run reaper sends it again once its lease
    lapsed, within an interval; the video (published early meanwhile) gets its whole ladder."""
    with pool(tmp_path, lose="assembly:0") as p:
        vid = upload(p, clip)
        wait_for(
            lambda: parts(p.db, vid).get(("assembly", 0)) == ("claimed", 0),
            TIMEOUT_S,
            "the assembly claimed",
        )
        claimed = time.monotonic()
        wait_for(lambda: parts(p.db, vid)[("assembly", 0)][1] > 0, TIMEOUT_S, "the assembly taken")
        taken_s = time.monotonic() - claimed
        row = wait_complete(p, vid)
        print(f"lost assembly taken {taken_s:.1f} s after its claim")
        assert any(f"lost the message of video {vid} assembly:0" in w.log() for w in p.workers)
        # The lease (2.5 s), one reaper interval, a worker's fetch, a busy machine.
        assert taken_s < p.settings.part_lease_s + REAPER_S + 5.0
        assert set(parts(p.db, vid).values()) == {("done", 1)}
        check_complete(p, clip, vid, row)


def test_two_deliveries_at_once_one_works_one_is_skipped(clip: Path, tmp_path: Path) -> None:
    """The same part's message twice, taken at once by two worker threads: one encodes it, the
    other finds the lease held and does nothing; one attempt counted."""
    with pool(tmp_path, workers=1, threads=2, api=False) as p:
        vid = stage_video(p.db, p.storage, insert_user(p.db, "leases"), clip)
        run = new_id("p")
        with p.db.begin() as conn:
            conn.execute(
                video_parts.insert(),
                [
                    {"video_id": vid, "run_id": run, "kind": kind, "part": index,
                     "state": "pending", "attempts": 0, "updated_at": now_ms()}
                    for kind, index in ((CHUNK, 0), (CHUNK, 1), ("assembly", 0))
                ],
            )  # fmt: skip
        p.jobs.enqueue_part(vid, run, CHUNK, 1)
        p.jobs.enqueue_part(vid, run, CHUNK, 1)
        wait_for(lambda: parts(p.db, vid)[(CHUNK, 1)][0] == "done", TIMEOUT_S, "the chunk done")
        skipped = f"video {vid} chunk-0001 of run {run} skipped: attempt 1 holds its lease"
        wait_for(lambda: skipped in p.workers[0].log(), 30, "the second delivery skipped")
        assert parts(p.db, vid) == {
            (CHUNK, 0): ("pending", 0),
            (CHUNK, 1): ("done", 1),
            ("assembly", 0): ("pending", 0),
        }
        assert p.workers[0].log().count(f"video {vid} chunk-0001 of run {run}: attempt") == 1
        assert len(p.storage.list(work_prefix(vid, run))) > 0  # the one encode, stored


def test_a_video_published_early_gets_its_lost_chunk(clip: Path, tmp_path: Path) -> None:
    """A chunk's message lost at the plan, the video published early meanwhile: once the part
    has waited the stale margin (aged here, instead of waiting 25 minutes), the run reaper
    sends it again and the whole ladder replaces the early one."""
    with pool(tmp_path, lose="chunk:2") as p:
        vid = upload(p, clip)
        rest = {("preview", 0), ("audio", 0), (CHUNK, 0), (CHUNK, 1), ("playable", 0)}

        def early() -> bool:
            rows = parts(p.db, vid)
            return all(rows.get(key, ("",))[0] == "done" for key in rest)

        wait_for(early, TIMEOUT_S, "the early publish and the chunks not lost")
        row = video_row(p.db, vid)
        run = part_row(p.db, vid, CHUNK, 2).run_id
        assert row.status == "published" and row.render_id == early_render_id(run)
        # Younger than the stale margin, a never-started part may be waiting in a queue.
        time.sleep(3 * REAPER_S)
        assert parts(p.db, vid)[(CHUNK, 2)] == ("pending", 0)
        margin_ms = (p.settings.transcode_time_limit_s + MARGIN_SECONDS) * 1000
        with p.db.begin() as conn:
            conn.execute(
                update(video_parts)
                .where(video_parts.c.video_id == vid, video_parts.c.kind == CHUNK)
                .where(video_parts.c.part == 2)
                .values(updated_at=now_ms() - margin_ms - 1000)
            )
        row = wait_complete(p, vid)
        assert row.render_id != early_render_id(run)
        assert set(parts(p.db, vid).values()) == {("done", 1)}
        check_complete(p, clip, vid, row)
