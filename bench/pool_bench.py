"""One upload across the worker pool (issue 15, "Benchmark"): the production topology, timed from
the enqueue to *first playable* and to *fully published*. A benchmark, not a test.

The topology is production's: a fresh PostgreSQL database on 127.0.0.1:5432 and a leased Redis
database on 127.0.0.1:6379 per pool (tests/support/services.py; nothing else is touched), local
storage under bench/work/pool/, and N `dramatiq worker:setup --processes 1 --threads 1`
processes, worker i pinned to the i-th CPU of `--cpus` with `taskset -c` (the engine sizes x264's
threads from its affinity: engine/encoders.py). For each mode, each N of `--workers`:

- `single`: `REELFORGE_CHUNK_THRESHOLD_SECONDS=0`, the single pass for every upload;
- `chunked`: the threshold `--threshold` (low: every source is split) and `--segments`
  segments a chunk (README "Split and stitch"), no preview part (the default: the chunks
  run the frame analyzers, the video is decoded once and published when complete);
- `preview`: `chunked` with the preview part (`REELFORGE_PREVIEW_RUNGS=1`: a second decode
  of the whole video for the lowest rung, published early).

The workers start once per (mode, N) and are warmed with tiny uploads until each one's process
tree has done engine work, so imports and model loads are not counted. Then each source runs
`--repeat` times: its upload is staged in storage as the upload routes leave it
(tests/support/jobs.py `stage_video`) and its transcode enqueued as `POST .../publish` does
(`Jobs.enqueue_transcode`, lane normal); from that call the video row is polled every 0.1 s:

- `first_playable_s`: the earlier of `growing_playable_s` (the chunked run's growing
  presentation, api/jobs/progressive.py, first has chunks published: its owner can play it)
  and `first_published_s` (the row first reads `published`; a partial ladder may publish
  early);
- `fully_published_s`: `published`, `videos.renditions` lists every rung of the source's ladder
  (ladders.choose_ladder: v1080, v720, v540, v360 for 1080x1920) and no `video_parts` row of
  the video is `pending` or `claimed` (api/jobs/partrows.py);
- `planned_s` (chunked): the run's part rows first exist; `assembly_s`: fully published minus
  the last chunk or audio part's `done` time;
- `cpu_s`: the workers' process trees' CPU seconds over the run (/proc/<pid>/stat, reaped
  children included), so it holds on a shared machine where wall times do not.

Ratios and the 2-CPU-worker estimate (its formula: bench/pool_figures.py) go to
`bench/pool_results.json` with the machine, the commit and every run; `bench/pool_table.py`
prints them as Markdown. `--threshold-sweep` instead runs 10, 20, 30 and 45 s sources on N=2,
single against chunked, to show from which length chunking pays (the `sweep` section).

    PYTHONPATH=$PWD .venv/bin/python bench/pool_bench.py --seconds 60,180 --workers 1,2
    PYTHONPATH=$PWD .venv/bin/python bench/pool_bench.py --workers 1,2,4,8 --cpus 0-15
    PYTHONPATH=$PWD .venv/bin/python bench/pool_bench.py --threshold-sweep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, select  # noqa: E402

import worker  # noqa: E402
from api.core.db import create_schema, sync_engine  # noqa: E402
from api.core.services import make_storage  # noqa: E402
from api.core.settings import Settings  # noqa: E402
from api.core.tables import video_growing, video_parts, videos  # noqa: E402
from api.jobs.partrows import AUDIO, CHUNK, CLAIMED, PENDING  # noqa: E402
from bench import pool_figures  # noqa: E402
from bench.make_source import WORK_DIR, build_source  # noqa: E402
from engine.source import probe  # noqa: E402
from ladders.choose import choose_ladder  # noqa: E402
from tests.support.jobs import insert_user, stage_video  # noqa: E402
from tests.support.services import (  # noqa: E402
    WorkerProcess,
    fresh_postgres_database,
    process_tree,
    production_env,
    redis_database,
)

RESULTS = ROOT / "bench" / "pool_results.json"
POLL_S = 0.1
WARM_SECONDS = 3.0
WARM_CPU_S = 1.0  # engine work a warmed worker's tree has done beyond its start
SWEEP_SECONDS = (10.0, 20.0, 30.0, 45.0)
FAILED_STATES = ("failed", "rejected", "in_review")
# Messages a `--threads 1` worker holds from each queue (dramatiq: 2 × threads, unless the
# `dramatiq_queue_prefetch` variable says otherwise): one may sit in a busy worker's buffer
# while another worker idles, which production does too.
DRAMATIQ_PREFETCH = 2


class PinnedWorker(WorkerProcess):
    """`taskset -c CPU dramatiq worker:setup ...`: taskset execs dramatiq, so the pid (and the
    process group the stop kills) is the worker's, and every child inherits the CPU."""

    def __init__(self, env: Mapping[str, str], log_path: Path, cpu: int) -> None:
        super().__init__(env, log_path)
        self.cpu = cpu
        self.argv = ["taskset", "-c", str(cpu), *self.argv]

    def cpu_seconds(self) -> float:
        return pool_figures.tree_cpu_seconds(process_tree(self.pid))


