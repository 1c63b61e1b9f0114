"""Re-enqueue jobs whose broker message was lost (production).

The database is the source of truth: a video in `processing` must have a job somewhere. A
message can still vanish (Redis restarted without persistence, a message dead-lettered after
an infrastructure outage). Every API process runs `reaper_loop`; once per interval one of them
(a cache counter is the lock) re-enqueues the videos whose last claim is older than any job can
live — its time limit plus the transfer margin, plus a safety margin. Jobs are idempotent, so a
message that turns out not to be lost after all only costs a skipped run.

Embedded mode re-enqueues every unfinished video at start instead (one process owns the data).
The parts of a chunked run (including one already published early) have their own reaper:
api/jobs/partreaper.py.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, update

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.lifecycle import PROCESSING
from api.core.tables import videos

log = logging.getLogger("reelforge.reaper")

LOCK_KEY = "reaper:lock"
# Added to the transcode time limit: downloading the upload and storing the outputs
# (worker.py gives the actor 300 s for that) and a margin.
MARGIN_SECONDS = 600


def stale_after_ms(ctx: AppContext) -> int:
    return (ctx.settings.transcode_time_limit_s + MARGIN_SECONDS) * 1000


async def requeue_stale(ctx: AppContext) -> list[str]:
    """Enqueue again every `processing` video not claimed for longer than a job can live.

    Each is touched first with a compare-and-set on `updated_at`, so two reapers racing
    enqueue it once."""
    cutoff = now_ms() - stale_after_ms(ctx)
    async with ctx.db.connect() as conn:
        rows = (
            await conn.execute(
                select(videos.c.id, videos.c.lane, videos.c.updated_at).where(
                    videos.c.status == PROCESSING, videos.c.updated_at < cutoff
                )
            )
        ).all()
    requeued: list[str] = []
    for row in rows:
        async with ctx.db.begin() as conn:
            touched = await conn.execute(
                update(videos)
                .where(
                    videos.c.id == row.id,
                    videos.c.status == PROCESSING,
                    videos.c.updated_at == row.updated_at,
                )
                .values(updated_at=now_ms())
            )
        if touched.rowcount != 1:
            continue
        await asyncio.to_thread(ctx.jobs.enqueue_transcode, row.id, row.lane)
        requeued.append(row.id)
    if requeued:
        log.warning("re-enqueued %d video(s) whose job was lost: %s", len(requeued), requeued)
    return requeued


async def reaper_loop(ctx: AppContext, interval_s: float = 300.0) -> None:
    """Run `requeue_stale` once per interval across all API processes, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            count, _ = await ctx.cache.incr_window(LOCK_KEY, max(1, int(interval_s)))
            if count == 1:
                await requeue_stale(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a database or cache hiccup
            log.exception("the stale-job reaper failed; trying again next interval")
