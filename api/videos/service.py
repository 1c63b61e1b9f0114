"""Who may see or change a video, and the owner's moves: publish and delete (issue 3,
"Upload", "Videos" and "Video lifecycle and jobs").

Visibility: a published public or unlisted video is anyone's to read; its owner sees it in
every state but `deleted`; everyone else gets 404, so private and unfinished videos cannot be
discovered. Changes are the owner's alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy import func, select, update

from api.accounts.tokens import User
from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.errors import Conflict, Forbidden, NotFound, ServiceUnavailable
from api.core.tables import users, video_history, videos
from api.feed.following import forget_creator
from api.uploads.service import PRESIGNED, confirm_presigned
from api.videos.schemas import video_query
from api.videos.viewcache import forget as forget_views

log = logging.getLogger("reelforge.api.videos")

PUBLIC_PRIVACY = ("public", "unlisted")
HOUR_MS = 3600 * 1000


def visible_to(row: Any, user_id: str | None) -> bool:
    """Whether `user_id` (None: anonymous) may read the video at all."""
    if row.status == lifecycle.DELETED:
        return False
    if user_id is not None and row.owner_id == user_id:
        return True
    return bool(row.status == lifecycle.PUBLISHED and row.privacy in PUBLIC_PRIVACY)


async def load_video(ctx: AppContext, video_id: str) -> Any | None:
    """The video joined with its author (`api.views.video_query`), or None."""
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


async def lane_for(ctx: AppContext, owner_id: str) -> str:
    """Fair scheduling: a creator who published more than `busy_creator_uploads_per_hour`
    videos in the last hour (this one included) goes to the low-priority lane."""
    since = now_ms() - HOUR_MS
    query = (
        select(func.count())
        .select_from(video_history.join(videos, videos.c.id == video_history.c.video_id))
        .where(
            videos.c.owner_id == owner_id,
            video_history.c.from_status == lifecycle.UPLOADED,
            video_history.c.to_status == lifecycle.PROCESSING,
            video_history.c.at >= since,
        )
    )
    async with ctx.db.connect() as conn:
        recent = int((await conn.execute(query)).scalar() or 0)
    return "bulk" if recent + 1 > ctx.settings.busy_creator_uploads_per_hour else "normal"


async def publish(ctx: AppContext, row: Any, caption: str, privacy: str) -> str:
    """Queue the owner's uploaded video for processing; returns its lane.

    A presigned upload is confirmed against storage first. 409 when the upload is not
    complete, or when the video is already processing or published (a repeated publish).
    A `failed` video may be published again (a retry of our failure).
    """
    status = row.status
    if status == lifecycle.AWAITING_UPLOAD:
        if row.upload_kind != PRESIGNED or not await confirm_presigned(ctx, row):
            raise Conflict("upload not complete: send the whole file first")
        status = lifecycle.UPLOADED
    if status not in (lifecycle.UPLOADED, lifecycle.FAILED):
        raise Conflict(f"the video is already {status}; it cannot be published again")
    lane = await lane_for(ctx, row.owner_id)
    reason = "queued for processing" if status == lifecycle.UPLOADED else "queued again"
    async with ctx.db.begin() as conn:
        try:
            await lifecycle.move(
                conn,
                row.id,
                lifecycle.PROCESSING,
                reason,
                caption=caption,
                privacy=privacy,
                lane=lane,
                attempts=0,
            )
        except lifecycle.TransitionError as exc:
            raise Conflict(f"the video is {exc.current}; it cannot be published now") from exc
    try:
        await asyncio.to_thread(ctx.jobs.enqueue_transcode, row.id, lane)
    except Exception as exc:
        log.exception("could not enqueue video %s", row.id)
        await _unqueue(ctx, row.id)
        raise ServiceUnavailable("the job queue is unavailable; publish again later") from exc
    return lane


async def _unqueue(ctx: AppContext, video_id: str) -> None:
    """The job could not be queued: `failed` (publishing again retries), not a video stuck
    in `processing` with no job behind it."""
    async with ctx.db.begin() as conn:
        # A worker or a delete may have got there first: then there is nothing to undo.
        with contextlib.suppress(lifecycle.TransitionError):
            await lifecycle.move(
                conn,
                video_id,
                lifecycle.FAILED,
                "could not be queued for processing; publish again",
            )


# -------------------------------------------------------------------- delete


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
    forget_views(ctx, [video_id])
    forget_creator(ctx, owner_id)
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
