"""The review queue (issue 5, "Human review and reports"): the `in_review` videos, oldest in
review first, with everything a moderator reads.

`videos.updated_at` is the time of the last lifecycle move, and nothing else touches an
in_review row, so it orders the queue. Each entry says why the video is there, from the
lifecycle move that put it there (from processing = the automated checks, from published =
reports, from rejected = the owner's appeal), with what the automated checks found
(api/moderation/frames.py), its reports and its appeal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core import lifecycle
from api.core.context import AppContext
from api.core.paging import decode_cursor, encode_cursor
from api.core.tables import appeals, reports, users, video_history, videos
from api.moderation.frames import WorstFrame, held_by, parse_worst_frames, safety_rows

# Why a video is in review, from the state it came from.
SOURCE_OF = {
    lifecycle.PROCESSING: "automated",
    lifecycle.PUBLISHED: "reports",
    lifecycle.REJECTED: "appeal",
}


@dataclass(frozen=True)
class QueueEntry:
    """One in_review video with everything a moderator reads (plain data; the route shapes
    it)."""

    video: Any  # the videos row joined with its author's handle and display name
    source: str  # automated | reports | appeal
    reason: str  # the reason of the move into review
    checks: list[str]  # automated: the checks that held it (api/safety findings)
    reports: dict[str, int]
    appeal: Any | None  # the appeals row
    safety: Any | None  # the video_safety row
    frames: list[WorstFrame]


def _queue_query(cursor: str | None, limit: int) -> Any:
    query = (
        select(
            videos.c.id,
            videos.c.owner_id,
            videos.c.caption,
            videos.c.privacy,
            videos.c.created_at,
            videos.c.updated_at,
            videos.c.report_count,
            videos.c.render_id,
            users.c.handle.label("author_handle"),
            users.c.display_name.label("author_display_name"),
        )
        .select_from(videos.join(users, users.c.id == videos.c.owner_id))
        .where(videos.c.status == lifecycle.IN_REVIEW)
    )
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(videos.c.updated_at > at, and_(videos.c.updated_at == at, videos.c.id > last_id))
        )
    return query.order_by(videos.c.updated_at, videos.c.id).limit(limit + 1)


async def _entry_reasons(conn: AsyncConnection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """(source, reason) of the last move into review of each video."""
    query = (
        select(video_history.c.video_id, video_history.c.from_status, video_history.c.reason)
        .where(
            video_history.c.video_id.in_(ids),
            video_history.c.to_status == lifecycle.IN_REVIEW,
        )
        .order_by(video_history.c.id)
    )
    found: dict[str, tuple[str, str]] = {}
    for row in await conn.execute(query):
        found[row.video_id] = (SOURCE_OF.get(row.from_status, row.from_status), row.reason)
    return found


async def _report_reasons(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, int]]:
    query = (
        select(reports.c.video_id, reports.c.reason, func.count())
        .where(reports.c.video_id.in_(ids))
        .group_by(reports.c.video_id, reports.c.reason)
    )
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for video_id, reason, count in await conn.execute(query):
        found[video_id][reason] = int(count)
    return found


async def queue_page(
    ctx: AppContext, cursor: str | None, limit: int
) -> tuple[list[QueueEntry], str | None]:
    """A page of the review queue, oldest in review first, and the cursor of the next page."""
    async with ctx.db.connect() as conn:
        rows = list((await conn.execute(_queue_query(cursor, limit))).all())
        page = rows[:limit]
        ids = [row.id for row in page]
        if not ids:
            return [], None
        reasons = await _entry_reasons(conn, ids)
        counts = await _report_reasons(conn, ids)
        safety = await safety_rows(conn, ids)
        appeal_rows = {
            row.video_id: row
            for row in await conn.execute(
                select(appeals).where(appeals.c.video_id.in_(ids), appeals.c.resolved.is_(False))
            )
        }
    entries = []
    for row in page:
        source, reason = reasons.get(row.id, ("automated", ""))
        safety_row = safety.get(row.id)
        entries.append(
            QueueEntry(
                video=row,
                source=source,
                reason=reason,
                checks=held_by(safety_row) if source == "automated" else [],
                reports=dict(counts.get(row.id, {})),
                appeal=appeal_rows.get(row.id),
                safety=safety_row,
                frames=parse_worst_frames(safety_row.worst_frames) if safety_row else [],
            )
        )
    more = len(rows) > limit
    return entries, encode_cursor(page[-1].updated_at, page[-1].id) if more else None
