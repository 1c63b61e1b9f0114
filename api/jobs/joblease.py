"""The lease of a single-pass processing job (issue 16: "Workers heartbeat the jobs they hold,
so a dead worker's job is retried within a minute"): the worker's side of the outbox row
(tables.video_jobs, api/core/outbox.py).

A delivery takes the job only with its row, in one transaction: the row is queued (sent, not
claimed yet) or its holder's heartbeat is older than the lease (`Settings.job_lease_s`), and
the video is `processing`; the video's `attempts` is counted then. While it works, `holding`
keeps `heartbeat_at` fresh. A second delivery of the same job (a duplicate send, Redis's own
redelivery) finds the lease held and is skipped; a worker that dies stops its heartbeat, and
the relay (api/jobs/relay.py) sends the job again once the lease lapsed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, or_, select, update

from api.core import lifecycle
from api.core.db import insert_ignore, now_ms
from api.core.outbox import CLAIMED, QUEUED
from api.core.tables import video_jobs, video_parts, videos
from api.jobs.heartbeat import beating
from api.jobs.partrows import CLAIMED as PART_CLAIMED
from api.jobs.partrows import PENDING

log = logging.getLogger("reelforge.processing")


def claim(db: Engine, video_id: str, lease_s: float) -> tuple[Any, int] | None:
    """Take the job's lease and count one more attempt on the `processing` video; the video's
    row and the attempt, or None (logged) when there is nothing to do: no job on record (it ended,
    or its chunked run is under way: `_adopt`), another delivery holds it, or the video left
    `processing`."""
    now = now_ms()
    free = or_(
        video_jobs.c.state == QUEUED,
        and_(video_jobs.c.state == CLAIMED, video_jobs.c.heartbeat_at < now - int(lease_s * 1000)),
    )
    why = ""
    with db.begin() as conn:
        _adopt(conn, video_id, now)
        # The row first: its lock orders two racing deliveries, and the loser re-reads it held.
        took = conn.execute(
            update(video_jobs)
            .where(video_jobs.c.video_id == video_id, free)
            .values(state=CLAIMED, heartbeat_at=now)
        ).rowcount
        counted = None
        if took == 1:
            counted = conn.execute(
                update(videos)
                .where(videos.c.id == video_id, videos.c.status == lifecycle.PROCESSING)
                # updated_at marks the claim (api/jobs/relay.py adopts only old orphans).
                .values(attempts=videos.c.attempts + 1, updated_at=now)
                .returning(videos.c.attempts)
            ).scalar()
        if counted is None:
            status = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
            if took == 1:  # the job of a video that left processing: nothing to run any more
                conn.execute(delete(video_jobs).where(video_jobs.c.video_id == video_id))
                why = f"it is {status or 'missing'}"
            else:
                held = conn.execute(
                    select(video_jobs.c.attempt).where(video_jobs.c.video_id == video_id)
                ).scalar()
                why = "no job is on record" if held is None else f"attempt {held} holds its lease"
                if status != lifecycle.PROCESSING:
                    why = f"it is {status or 'missing'}"
        else:
            conn.execute(
                update(video_jobs).where(video_jobs.c.video_id == video_id).values(attempt=counted)
            )
            row = conn.execute(select(videos).where(videos.c.id == video_id)).one()
    if counted is None:
        log.info("video %s not processed: %s", video_id, why)
        return None
    return row, int(counted)


def _adopt(conn: Any, video_id: str, now: int) -> None:
    """A delivery of a `processing` video with no job on record and no open part (a message
    from before the outbox, or sent straight to the actor) puts the job on record to take it;
    a late duplicate of a job that ended, or whose chunked run is under way, finds none."""
    if conn.execute(select(video_jobs.c.video_id).where(video_jobs.c.video_id == video_id)).first():
        return
    open_part = exists().where(
        video_parts.c.video_id == video_id, video_parts.c.state.in_((PENDING, PART_CLAIMED))
    )
    query = select(videos.c.lane).where(
        videos.c.id == video_id, videos.c.status == lifecycle.PROCESSING, ~open_part
    )
    lane = conn.execute(query).scalar()
    if lane is not None:
        row = {"video_id": video_id, "lane": lane, "state": QUEUED, "sent_at": now,
               "created_at": now}  # fmt: skip
        conn.execute(insert_ignore(conn.dialect.name, video_jobs, row))


def _mine(video_id: str, attempt: int) -> Any:
    return and_(
        video_jobs.c.video_id == video_id,
        video_jobs.c.state == CLAIMED,
        video_jobs.c.attempt == attempt,
    )


@contextmanager
def holding(db: Engine, video_id: str, attempt: int, lease_s: float) -> Iterator[None]:
    """Keep attempt `attempt`'s lease while the block runs (a beat every `lease_s / 3`)."""
    where = _mine(video_id, attempt)
    with beating(
        db,
        lambda: update(video_jobs).where(where).values(heartbeat_at=now_ms()),
        lease_s / 3,
        f"video {video_id} job",
    ):
        yield


def requeue(db: Engine, video_id: str, attempt: int) -> None:
    """Our own failure, which Dramatiq retries after its backoff: the row is queued again, as
    sent now (the retry's message stands for the send), so the retry may claim it."""
    with db.begin() as conn:
        conn.execute(
            update(video_jobs)
            .where(_mine(video_id, attempt))
            .values(state=QUEUED, sent_at=now_ms(), heartbeat_at=0)
        )


def finish(db: Engine, video_id: str, attempt: int) -> None:
    """The job ended (published, rejected, failed, or its chunked run planned): off record."""
    with db.begin() as conn:
        conn.execute(delete(video_jobs).where(_mine(video_id, attempt)))
