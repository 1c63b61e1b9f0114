"""Video lifecycle: the states, the allowed moves, and the one way to make a move.

    awaiting_upload → uploaded → processing → published | in_review | rejected | failed
    in_review → published | rejected          (a moderator decides)
    rejected → in_review                      (the owner appeals, once)
    published → in_review                     (pulled by reports)
    any state → deleted

Every move is a compare-and-set on the current status (so two workers, or a worker and a
delete, cannot both win) and leaves a row in `video_history` with a reason the owner can read.
The same statements serve the async API and the sync workers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.db import now_ms
from api.core.tables import video_history, videos

AWAITING_UPLOAD = "awaiting_upload"
UPLOADED = "uploaded"
PROCESSING = "processing"
PUBLISHED = "published"
IN_REVIEW = "in_review"
REJECTED = "rejected"
FAILED = "failed"
DELETED = "deleted"

ALLOWED: dict[str, frozenset[str]] = {
    AWAITING_UPLOAD: frozenset({UPLOADED, DELETED}),
    UPLOADED: frozenset({PROCESSING, REJECTED, FAILED, DELETED}),
    PROCESSING: frozenset({PROCESSING, PUBLISHED, IN_REVIEW, REJECTED, FAILED, DELETED}),
    PUBLISHED: frozenset({IN_REVIEW, DELETED}),
    IN_REVIEW: frozenset({PUBLISHED, REJECTED, DELETED}),
    REJECTED: frozenset({IN_REVIEW, DELETED}),
    FAILED: frozenset({PROCESSING, DELETED}),
    DELETED: frozenset(),
}

# Work that a restart or a lost broker message must pick up again (uploaded videos wait for
# their owner to publish them).
UNFINISHED = (PROCESSING,)


class TransitionError(Exception):
    """The video was not in a state from which the move is allowed."""

    def __init__(self, video_id: str, current: str | None, target: str) -> None:
        self.video_id, self.current, self.target = video_id, current, target
        where = "does not exist" if current is None else f"is {current}"
        super().__init__(f"video {video_id} {where}; it cannot become {target}")


def _statements(
    video_id: str, current: str, target: str, reason: str, values: dict[str, Any]
) -> tuple[Any, Any]:
    if target not in ALLOWED.get(current, frozenset()):
        raise TransitionError(video_id, current, target)
    now = now_ms()
    move = (
        update(videos)
        .where(videos.c.id == video_id, videos.c.status == current)
        .values(status=target, status_reason=reason, updated_at=now, **values)
    )
    record = insert(video_history).values(
        video_id=video_id, at=now, from_status=current, to_status=target, reason=reason
    )
    return move, record


def move_sync(conn: Connection, video_id: str, target: str, reason: str = "", **values: Any) -> str:
    """Move a video to `target` inside the caller's transaction; returns the previous state."""
    current = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
    if current is None:
        raise TransitionError(video_id, None, target)
    move, record = _statements(video_id, current, target, reason, values)
    if conn.execute(move).rowcount != 1:
        raise TransitionError(video_id, current, target)
    conn.execute(record)
    return str(current)


async def move(
    conn: AsyncConnection, video_id: str, target: str, reason: str = "", **values: Any
) -> str:
    """Async twin of `move_sync` for the API."""
    current = (await conn.execute(select(videos.c.status).where(videos.c.id == video_id))).scalar()
    if current is None:
        raise TransitionError(video_id, None, target)
    move_stmt, record = _statements(video_id, current, target, reason, values)
    if (await conn.execute(move_stmt)).rowcount != 1:
        raise TransitionError(video_id, current, target)
    await conn.execute(record)
    return str(current)