@dataclass
class Pool:
    """N pinned workers on their own database, Redis database and storage."""

    mode: str
    workers: list[PinnedWorker]
    settings: Settings
    db: Engine
    jobs: worker.Jobs
    owner: str
    warm_cpu_s: list[float] = field(default_factory=list)

    def cpu_by_worker(self) -> list[float]:
        return [w.cpu_seconds() for w in self.workers]


# The moderation model scores one frame of the 180 s source's real footage 0.71 nsfw, over the
# default review threshold (0.7): held for review, it would publish neither early nor at all.
# The analysis still runs on every frame it samples (the same cost); only routing is relaxed.
ROUTING = {
    "REELFORGE_MODERATION_REVIEW_THRESHOLD": "0.98",
    "REELFORGE_MODERATION_REJECT_THRESHOLD": "0.99",
}


def mode_env(mode: str, threshold: float, segments: int) -> dict[str, str]:
    if mode == "single":
        return {"REELFORGE_CHUNK_THRESHOLD_SECONDS": "0", **ROUTING}
    return {
        "REELFORGE_CHUNK_THRESHOLD_SECONDS": f"{threshold:g}",
        "REELFORGE_CHUNK_SEGMENTS": str(segments),
        # `preview`: the optional preview part (a second decode) and its early publish.
        "REELFORGE_PREVIEW_RUNGS": "1" if mode == "preview" else "0",
        **ROUTING,
    }


@contextmanager
def pool(mode: str, cpus: list[int], work: Path, extra: Mapping[str, str]) -> Iterator[Pool]:
    with ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database())
        redis_url = stack.enter_context(redis_database(lease_s=4 * 3600))
        tag = f"{mode}-n{len(cpus)}-{time.strftime('%H%M%S')}"
        # Registered first, so it runs last: after the workers have stopped.
        stack.callback(shutil.rmtree, work / tag / "data", True)
        env = production_env(
            work / tag / "data",
            database_url=database_url,
            redis_url=redis_url,
            s3_endpoint="127.0.0.1:1",
            REELFORGE_STORAGE="local",
            REELFORGE_TRANSCODE_TIME_LIMIT_S="3600",
            **extra,
        )
        settings = Settings.from_env(env)
        db = sync_engine(settings)
        stack.callback(db.dispose)
        create_schema(db)
        workers = []
        for index, cpu in enumerate(cpus):
            process = PinnedWorker(env, work / tag / f"worker{index}.log", cpu)
            stack.enter_context(process).start()
            workers.append(process)
        jobs = worker.build(settings)
        stack.callback(jobs.stop)
        yield Pool(mode, workers, settings, db, jobs, insert_user(db, "pool-bench"))


def poll_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(POLL_S)


def video_state(db: Engine, video_id: str) -> tuple[str, str, list[str], list[Any]]:
    """(status, reason, rendition names, part rows) of the video: the row first, then its
    parts, which only move forward, so a published row never pairs with older part states."""
    with db.connect() as conn:
        row = conn.execute(
            select(videos.c.status, videos.c.status_reason, videos.c.renditions).where(
                videos.c.id == video_id
            )
        ).one()
        parts = conn.execute(
            select(video_parts.c.kind, video_parts.c.state, video_parts.c.updated_at).where(
                video_parts.c.video_id == video_id
            )
        ).all()
    names = [r["name"] for r in json.loads(row.renditions or "[]")]
    return row.status, row.status_reason, names, list(parts)


def growing_state(db: Engine, video_id: str) -> float | None:
    """Seconds playable in the video's growing presentation (api/jobs/progressive.py), None
    until its first publish."""
    with db.connect() as conn:
        seconds = conn.execute(
            select(video_growing.c.seconds).where(
                video_growing.c.video_id == video_id, video_growing.c.chunks > 0
            )
        ).scalar()
    return None if seconds is None else float(seconds)


