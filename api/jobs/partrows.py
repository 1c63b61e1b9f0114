"""The rows of a chunked run (`video_parts`, api/core/tables.py): what each part is called, and
the compare-and-set moves every part job makes on its row (api/jobs/chunking.py).

Leases (issue 15, "a killed chunk is redone alone"): a delivery takes a part (or the claimed
assembly, or the claimed early publish) only when the row is in its state and no other
delivery holds it: never started, or its `updated_at` older than the lease
(`Settings.part_lease_s`), all in `count_attempt`'s one compare-and-set. `holding` keeps the
lease with a heartbeat thread while the part works; `release` gives it back on our own failure
so Dramatiq's retry is taken at once. A worker that dies stops its heartbeat: the broker's
redelivery (after its heartbeat timeout, longer than the lease) or the run reaper
(api/jobs/partreaper.py) then finds the lease lapsed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, insert, or_, select, update

from api.core import lifecycle
from api.core.db import now_ms
from api.core.tables import video_parts, video_runs, videos
from api.jobs import chunkwork
from api.jobs.heartbeat import beating
from api.jobs.publish import early_render_id

log = logging.getLogger("reelforge.chunking")

CHUNK, AUDIO, ASSEMBLY = "chunk", "audio", "assembly"
PREVIEW, PLAYABLE = "preview", "playable"
WORK = (PREVIEW, CHUNK, AUDIO)
"""The kinds of part that encode; the assembly and the early publish wait on them."""
PENDING, DONE, FAILED, CLAIMED = "pending", "done", "failed", "claimed"
PART_ATTEMPTS = 3
"""Deliveries of one part's job before the video fails (worker.py: 1 + max_retries). A part is
a few seconds of video: one that fails three times will not succeed on the fourth."""


def part_name(kind: str, index: int) -> str:
    """The part's folder (and storage name): `chunk-NNNN`, `preview`, `audio`."""
    return chunkwork.chunk_folder(index) if kind == CHUNK else kind


def part_label(kind: str, index: int, chunks: int | None = None) -> str:
    """How a reason names a part: `chunk 2 of 3`, `audio`, `assembly`."""
    if kind != CHUNK:
        return f"the {kind}"
    return f"chunk {index + 1}" + (f" of {chunks}" if chunks else "")


def claim(db: Engine, video_id: str, run_id: str, kind: str, after: tuple[str, ...]) -> bool:
    """Move the run's `kind` row (the assembly, or the early publish) pending → claimed if no
    part of the kinds `after` is left undone; True for exactly one caller once they are all
    done: in one statement, so the part finishing last sees all the others done and exactly
    one racer wins (the row lock serializes them; the losers re-read `claimed`)."""
    others = video_parts.alias("others")
    left = exists().where(
        others.c.video_id == video_id,
        others.c.run_id == run_id,
        others.c.kind.in_(after),
        others.c.state != DONE,
    )
    with db.begin() as conn:
        claimed = conn.execute(
            update(video_parts)
            .where(part_key(video_id, run_id, kind, 0), video_parts.c.state == PENDING, ~left)
            .values(state=CLAIMED, updated_at=now_ms())
        )
    return claimed.rowcount == 1


def claim_assembly(db: Engine, video_id: str, run_id: str) -> bool:
    """The assembly's claim: every preview (when the run has one), chunk and audio part of
    the run is done."""
    return claim(db, video_id, run_id, ASSEMBLY, WORK)


def claim_playable(db: Engine, video_id: str, run_id: str) -> bool:
    """The early publish's claim: the run's preview and audio parts are done."""
    return claim(db, video_id, run_id, PLAYABLE, (PREVIEW, AUDIO))


def run_alive(video_id: str, run_id: str) -> Any:
    """The video still wants the run's work: it is `processing`, or it shows the run's early
    render (published early; api/jobs/publish.py) and is not deleted."""
    return exists().where(
        videos.c.id == video_id,
        or_(
            videos.c.status == lifecycle.PROCESSING,
            and_(
                videos.c.render_id == early_render_id(run_id),
                videos.c.status != lifecycle.DELETED,
            ),
        ),
    )


