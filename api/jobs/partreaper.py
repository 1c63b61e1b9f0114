"""The run reaper: re-dispatch the parts of live chunked runs whose worker died or whose message
was lost (issue 15, "Split and stitch": a killed chunk is redone alone; production).

Every API process runs `redispatch_loop`; once per `part_reaper_interval_seconds` one of them
(a cache counter is the lock, as for api/jobs/relay.py) looks at every live run
(api/jobs/partrows.py `run_alive`: the video is `processing`, or shows the run's early render)
and enqueues again:

a. a started part (attempts > 0, still pending) whose lease lapsed: no heartbeat for
   `part_lease_s`, so the worker that held it died, and no redelivery took it;
b. a claimed assembly or early publish whose lease lapsed (its message was lost after the
   claim, or its worker died);
c. a part never started (attempts 0) older than the stale margin (`stale_after_ms`: a message
   lost alone); every part never started when the job relay found the broker's data lost
   (api/jobs/relay.py: Redis came back empty, its messages are gone);
d. a pending assembly whose parts are all done (the last part's worker died between its own row
   and the claim): its message claims it (api/jobs/presenting.py `assemble`).

A duplicate is harmless: a delivery takes a part only with its lease (partrows.count_attempt),
so a second one is skipped. Each (part, state, attempt) is re-dispatched once per stale margin
(a cache counter), so a message waiting behind a backlog is not sent again every interval.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import and_, exists, or_, select, update

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.lifecycle import DELETED, PROCESSING
from api.core.tables import video_parts, videos
from api.jobs.partrows import ASSEMBLY, CLAIMED, DONE, PENDING, PLAYABLE, WORK, part_key
from api.jobs.publish import early_render_id

log = logging.getLogger("reelforge.reaper")

LOCK_KEY = "partreaper:lock"
# Added to the transcode time limit for a part never started: downloading the upload and
# storing the outputs (worker.py gives the actor 300 s for that) and a margin.
MARGIN_SECONDS = 600

Part = tuple[str, str, str, int]
"""(video id, run id, kind, index): what `JobQueue.enqueue_part` takes."""


def stale_after_ms(ctx: AppContext) -> int:
    return (ctx.settings.transcode_time_limit_s + MARGIN_SECONDS) * 1000


def _candidates(lapsed: int, stale: int) -> Any:
    parts = video_parts
    others = video_parts.alias("others")
    undone = exists().where(
        others.c.video_id == parts.c.video_id,
        others.c.run_id == parts.c.run_id,
        others.c.kind.in_(WORK),
        others.c.state != DONE,
    )
    pending_work = and_(parts.c.kind.in_(WORK), parts.c.state == PENDING)
    return or_(
        and_(pending_work, parts.c.attempts > 0, parts.c.updated_at < lapsed),
        and_(pending_work, parts.c.attempts == 0, parts.c.updated_at < stale),
        and_(
            parts.c.kind.in_((ASSEMBLY, PLAYABLE)),
            parts.c.state == CLAIMED,
            parts.c.updated_at < lapsed,
        ),
        and_(
            parts.c.kind == ASSEMBLY,
            parts.c.state == PENDING,
            parts.c.updated_at < lapsed,
            ~undone,
        ),
    )


async def redispatch_lapsed(
    ctx: AppContext, at_start: bool = False, broker_lost: bool = False
) -> list[Part]:
    """Enqueue again the parts of live runs that no worker holds (see the module doc).

    `at_start`: embedded mode's start, where this process is the only worker and runs nothing
    yet: every unfinished part of a live run is sent again, its lease given back first (a
    run published early and cut short by a restart gets its ladder; a `processing` video's run
    is restarted whole by its transcode job, re-enqueued beside this).

    `broker_lost`: the broker's data was lost (api/jobs/relay.py): every part never started
    is sent again at once, not after the stale margin."""
    now = now_ms()
    lapsed = now + 1 if at_start else now - int(ctx.settings.part_lease_s * 1000)
    margin_ms = stale_after_ms(ctx)
    query = (
        select(
            video_parts.c.video_id,
            video_parts.c.run_id,
            video_parts.c.kind,
            video_parts.c.part,
            video_parts.c.state,
            video_parts.c.attempts,
            videos.c.status,
            videos.c.render_id,
        )
        .join(videos, videos.c.id == video_parts.c.video_id)
        .where(
            video_parts.c.state.in_((PENDING, CLAIMED)),  # ix_video_parts_state: not the done
            videos.c.status != DELETED,
            _candidates(lapsed, now + 1 if at_start or broker_lost else now - margin_ms),
        )
    )
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(query)).all()
    sent: list[Part] = []
    for row in rows:
        # `partrows.run_alive`, in Python: the render id is derived from the run id.
        if row.status != PROCESSING and row.render_id != early_render_id(row.run_id):
            continue
        if at_start:
            if row.status == PROCESSING:
                continue
            async with ctx.db.begin() as conn:  # its lease given back, as `partrows.release`
                await conn.execute(
                    update(video_parts)
                    .where(
                        part_key(row.video_id, row.run_id, row.kind, row.part),
                        video_parts.c.state == row.state,
                        video_parts.c.attempts == row.attempts,
                    )
                    .values(updated_at=0)
                )
        key = f"partreaper:{row.video_id}:{row.run_id}:{row.kind}:{row.part}:{row.state}"
        count, _ = await ctx.cache.incr_window(f"{key}:{row.attempts}", margin_ms // 1000)
        if count != 1:
            continue
        part: Part = (row.video_id, row.run_id, row.kind, row.part)
        await asyncio.to_thread(ctx.jobs.enqueue_part, *part)
        sent.append(part)
    if sent:
        log.warning("re-dispatched %d part(s) no worker holds: %s", len(sent), sent)
    return sent


async def redispatch_loop(ctx: AppContext, interval_s: float) -> None:
    """Run `redispatch_lapsed` once per interval across all API processes, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            count, _ = await ctx.cache.incr_window(LOCK_KEY, max(1, int(interval_s)))
            if count == 1:
                await redispatch_lapsed(ctx)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a database or cache hiccup
            log.exception("the run reaper failed; trying again next interval")
