"""The rows of a chunked run (`video_parts`, api/core/tables.py): what each part is called, and
the compare-and-set moves every part job makes on its row (api/jobs/chunking.py).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, insert, or_, select, update

from api.core import lifecycle
from api.core.db import now_ms
from api.core.tables import video_parts, video_runs, videos
from api.jobs import chunkwork
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
    """The assembly's claim: every preview, chunk and audio part of the run is done."""
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
    db: Engine, video_id: str, run_id: str, kind: str, index: int, state: str = PENDING
) -> int | None:
    """One more attempt on the part's row if it is in `state` and its run alive (`run_alive`);
    None (nothing to do) when the part is done, its run superseded or the video gone."""
    key = part_key(video_id, run_id, kind, index)
    with db.begin() as conn:
        counted = conn.execute(
            update(video_parts)
            .where(key, video_parts.c.state == state, run_alive(video_id, run_id))
            .values(attempts=video_parts.c.attempts + 1, updated_at=now_ms())
            .returning(video_parts.c.attempts)
        ).scalar()
        if counted is not None:  # a live job: api/jobs/reaper.py leaves the video alone
            conn.execute(
                update(videos)
                .where(videos.c.id == video_id, videos.c.status == lifecycle.PROCESSING)
                .values(updated_at=now_ms())
            )
    if counted is None:
        log.info("video %s %s of run %s skipped", video_id, part_name(kind, index), run_id)
        return None
    return int(counted)


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