def count_attempt(
    db: Engine,
    video_id: str,
    run_id: str,
    kind: str,
    index: int,
    state: str = PENDING,
    *,
    lease_s: float,
) -> int | None:
    """Take the part's lease and count one more attempt on its row, in one compare-and-set:
    the row is in `state`, its run alive (`run_alive`) and no delivery holds it (never
    started, or no heartbeat for `lease_s`: the delivery that held it died or gave it back).
    None (nothing to do, logged) when the part is done, another delivery works on it, its run
    was superseded or the video is gone."""
    key = part_key(video_id, run_id, kind, index)
    now = now_ms()
    free = or_(video_parts.c.attempts == 0, video_parts.c.updated_at < now - int(lease_s * 1000))
    with db.begin() as conn:
        counted = conn.execute(
            update(video_parts)
            .where(key, video_parts.c.state == state, free, run_alive(video_id, run_id))
            .values(attempts=video_parts.c.attempts + 1, updated_at=now)
            .returning(video_parts.c.attempts)
        ).scalar()
        if counted is not None:  # a live job: api/jobs/relay.py adopts no orphan
            conn.execute(
                update(videos)
                .where(videos.c.id == video_id, videos.c.status == lifecycle.PROCESSING)
                .values(updated_at=now)
            )
        else:
            row = conn.execute(select(video_parts).where(key)).first()
    name = part_name(kind, index)
    if counted is None:
        if row is None:
            why = "its run was superseded"
        elif row.state != state:
            why = f"it is {row.state}"
        elif row.attempts > 0 and row.updated_at >= now - int(lease_s * 1000):
            why = f"attempt {row.attempts} holds its lease"
        else:
            why = "its video no longer wants the run"
        log.info("video %s %s of run %s skipped: %s", video_id, name, run_id, why)
        return None
    log.info("video %s %s of run %s: attempt %d", video_id, name, run_id, counted)
    return int(counted)


@contextmanager
def holding(
    db: Engine,
    video_id: str,
    run_id: str,
    kind: str,
    index: int,
    state: str,
    attempt: int,
    lease_s: float,
) -> Iterator[None]:
    """Keep the lease of attempt `attempt` while the block runs: a thread touches the row's
    `updated_at` every `lease_s / 3` while it is still in `state` and still this attempt's."""
    where = and_(
        part_key(video_id, run_id, kind, index),
        video_parts.c.state == state,
        video_parts.c.attempts == attempt,
    )
    with beating(
        db,
        lambda: update(video_parts).where(where).values(updated_at=now_ms()),
        lease_s / 3,
        f"video {video_id} {kind} {index}",
    ):
        yield


def release(
    db: Engine, video_id: str, run_id: str, kind: str, index: int, state: str, attempt: int
) -> None:
    """Give the lease back (our own failure, retried by Dramatiq): the row looks lapsed, so
    the retry is not refused."""
    where = and_(
        part_key(video_id, run_id, kind, index),
        video_parts.c.state == state,
        video_parts.c.attempts == attempt,
    )
    with db.begin() as conn:
        conn.execute(update(video_parts).where(where).values(updated_at=0))


def set_state(
    db: Engine, video_id: str, run_id: str, kind: str, index: int, old: str, new: str
) -> bool:
    """Compare-and-set the part's state from `old` to `new`."""
    key = part_key(video_id, run_id, kind, index)
    with db.begin() as conn:
        moved = conn.execute(
            update(video_parts)
            .where(key, video_parts.c.state == old)
            .values(state=new, updated_at=now_ms())
        )
    return moved.rowcount == 1


def part_key(video_id: str, run_id: str, kind: str, index: int) -> Any:
    return and_(
        video_parts.c.video_id == video_id,
        video_parts.c.run_id == run_id,
        video_parts.c.kind == kind,
        video_parts.c.part == index,
    )


def record_run(conn: Any, video_id: str, run_id: str, encoder: str) -> None:
    """The run's facts (tables.video_runs), in the planner's transaction; replaces an older
    run's."""
    conn.execute(delete(video_runs).where(video_runs.c.video_id == video_id))
    conn.execute(
        insert(video_runs).values(
            video_id=video_id, run_id=run_id, encoder=encoder, created_at=now_ms()
        )
    )


def run_encoder(db: Engine, video_id: str, run_id: str) -> str | None:
    """The encoder the run's planner chose; None for a run that recorded none."""
    query = select(video_runs.c.encoder).where(
        video_runs.c.video_id == video_id, video_runs.c.run_id == run_id
    )
    with db.connect() as conn:
        value = conn.execute(query).scalar()
    return None if value is None else str(value)
