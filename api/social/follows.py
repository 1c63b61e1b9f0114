"""Follows (issue 3, "Social"): follow and unfollow a creator, idempotent, with both users'
counters (`following_count` of the follower, `follower_count` of the creator).

The follow row and the counters move together in one transaction, by what the INSERT or the
DELETE really changed. Both users' rows are updated in id order, so two transactions moving
the same pair cannot deadlock.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.context import AppContext
from api.core.db import insert_ignore, now_ms
from api.core.domain_errors import NotFound, Unprocessable
from api.core.tables import follows, users
from api.social.access import bump, scalar_int


async def _follow_target(conn: AsyncConnection, follower_id: str, followee_id: str) -> None:
    if follower_id == followee_id:
        raise Unprocessable("you cannot follow yourself")
    exists = (await conn.execute(select(users.c.id).where(users.c.id == followee_id))).first()
    if exists is None:
        raise NotFound("no such user")


async def _move_follow_counters(
    conn: AsyncConnection, follower_id: str, followee_id: str, delta: int
) -> None:
    columns = {follower_id: "following_count", followee_id: "follower_count"}
    for user_id in sorted(columns):
        await bump(conn, users, user_id, columns[user_id], delta)


async def follow(ctx: AppContext, follower_id: str, followee_id: str) -> int:
    """Follow the creator (a repeat changes nothing); their `follower_count` after.
    404 for an unknown user, 422 for oneself."""
    async with ctx.db.begin() as conn:
        await _follow_target(conn, follower_id, followee_id)
        row = {"follower_id": follower_id, "followee_id": followee_id, "created_at": now_ms()}
        if (await conn.execute(insert_ignore(conn.dialect.name, follows, row))).rowcount == 1:
            await _move_follow_counters(conn, follower_id, followee_id, 1)
        count = await scalar_int(
            conn, select(users.c.follower_count).where(users.c.id == followee_id)
        )
    ctx.local.forget_followees(follower_id)
    return count


async def unfollow(ctx: AppContext, follower_id: str, followee_id: str) -> int:
    """Stop following (a repeat changes nothing); the creator's `follower_count` after.
    404 for an unknown user, 422 for oneself."""
    async with ctx.db.begin() as conn:
        await _follow_target(conn, follower_id, followee_id)
        gone = await conn.execute(
            delete(follows).where(
                follows.c.follower_id == follower_id, follows.c.followee_id == followee_id
            )
        )
        if gone.rowcount == 1:
            await _move_follow_counters(conn, follower_id, followee_id, -1)
        count = await scalar_int(
            conn, select(users.c.follower_count).where(users.c.id == followee_id)
        )
    ctx.local.forget_followees(follower_id)
    return count
