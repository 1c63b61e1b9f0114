"""Viewers' reports and owners' appeals (issue 5, "Human review and reports").

Reports: any signed-in viewer who can see a video, except its owner, reports it once (the
`reports` primary key; a second report is 409). Each new report bumps `videos.report_count` in
the same transaction; when it goes over `REVIEW_OVER` a published video is pulled into review
(`published → in_review`, "reported by many viewers", uncounted from its author's videos).
Over `DEPRIORITIZE_OVER` the for-you ranking penalizes it (api/moderation/thresholds.py).

Appeals: the owner of a rejected video may appeal once (the `appeals` primary key; a second
appeal is 409): `rejected → in_review`, back in the moderators' queue. Not appealable here:
- a copyright block (a `copyright_claims` row with action "block", api/safety/copyright.py): the
  claim applies the rights owner's policy, which a moderator cannot overrule; disputes go to
  the rights owner;
- a video with no stored outputs (`render_id` unset): the engine refused the input itself
  (not a video, too long, undecodable...), so there is nothing a moderator could publish.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core import lifecycle
from api.core.caller import User
from api.core.context import AppContext
from api.core.db import insert_ignore, now_ms
from api.core.domain_errors import Conflict, Forbidden, NotFound
from api.core.tables import appeals, copyright_claims, reports, videos
from api.core.visibility import visible_to
from api.moderation.decisions import count_published
from api.moderation.thresholds import PULLED_BY_REPORTS, REVIEW_OVER
from api.videos.service import purge_from_edges

APPEALED = "appealed by the owner: waiting for a moderator"


class Reported(NamedTuple):
    """What a new report did (internal: the route reveals neither)."""

    reports: int  # the video's reports, this one included
    pulled: bool  # this report pulled the video into review


async def report(ctx: AppContext, video_id: str, user: User, reason: str, details: str) -> Reported:
    """Record the caller's report. 404 unless the caller can see the video, 403 for its
    owner, 409 for a second report by the same user."""
    query = select(videos.c.id, videos.c.owner_id, videos.c.status, videos.c.privacy).where(
        videos.c.id == video_id
    )
    async with ctx.db.begin() as conn:
        row = (await conn.execute(query)).first()
        if row is None or not visible_to(row, user.id):
            raise NotFound("no such video")
        if row.owner_id == user.id:
            raise Forbidden("you cannot report your own video")
        new = {
            "video_id": video_id,
            "user_id": user.id,
            "reason": reason,
            "details": details,
            "at": now_ms(),
        }
        if (await conn.execute(insert_ignore(conn.dialect.name, reports, new))).rowcount != 1:
            raise Conflict("you have already reported this video")
        counted = await conn.execute(
            update(videos)
            .where(videos.c.id == video_id)
            .values(report_count=videos.c.report_count + 1)
            .returning(videos.c.report_count)
        )
        count = int(counted.scalar_one())
        pulled = False
        if count > REVIEW_OVER and row.status == lifecycle.PUBLISHED:
            pulled = await _pull_into_review(conn, video_id, row.owner_id)
    if pulled:
        # Taken down: the edges must stop serving it too.
        await purge_from_edges(ctx, video_id)
    return Reported(count, pulled)


async def _pull_into_review(conn: AsyncConnection, video_id: str, owner_id: str) -> bool:
    try:
        await lifecycle.move(conn, video_id, lifecycle.IN_REVIEW, PULLED_BY_REPORTS)
    except lifecycle.TransitionError:
        return False  # a concurrent report (or a delete) moved it first
    await count_published(conn, owner_id, -1)
    return True


async def _copyright_blocked(conn: AsyncConnection, video_id: str) -> bool:
    query = select(copyright_claims.c.video_id).where(
        copyright_claims.c.video_id == video_id, copyright_claims.c.action == "block"
    )
    return (await conn.execute(query.limit(1))).first() is not None


async def appeal(ctx: AppContext, row: Any, user: User, reason: str) -> None:
    """Put the owner's rejected video back in review, once (see the module doc for what is
    not appealable); `row` is the caller's own video (api.videos.owned_video)."""
    if row.status != lifecycle.REJECTED:
        raise Conflict(f"the video is {row.status}; only a rejected video can be appealed")
    if not row.render_id:
        raise Conflict("the upload itself was refused (nothing to review); upload it again")
    async with ctx.db.begin() as conn:
        if await _copyright_blocked(conn, row.id):
            raise Conflict("a copyright block cannot be appealed here; contact the rights owner")
        new = {"video_id": row.id, "user_id": user.id, "reason": reason, "at": now_ms()}
        if (await conn.execute(insert_ignore(conn.dialect.name, appeals, new))).rowcount != 1:
            raise Conflict("this video was already appealed once")
        try:
            await lifecycle.move(conn, row.id, lifecycle.IN_REVIEW, APPEALED)
        except lifecycle.TransitionError as exc:
            raise Conflict(f"the video is {exc.current}; it cannot be appealed now") from exc