def one_run(the_pool: Pool, source: Path, rungs: list[str], timeout_s: float) -> dict[str, Any]:
    """Stage the upload, enqueue it as the API does, time first playable and fully published."""
    storage = make_storage(the_pool.settings)
    vid = stage_video(the_pool.db, storage, the_pool.owner, source)
    cpu_before = the_pool.cpu_by_worker()
    wall_start_ms = time.time() * 1000
    start = time.perf_counter()
    the_pool.jobs.enqueue_transcode(vid, "normal")
    figures: dict[str, Any] = {"video_id": vid}
    deadline = start + timeout_s
    while True:
        status, reason, names, parts = video_state(the_pool.db, vid)
        elapsed = round(time.perf_counter() - start, 2)
        if status in FAILED_STATES:
            raise RuntimeError(f"{vid} ended {status}: {reason}")
        if parts and "planned_s" not in figures:
            figures["planned_s"] = elapsed
        growing = growing_state(the_pool.db, vid) if "growing_playable_s" not in figures else None
        if growing is not None:  # the growing presentation's first publish: playable (owner)
            figures["growing_playable_s"] = elapsed
            figures["growing_playable_seconds"] = growing
            figures.setdefault("first_playable_s", elapsed)
        if status == "published":
            figures.setdefault("first_published_s", elapsed)
            figures.setdefault("first_playable_s", elapsed)
            figures.setdefault("first_playable_renditions", names)
            unfinished = [p for p in parts if p.state in (PENDING, CLAIMED)]
            if set(rungs) <= set(names) and not unfinished:
                figures["fully_published_s"] = elapsed
                break
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{vid} not fully published after {timeout_s:g} s ({status})")
        time.sleep(POLL_S)
    by_worker = [a - b for a, b in zip(the_pool.cpu_by_worker(), cpu_before, strict=True)]
    figures["cpu_s"] = round(sum(by_worker), 2)
    figures["cpu_s_by_worker"] = [round(c, 2) for c in by_worker]
    done = [p.updated_at for p in parts if p.kind in (CHUNK, AUDIO)]
    figures["parts"] = len([p for p in parts if p.kind == CHUNK])
    if done:
        last_part_s = (max(done) - wall_start_ms) / 1000
        figures["assembly_s"] = round(figures["fully_published_s"] - last_part_s, 2)
    return figures


def enqueue_staged(the_pool: Pool, source: Path) -> str:
    vid = stage_video(the_pool.db, make_storage(the_pool.settings), the_pool.owner, source)
    the_pool.jobs.enqueue_transcode(vid, "normal")
    return vid


def fully_published(db: Engine, video_id: str, rungs: list[str]) -> bool:
    status, reason, names, parts = video_state(db, video_id)
    if status in FAILED_STATES:
        raise RuntimeError(f"{video_id} ended {status}: {reason}")
    unfinished = [p for p in parts if p.state in (PENDING, CLAIMED)]
    return status == "published" and set(rungs) <= set(names) and not unfinished


def warm(the_pool: Pool, tiny: Path, rungs: list[str], prefetch: int, rounds: int = 4) -> None:
    """Tiny uploads, prefetch × N at once (a worker holds up to `prefetch` messages a queue,
    so N at once may all go to one worker), until every worker's tree has done engine work."""
    start = [w.cpu_seconds() for w in the_pool.workers]
    for _ in range(rounds):
        vids = [enqueue_staged(the_pool, tiny) for _ in range(prefetch * len(the_pool.workers))]
        for vid in vids:
            poll_until(partial(fully_published, the_pool.db, vid, rungs), 600, "warm-up")
        grown = [w.cpu_seconds() - s for w, s in zip(the_pool.workers, start, strict=True)]
        the_pool.warm_cpu_s = [round(g, 2) for g in grown]
        if min(grown) >= WARM_CPU_S:
            return
    print(f"warning: a worker did no warm-up work: {the_pool.warm_cpu_s}", flush=True)


@dataclass(frozen=True)
class Source:
    name: str
    path: Path
    seconds: float
    rungs: list[str]


def load_source(seconds: float, work_dir: Path) -> Source:
    path = build_source(seconds, work_dir)
    info = probe(path)
    rungs = [rung.name for rung in choose_ladder(info)]
    return Source(f"{seconds:g}s", path, round(info.duration, 3), rungs)


