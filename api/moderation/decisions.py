"""Moderators' decisions (issue 5, "Human review and reports").

A decision moves `in_review → published | rejected` (a compare-and-set in
api/core/lifecycle.py), is recorded in `moderation_decisions` (who, when, why) and resolves a
pending appeal, all in one transaction. "reject" may also add the video's PDQ hashes to the
blocklist; on a video that automation already rejected, "reject" with `add_to_blocklist`
records the decision and blocklists it without moving it.

`users.video_count` counts published videos (api/videos/service.py uncounts a published video
when it is deleted): approving counts the video again, pulling it into review uncounts it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict, NotFound, Unprocessable
from api.core.tables import appeals, moderation_decisions, users, videos
from api.safety.blocklist import add_video_to_blocklist

Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class DecisionResult:
    video_id: str
    status: str
    decision_id: int
    at: int
    blocklisted_hashes: int | None  # new blocklist entries, when the decision asked for it


async def count_published(conn: AsyncConnection, owner_id: str, delta: int) -> None:
    """Move the author's `video_count` (published videos) by `delta`, never below 0."""
    query = update(users).where(users.c.id == owner_id)
    if delta < 0:
        query = query.where(users.c.video_count > 0)
    await conn.execute(query.values(video_count=users.c.video_count + delta))


async def _apply(
    conn: AsyncConnection, row: Any, decision: Decision, reason: str, blocklist: bool
) -> str:
    """Move the video for the decision; returns its new status."""
    if decision == "approve":
        if row.status != lifecycle.IN_REVIEW:
            raise Conflict(f"the video is {row.status}; only a video in review can be approved")
        if not row.render_id:
            raise Conflict("the video has no stored outputs to publish")
        await lifecycle.move(
            conn,
            row.id,
            lifecycle.PUBLISHED,
            "published after review",
            published_at=row.published_at or now_ms(),
            report_count=0,
        )
        await count_published(conn, row.owner_id, 1)
        return lifecycle.PUBLISHED
    if row.status == lifecycle.IN_REVIEW:
        await lifecycle.move(conn, row.id, lifecycle.REJECTED, f"rejected by a moderator: {reason}")
        return lifecycle.REJECTED
    if row.status == lifecycle.REJECTED and blocklist:
        return lifecycle.REJECTED  # already rejected: the decision adds it to the blocklist
    raise Conflict(f"the video is {row.status}; only a video in review can be decided on")


def _blocklist(conn: Connection, video_id: str, moderator_id: str) -> int:
    """The rejected video's PDQ hashes into the blocklist (api/safety), inside the
    decision's transaction; how many were new (0: none usable, or all there already)."""
    return add_video_to_blocklist(conn, video_id, moderator_id)


async def decide(
    ctx: AppContext,
    video_id: str,
    moderator_id: str,
    decision: Decision,
    reason: str,
    add_to_blocklist: bool = False,
) -> DecisionResult:
    """Record a moderator's decision and apply it, in one transaction (see the module doc)."""
    reason = reason.strip()
    if decision == "reject" and not reason:
        raise Unprocessable("reason: a rejection needs a reason (the owner reads it)")
    if add_to_blocklist and decision != "reject":
        raise Unprocessable("add_to_blocklist: only a rejected video's hashes are blocklisted")
    query = select(
        videos.c.id,
        videos.c.owner_id,
        videos.c.status,
        videos.c.render_id,
        videos.c.published_at,
    ).where(videos.c.id == video_id)
    async with ctx.db.begin() as conn:
        row = (await conn.execute(query)).first()
        if row is None or row.status == lifecycle.DELETED:
            raise NotFound("no such video")
        try:
            status = await _apply(conn, row, decision, reason, add_to_blocklist)
        except lifecycle.TransitionError as exc:  # another moderator got there first
            raise Conflict(f"the video is {exc.current}; it was decided meanwhile") from exc
        blocklisted = None
        if add_to_blocklist:
            blocklisted = await conn.run_sync(_blocklist, video_id, moderator_id)
        await conn.execute(
            update(appeals)
            .where(appeals.c.video_id == video_id, appeals.c.resolved.is_(False))
            .values(resolved=True)
        )
        at = now_ms()
        result = await conn.execute(
            insert(moderation_decisions)
            .values(
                video_id=video_id,
                moderator_id=moderator_id,
                decision=decision,
                reason=reason,
                added_to_blocklist=add_to_blocklist,
                at=at,
            )
            .returning(moderation_decisions.c.id)
        )
        decision_id = int(result.scalar_one())
    if status == lifecycle.PUBLISHED:
        # Approved: warm the edges as publication by the job does (never raises).
        await asyncio.to_thread(ctx.jobs.warm, video_id)
    return DecisionResult(video_id, status, decision_id, at, blocklisted)


async def decision_history(ctx: AppContext, video_id: str) -> list[Any]:
    """Every decision on the video, oldest first, with the moderator's handle; 404 when the
    video does not exist."""
    query = (
        select(moderation_decisions, users.c.handle.label("moderator_handle"))
        .select_from(
            moderation_decisions.join(users, users.c.id == moderation_decisions.c.moderator_id)
        )
        .where(moderation_decisions.c.video_id == video_id)
        .order_by(moderation_decisions.c.id)
    )
    async with ctx.db.connect() as conn:
        exists = (await conn.execute(select(videos.c.id).where(videos.c.id == video_id))).first()
        if exists is None:
            raise NotFound("no such video")
        return list((await conn.execute(query)).all())
