"""The storage sweeper (issue 16, "Nothing left behind"): objects no row will ever point at.

A job writes a render's objects (`media/{vid}/{render}/`, `safety/{vid}/{render}/`) before the
transaction that points `videos.render_id` at them, and a chunked run's parts
(`work/{vid}/{run}/`) before its assembly; a worker killed in between (SIGKILL skips every
`except` and `finally`) leaves them behind, and S3 keeps the parts of a multipart upload that
was neither completed nor aborted. `sweep` removes, once they are older than the grace period:

- a render prefix (media and the matching safety frames) that no video row points at
  (`videos.render_id`; safety frames also stay while `video_safety.worst_frames` names them);
- a work prefix whose run is not live (no `video_parts` row of that run, or the run no longer
  alive as api/jobs/partrows.py `run_alive` says: its assembly published it, or it failed);
- incomplete multipart uploads (local storage: a killed writer's temp files).

A render replaced by another (a chunked run's early render once the assembly swaps in the full
ladder, issue 15 "Playable early") is kept while `superseded_renders` says the origin still
serves it (URLs handed out before the swap live until then), and a processing video's growing
presentation (api/jobs/progressive.py) while its run goes on. Age is the newest object's
last-modified time, never a row's: a job in the middle of storing writes its prefix before any
row names it, so the grace period (`Settings.storage_grace_seconds`) covers the longest a job
takes from writing a render to committing the row that points at it.

Deleted videos are not this module's business: `Runtime.cleanup` removes all their prefixes
at once. The sweep is scheduled like the job relay (api/jobs/relay.py): every API process runs
`sweeper_loop`, embedded mode included; once per interval one of them (a cache counter is the
lock) enqueues the `sweep_storage` actor on the cleanup queue (worker.py), so the listing and
the deletes run on a worker, never on the API's event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.keys import media_prefix, safety_prefix, work_prefix
from api.core.tables import superseded_renders, video_growing, video_parts, video_safety, videos
from api.jobs.partrows import run_alive
from cdn.storage import ObjectInfo, Storage

log = logging.getLogger("reelforge.sweeper")

LOCK_KEY = "sweeper:lock"
BATCH = 500
"""Video ids per database query (an `IN` list of this many)."""


@dataclass
class SweepReport:
    """What one sweep removed: the prefixes, and the multipart uploads aborted."""

    renders: list[str] = field(default_factory=list)
    work: list[str] = field(default_factory=list)
    objects: int = 0
    aborted_uploads: int = 0


def sweep(db: Engine, storage: Storage, grace_s: float, now: float | None = None) -> SweepReport:
    """Remove what no row will ever point at, if older than `grace_s` (see the module doc)."""
    cutoff = (time.time() if now is None else now) - grace_s
    report = SweepReport()
    renders = _newest_by_prefix(storage.list("media/"), storage.list("safety/"))
    kept = _pointed_renders(db, {vid for vid, _ in renders})
    for (vid, render), newest in sorted(renders.items()):
        if (vid, render) in kept or newest >= cutoff:
            continue
        report.objects += storage.delete_prefix(media_prefix(vid, render))
        report.objects += storage.delete_prefix(safety_prefix(vid, render))
        report.renders.append(media_prefix(vid, render))
    runs = _newest_by_prefix(storage.list("work/"))
    live = _live_runs(db, {vid for vid, _ in runs})
    for (vid, run), newest in sorted(runs.items()):
        if (vid, run) in live or newest >= cutoff:
            continue
        report.objects += storage.delete_prefix(work_prefix(vid, run))
        report.work.append(work_prefix(vid, run))
    report.aborted_uploads = storage.abort_stale_writes(cutoff)
    if report.renders or report.work or report.aborted_uploads:
        log.warning(
            "storage sweep removed %d object(s) of %d render(s) and %d run(s) no row points "
            "at, and aborted %d stale upload(s): %s",
            report.objects,
            len(report.renders),
            len(report.work),
            report.aborted_uploads,
            report.renders + report.work,
        )
    return report


def _newest_by_prefix(*listings: Iterable[ObjectInfo]) -> dict[tuple[str, str], float]:
    """(video id, render or run id) → the newest last-modified time of its objects.

    Keys are `{root}/{vid}/{id}/{path}`; a key with fewer segments is not ours to judge."""
    newest: dict[tuple[str, str], float] = defaultdict(float)
    for listing in listings:
        for info in listing:
            parts = info.key.split("/", 3)
            if len(parts) == 4:
                pair = (parts[1], parts[2])
                newest[pair] = max(newest[pair], info.last_modified)
    return dict(newest)


def _batches(ids: set[str]) -> Iterator[list[str]]:
    ordered = sorted(ids)
    for start in range(0, len(ordered), BATCH):
        yield ordered[start : start + BATCH]


def _pointed_renders(db: Engine, video_ids: set[str]) -> set[tuple[str, str]]:
    """(video, render) pairs a row points at: `videos.render_id`, a replaced render still
    served (`superseded_renders.served_until` ahead), and the renders whose frames
    `video_safety.worst_frames` names (a moderator is shown them)."""
    kept: set[tuple[str, str]] = set()
    with db.connect() as conn:
        for batch in _batches(video_ids):
            rows = conn.execute(
                select(videos.c.id, videos.c.render_id).where(
                    videos.c.id.in_(batch), videos.c.render_id.is_not(None)
                )
            )
            kept.update((row.id, row.render_id) for row in rows)
            replaced = conn.execute(
                select(superseded_renders.c.video_id, superseded_renders.c.render_id).where(
                    superseded_renders.c.video_id.in_(batch),
                    superseded_renders.c.served_until > now_ms(),
                )
            )
            kept.update((row.video_id, row.render_id) for row in replaced)
            growing = conn.execute(  # a processing video's growing presentation
                select(video_growing.c.video_id, video_growing.c.render_id).where(
                    video_growing.c.video_id.in_(batch),
                    video_growing.c.video_id == videos.c.id,
                    videos.c.status == lifecycle.PROCESSING,
                )
            )
            kept.update((row.video_id, row.render_id) for row in growing)
            frames = conn.execute(
                select(video_safety.c.video_id, video_safety.c.worst_frames).where(
                    video_safety.c.video_id.in_(batch)
                )
            )
            for row in frames:
                kept.update((row.video_id, render) for render in _frame_renders(row.worst_frames))
    return kept


def _frame_renders(worst_frames: str) -> set[str]:
    """The render ids in `video_safety.worst_frames` keys (`safety/{vid}/{render}/{n}.jpg`)."""
    try:
        frames = json.loads(worst_frames or "[]")
    except ValueError:
        return set()
    renders = set()
    for frame in frames if isinstance(frames, list) else []:
        key = frame.get("key") if isinstance(frame, dict) else None
        parts = key.split("/") if isinstance(key, str) else []
        if len(parts) >= 4 and parts[0] == "safety":
            renders.add(parts[2])
    return renders


def _live_runs(db: Engine, video_ids: set[str]) -> set[tuple[str, str]]:
    """(video, run) of the chunked runs still to finish: rows in `video_parts` (a newer run
    deleted an older run's rows) and the run alive as its own jobs judge it
    (api/jobs/partrows.py `run_alive`: the video processing, or showing the run's early
    render); a run whose video was published by its assembly, failed or deleted is over."""
    live: set[tuple[str, str]] = set()
    with db.connect() as conn:
        for batch in _batches(video_ids):
            pairs = conn.execute(
                select(video_parts.c.video_id, video_parts.c.run_id)
                .distinct()
                .where(video_parts.c.video_id.in_(batch))
            ).all()
            for vid, run in pairs:
                if conn.execute(select(run_alive(vid, run))).scalar():
                    live.add((vid, run))
    return live


async def sweeper_loop(ctx: AppContext, interval_s: float) -> None:
    """Enqueue one `sweep_storage` job per interval across all API processes, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            count, _ = await ctx.cache.incr_window(LOCK_KEY, max(1, int(interval_s)))
            if count == 1:
                await asyncio.to_thread(ctx.jobs.enqueue_sweep)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a broker or cache hiccup
            log.exception("could not enqueue the storage sweep; trying again next interval")