def run_matrix(
    sources: list[Source],
    tiny: Source,
    modes: list[str],
    pool_sizes: list[int],
    cpus: list[int],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    work = args.work_dir / "pool"
    for mode in modes:
        # One upload's single pass runs on one worker whatever the pool: its baseline is N=1.
        sizes = pool_sizes if mode != "single" or args.single_every_size else pool_sizes[:1]
        for n in sizes:
            extra = mode_env(mode, args.threshold, args.segments)
            extra["REELFORGE_SEGMENT_SECONDS"] = f"{args.segment_seconds:g}"
            if args.prefetch:
                extra["dramatiq_queue_prefetch"] = str(args.prefetch)
            with pool(mode, cpus[:n], work, extra) as the_pool:
                warm(the_pool, tiny.path, tiny.rungs, args.prefetch or DRAMATIQ_PREFETCH)
                for source in sources:
                    for repeat in range(args.repeat):
                        # What a run leaves behind (the cleanup job, the work prefix's removal)
                        # ends before the next one starts.
                        time.sleep(args.pause)
                        figures = one_run(the_pool, source.path, source.rungs, args.timeout)
                        run = {"source": source.name, "source_s": source.seconds, "mode": mode,
                               "workers": n, "cpus": cpus[:n], "repeat": repeat,
                               "warm_cpu_s": the_pool.warm_cpu_s, **figures}  # fmt: skip
                        print(json.dumps(run), flush=True)
                        runs.append(run)
    return runs


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    nproc = subprocess.run(["nproc"], capture_output=True, text=True, check=False).stdout.strip()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return {
        "nproc": int(nproc or 0),
        "cpu_model": model,
        "load_average_at_start": list(Path("/proc/loadavg").read_text().split()[:3]),
        "commit": commit + ("-dirty" if dirty else ""),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", default="60,180", help="source lengths, comma-separated")
    parser.add_argument("--workers", default="1,2", help="pool sizes, comma-separated")
    parser.add_argument("--cpus", default=None, help="CPUs to pin to (taskset list; default all)")
    parser.add_argument("--modes", default="single,chunked")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--single-every-size", action="store_true",
        help="run the single pass at every pool size, not only the first (it uses one worker)",
    )  # fmt: skip
    parser.add_argument("--threshold", type=float, default=1.0, help="chunked mode's threshold")
    parser.add_argument("--segments", type=int, default=5, help="chunked mode's segments a chunk")
    parser.add_argument("--segment-seconds", type=float, default=2.0)
    parser.add_argument("--threshold-sweep", action="store_true", help="10-45 s sources on N=2")
    parser.add_argument("--sweep-seconds", default=",".join(f"{s:g}" for s in SWEEP_SECONDS))
    parser.add_argument("--sweep-workers", default="2", help="pool sizes of the sweep")
    parser.add_argument(
        "--prefetch", type=int, default=0, help="dramatiq_queue_prefetch (0: dramatiq's 2)"
    )
    parser.add_argument("--warm-seconds", type=float, default=WARM_SECONDS)
    parser.add_argument("--pause", type=float, default=2.0, help="idle seconds before a run")
    parser.add_argument("--timeout", type=float, default=3600.0, help="one run's bound (s)")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="cached sources")
    parser.add_argument("--results", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cpus = pool_figures.parse_cpus(args.cpus) if args.cpus else sorted(os.sched_getaffinity(0))
    sizes = args.sweep_workers if args.threshold_sweep else args.workers
    pool_sizes = [int(n) for n in sizes.split(",")]
    if max(pool_sizes) > len(cpus):
        raise SystemExit(f"{max(pool_sizes)} workers need {max(pool_sizes)} CPUs, have {cpus}")
    lengths = args.sweep_seconds if args.threshold_sweep else args.seconds
    sources = [load_source(float(s), args.work_dir) for s in lengths.split(",")]
    tiny = load_source(args.warm_seconds, args.work_dir)
    modes = args.modes.split(",")
    started = time.perf_counter()
    facts = machine()
    runs = run_matrix(sources, tiny, modes, pool_sizes, cpus, args)
    summary = pool_figures.summarize(runs)
    section: dict[str, Any] = {
        "machine": facts,
        "setup": {
            "workers": "dramatiq worker:setup --processes 1 --threads 1, taskset -c <one CPU>",
            "storage": "local", "poll_s": POLL_S, "pool_sizes": pool_sizes, "cpus": cpus,
            "chunk_threshold_s": args.threshold, "segments_per_chunk": args.segments,
            "segment_s": args.segment_seconds, "repeat": args.repeat,
            "queue_prefetch": args.prefetch or DRAMATIQ_PREFETCH, "pause_s": args.pause,
            "sources": {s.name: {"seconds": s.seconds, "rungs": s.rungs} for s in sources},
            "bench_wall_s": round(time.perf_counter() - started, 1),
        },
        "runs": runs,
        "summary": summary,
        "derived": pool_figures.derive(summary),
    }  # fmt: skip
    if not args.threshold_sweep:
        chunk_s = args.segments * args.segment_seconds
        section["estimate_10min_upload"] = pool_figures.estimate(runs, summary, chunk_s=chunk_s)
    results = json.loads(args.results.read_text()) if args.results.is_file() else {}
    results["sweep" if args.threshold_sweep else "pool"] = section
    args.results.write_text(json.dumps(results, indent=2) + "\n")
    from bench.pool_table import render

    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
