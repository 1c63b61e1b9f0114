"""Likes (issue 3, "Social"): like and unlike, idempotent, with the video's `like_count`.

A like row and the counter move together: the `INSERT ... ON CONFLICT DO NOTHING` (or the
DELETE) says whether a row really changed, and the counter moves by exactly that in the same
transaction. On PostgreSQL each is one statement (one round trip); elsewhere a transaction of
a few. A video the caller may not see answers 404.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, String, bindparam, exists, or_, select, union_all, update
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert as pg_insert

from api.core.context import AppContext
from api.core.db import insert_ignore, now_ms
from api.core.domain_errors import NotFound
from api.core.tables import likes, videos
from api.core.visibility import readable_by_others
from api.social.access import bump, scalar_int, visible_video


def _like_statements() -> tuple[Any, Any]:
    """PostgreSQL: a like and an unlike, each in one statement (one round trip, atomic on its
    own): the visibility check (`api.core.visibility`), the `INSERT ... ON CONFLICT DO NOTHING`
    (or the DELETE) and the counter moved by what really changed. Without a change the current count
    is read and nothing is updated (no dead row version per repeated like). No row back: the
    video is not visible (404).
    """
    # Parameter names that are no column's: values keyed like a column of `likes` or `videos`
    # would also be taken as values of the INSERT or the UPDATE.
    user_id, video_id = bindparam("liker", type_=String), bindparam("liked", type_=String)
    target = (
        select(videos.c.id, videos.c.like_count)
        .where(
            videos.c.id == video_id,
            videos.c.status != "deleted",
            or_(videos.c.owner_id == user_id, readable_by_others()),
        )
        .cte("target")
    )
    inserted = (
        pg_insert(likes)
        .from_select(
            ["user_id", "video_id", "created_at"],
            select(user_id, target.c.id, bindparam("liked_at", type_=BigInteger)),
        )
        .on_conflict_do_nothing()
        .returning(likes.c.video_id)
        .cte("changed")
    )
    removed = (
        sql_delete(likes)
        .where(likes.c.user_id == user_id, likes.c.video_id.in_(select(target.c.id)))
        .returning(likes.c.video_id)
        .cte("changed")
    )

    def counted(changed: Any, delta: int) -> Any:
        moved = (
            update(videos)
            .where(videos.c.id == changed.c.video_id)
            .values(like_count=videos.c.like_count + delta)
            .returning(videos.c.like_count)
            .cte("moved")
        )
        unchanged = select(target.c.like_count).where(~exists(select(changed.c.video_id)))
        return union_all(select(moved.c.like_count), unchanged)

    return counted(inserted, 1), counted(removed, -1)


_LIKE_PG, _UNLIKE_PG = _like_statements()


async def _like_pg(ctx: AppContext, statement: Any, params: dict[str, Any]) -> int:
    async with ctx.reads.connect() as conn:  # autocommit: the statement is the transaction
        count = (await conn.execute(statement, params)).scalar()
    if count is None:
        raise NotFound("no such video")
    return int(count)


def _like_count(video_id: str) -> Any:
    return select(videos.c.like_count).where(videos.c.id == video_id)


async def like(ctx: AppContext, user_id: str, video_id: str) -> int:
    """Like the video (a repeat changes nothing); its `like_count` after. 404 if not visible."""
    if ctx.db.dialect.name == "postgresql":
        params = {"liker": user_id, "liked": video_id, "liked_at": now_ms()}
        count = await _like_pg(ctx, _LIKE_PG, params)
    else:
        async with ctx.db.begin() as conn:
            await visible_video(conn, video_id, user_id)
            row = {"user_id": user_id, "video_id": video_id, "created_at": now_ms()}
            if (await conn.execute(insert_ignore(conn.dialect.name, likes, row))).rowcount == 1:
                await bump(conn, videos, video_id, "like_count", 1)
            count = await scalar_int(conn, _like_count(video_id))
    ctx.local.forget_videos([video_id])
    return count


async def unlike(ctx: AppContext, user_id: str, video_id: str) -> int:
    """Take the like back (a repeat changes nothing); the `like_count` after. 404 if not
    visible."""
    if ctx.db.dialect.name == "postgresql":
        count = await _like_pg(ctx, _UNLIKE_PG, {"liker": user_id, "liked": video_id})
    else:
        async with ctx.db.begin() as conn:
            await visible_video(conn, video_id, user_id)
            gone = await conn.execute(
                sql_delete(likes).where(likes.c.user_id == user_id, likes.c.video_id == video_id)
            )
            if gone.rowcount == 1:
                await bump(conn, videos, video_id, "like_count", -1)
            count = await scalar_int(conn, _like_count(video_id))
    ctx.local.forget_videos([video_id])
    return count
