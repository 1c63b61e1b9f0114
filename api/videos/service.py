"""Who may see or change a video, and the owner's moves: publish and delete (issue 3,
"Upload", "Videos" and "Video lifecycle and jobs").

Visibility: a published public or unlisted video is anyone's to read; its owner sees it in
every state but `deleted`; everyone else gets 404, so private and unfinished videos cannot be
discovered. Changes are the owner's alone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import select, update

from api.core import lifecycle
from api.core.caller import User
from api.core.context import AppContext
from api.core.domain_errors import Forbidden, NotFound
from api.core.tables import users, video_history, videos
from api.core.visibility import visible_to
from api.videos.queries import video_query

log = logging.getLogger("reelforge.api.videos")


async def load_video(ctx: AppContext, video_id: str) -> Any | None:
    """The video joined with its author (`api.videos.queries.video_query`), or None."""
    async with ctx.reads.connect() as conn:
        return (await conn.execute(video_query().where(videos.c.id == video_id))).first()


async def readable_video(ctx: AppContext, video_id: str, user: User | None) -> Any:
    row = await load_video(ctx, video_id)
    if row is None or not visible_to(row, user.id if user else None):
        raise NotFound("no such video")
    return row


async def owned_video(ctx: AppContext, video_id: str, user: User, *, reveal: bool = True) -> Any:
    """The caller's own video. Others get 404 when they cannot see it, and 403 when they can
    (with `reveal=False`, 404 always)."""
    row = await load_video(ctx, video_id)
    if row is None or not visible_to(row, user.id):
        raise NotFound("no such video")
    if row.owner_id != user.id:
        if reveal:
            raise Forbidden("only the video's owner may do this")
        raise NotFound("no such video")
    return row


# ------------------------------------------------------------------- publish


async def delete_video(ctx: AppContext, video_id: str, reason: str) -> None:
    """Move to `deleted`, uncount it from its author if it was published, and queue the
    removal of its objects. 404 when already deleted. It leaves every feed this process serves
    at once, and those of other API processes within `settings.video_cache_seconds`."""
    async with ctx.db.begin() as conn:
        try:
            previous = await lifecycle.move(conn, video_id, lifecycle.DELETED, reason)
        except lifecycle.TransitionError as exc:
            raise NotFound("no such video") from exc
        owner_id = (
            await conn.execute(select(videos.c.owner_id).where(videos.c.id == video_id))
        ).scalar_one()
        if previous == lifecycle.PUBLISHED:
            await conn.execute(
                update(users)
                .where(users.c.id == owner_id, users.c.video_count > 0)
                .values(video_count=users.c.video_count - 1)
            )
    ctx.local.forget_videos([video_id])
    ctx.local.forget_creator(owner_id)
    try:
        await asyncio.to_thread(ctx.jobs.enqueue_cleanup, video_id)
    except Exception:
        # The video is already gone for every reader; its objects wait for a later cleanup.
        log.exception("could not enqueue the cleanup of deleted video %s", video_id)
    if previous == lifecycle.PUBLISHED:
        await purge_from_edges(ctx, video_id)


async def purge_from_edges(ctx: AppContext, video_id: str) -> None:
    """Queue the removal of a video's files from the CDN edges' caches (deleted or taken
    down); never fails the caller: the edges then keep it until their own expiry."""
    try:
        await asyncio.to_thread(ctx.jobs.enqueue_purge, video_id)
    except Exception:
        log.exception("could not enqueue the edge purge of video %s", video_id)


async def history(ctx: AppContext, video_id: str) -> list[Any]:
    query = (
        select(video_history)
        .where(video_history.c.video_id == video_id)
        .order_by(video_history.c.id)
    )
    async with ctx.db.connect() as conn:
        return list((await conn.execute(query)).all())
