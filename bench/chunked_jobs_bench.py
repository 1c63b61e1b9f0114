"""What the job system adds to split and stitch (issue 15): one upload through the real actors
(embedded mode's in-memory broker, SQLite, local storage, one worker thread) as the single pass
and as a chunked run (planner, chunk jobs, audio job, assembly), alternately.

With one worker the chunked run cannot be faster: the difference is the orchestration's cost
(the planner's plan child, each part's child start and probe, the parts' uploads and downloads,
the assembly's decode of the stitched top rung for the analysis and thumbnails) on top of the
engine's own chunking overhead (bench/chunked_bench.py). CPU seconds of the process and its
sandboxed children from the enqueue to the published row (wall seconds too, but the machine is
shared: they vary by ±20 %): a benchmark, not a test.

    PYTHONPATH=$PWD .venv/bin/python bench/make_source.py --seconds 20
    PYTHONPATH=$PWD .venv/bin/python bench/chunked_jobs_bench.py --seconds 20 --pairs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import worker
from api.core.db import create_schema, new_id, now_ms
from api.core.tables import users, video_parts
from bench.make_source import build_source
from tests.support.api import make_settings
from tests.support.jobs import stage_video, video_row, wait_for

RESULTS = Path(__file__).with_name("chunked_jobs_results.json")


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its finished children (the sandboxed
    engine jobs, each joined when it ends)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_run(source: Path, threshold: float, segments: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chunked-jobs-") as tmp:
        settings = make_settings(
            Path(tmp),
            chunk_threshold_seconds=threshold,
            chunk_segments=segments,
            embedded_workers=1,
        )
        jobs = worker.build(settings)
        db = jobs.chunking.host.db
        create_schema(db)
        owner = new_id("u")
        with db.begin() as conn:
            conn.execute(
                users.insert().values(
                    id=owner, handle=owner.replace("_", ""), display_name="bench",
                    password_hash="-", role="user", created_at=now_ms(),
                )
            )  # fmt: skip
        vid = stage_video(db, jobs.chunking.host.storage, owner, source)
        jobs.start_embedded_worker()
        try:
            cpu_before = cpu_seconds()
            started = time.perf_counter()
            jobs.enqueue_transcode(vid, "normal")
            wait_for(lambda: video_row(db, vid).status != "processing", 3600, "the job")
            wall = time.perf_counter() - started
            cpu = cpu_seconds() - cpu_before
            row = video_row(db, vid)
            with db.connect() as conn:
                parts = conn.execute(
                    video_parts.select().where(video_parts.c.video_id == vid)
                ).all()
        finally:
            jobs.stop()
        assert row.status == "published", row.status_reason
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "parts": len(parts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--segments", type=int, default=5, help="segments per chunk")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    source = build_source(args.seconds)
    runs: dict[str, list[dict[str, Any]]] = {"single": [], "chunked": []}
    for _ in range(args.pairs):
        runs["single"].append(one_run(source, 0.0, args.segments))
        runs["chunked"].append(one_run(source, 1.0, args.segments))
        print(runs["single"][-1], runs["chunked"][-1], flush=True)
    medians = {k: statistics.median(r["wall_s"] for r in v) for k, v in runs.items()}
    cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in runs.items()}
    result = {
        "machine": "2 shared CPUs (this dev box), one embedded worker thread, x264 veryfast",
        "source": f"{args.seconds:g} s 1080x1920 30 fps (bench/make_source.py), 2 s segments",
        "segments_per_chunk": args.segments,
        "runs": runs,
        "median_wall_s": medians,
        "median_cpu_s": cpu,
        "cpu_overhead_share": round(cpu["chunked"] / cpu["single"] - 1, 3),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
