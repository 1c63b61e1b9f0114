"""Routes: social (issue 3, "Social"): likes, follows, comments and watch events.

Every write is idempotent where the spec asks for it, and counters move only with the rows
they count: an `INSERT ... ON CONFLICT DO NOTHING` (or a DELETE) says whether a row really
changed, and the counter is bumped by exactly that, in the same transaction. Counter updates
that touch several rows take them in id order, so concurrent transactions cannot deadlock.
A video the caller may not see answers 404 (not 403), so private videos cannot be probed.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, RequestBody
from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    exists,
    insert,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.caller import AS_USER, AS_VIEWER, User, context_of
from api.core.context import AppContext
from api.core.db import dialect_insert, insert_ignore, new_id, now_ms
from api.core.errors import NotFound, Unprocessable
from api.core.paging import DEFAULT_LIMIT, MAX_LIMIT, after_cursor, next_cursor
from api.core.tables import comments, follows, likes, seen, users, videos, watch_events
from api.core.visibility import readable_by_others, visible_to
from api.feed.seen import remember_seen
from api.social.schemas import (
    CommentIn,
    CommentOut,
    CommentPage,
    EventIn,
    EventsIn,
    EventsOut,
    FollowOut,
    LikeOut,
    RejectedEvent,
)
from api.videos.schemas import AuthorOut

MAX_COMMENT = 2000
# One watch_ms event reports at most an hour of watching (short videos, generous for loops).
MAX_EVENT_VALUE = 3_600_000

# Which video counter each new event bumps by one ("watch_ms" adds its value, "loop" none).
COUNTER_OF: dict[str, str] = {
    "impression": "impression_count",
    "play": "view_count",
    "completed": "completion_count",
    "skip": "skip_count",
    "share": "share_count",
    "not_interested": "not_interested_count",
}
# Events after which the for-you feed never shows the video to this viewer again.
MARKS_SEEN = frozenset({"play", "completed", "skip", "not_interested"})

PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]


async def visible_video(conn: AsyncConnection, video_id: str, viewer_id: str | None) -> None:
    """404 unless the viewer may see the video."""
    query = select(videos.c.owner_id, videos.c.status, videos.c.privacy).where(
        videos.c.id == video_id
    )
    row = (await conn.execute(query)).first()
    if row is None or not visible_to(row, viewer_id):
        raise NotFound("no such video")


async def _bump(conn: AsyncConnection, table: Any, row_id: str, column: str, delta: int) -> None:
    col = table.c[column]
    await conn.execute(update(table).where(table.c.id == row_id).values({column: col + delta}))


async def _scalar(conn: AsyncConnection, query: Any) -> int:
    return int((await conn.execute(query)).scalar() or 0)


# --- likes ---------------------------------------------------------------------------------


def _like_statements() -> tuple[Any, Any]:
    """PostgreSQL: a like and an unlike, each in one statement (one round trip, atomic on its
    own): the visibility check (`api.core.visibility`), the `INSERT ... ON CONFLICT DO NOTHING`
    (or the
    DELETE) and the counter moved by what really changed. Without a change the current count
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


@post("/v1/videos/{video_id:str}/like", status_code=200, dependencies=AS_USER, tags=["social"])
async def like(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> LikeOut:
    """Like a video (idempotent): 200 `{liked: true, like_count}`."""
    ctx = context_of(request)
    if ctx.db.dialect.name == "postgresql":
        params = {"liker": user.id, "liked": video_id, "liked_at": now_ms()}
        count = await _like_pg(ctx, _LIKE_PG, params)
    else:
        async with ctx.db.begin() as conn:
            await visible_video(conn, video_id, user.id)
            row = {"user_id": user.id, "video_id": video_id, "created_at": now_ms()}
            if (await conn.execute(insert_ignore(conn.dialect.name, likes, row))).rowcount == 1:
                await _bump(conn, videos, video_id, "like_count", 1)
            count = await _scalar(conn, select(videos.c.like_count).where(videos.c.id == video_id))
    ctx.local.forget_videos([video_id])
    return LikeOut(liked=True, like_count=count)


@delete("/v1/videos/{video_id:str}/like", status_code=200, dependencies=AS_USER, tags=["social"])
async def unlike(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> LikeOut:
    """Take a like back (idempotent): 200 `{liked: false, like_count}`."""
    ctx = context_of(request)
    if ctx.db.dialect.name == "postgresql":
        count = await _like_pg(ctx, _UNLIKE_PG, {"liker": user.id, "liked": video_id})
    else:
        async with ctx.db.begin() as conn:
            await visible_video(conn, video_id, user.id)
            gone = await conn.execute(
                sql_delete(likes).where(likes.c.user_id == user.id, likes.c.video_id == video_id)
            )
            if gone.rowcount == 1:
                await _bump(conn, videos, video_id, "like_count", -1)
            count = await _scalar(conn, select(videos.c.like_count).where(videos.c.id == video_id))
    ctx.local.forget_videos([video_id])
    return LikeOut(liked=False, like_count=count)


# --- follows -------------------------------------------------------------------------------


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
        await _bump(conn, users, user_id, columns[user_id], delta)


@post("/v1/users/{user_id:str}/follow", status_code=200, dependencies=AS_USER, tags=["social"])
async def follow(
    request: Request[Any, Any, Any], user_id: FromPath[str], user: NamedDependency[User]
) -> FollowOut:
    """Follow a creator (idempotent): 200 `{following: true, follower_count}`."""
    async with context_of(request).db.begin() as conn:
        await _follow_target(conn, user.id, user_id)
        row = {"follower_id": user.id, "followee_id": user_id, "created_at": now_ms()}
        if (await conn.execute(insert_ignore(conn.dialect.name, follows, row))).rowcount == 1:
            await _move_follow_counters(conn, user.id, user_id, 1)
        count = await _scalar(conn, select(users.c.follower_count).where(users.c.id == user_id))
    context_of(request).local.forget_followees(user.id)
    return FollowOut(following=True, follower_count=count)


@delete("/v1/users/{user_id:str}/follow", status_code=200, dependencies=AS_USER, tags=["social"])
async def unfollow(
    request: Request[Any, Any, Any], user_id: FromPath[str], user: NamedDependency[User]
) -> FollowOut:
    """Stop following (idempotent): 200 `{following: false, follower_count}`."""
    async with context_of(request).db.begin() as conn:
        await _follow_target(conn, user.id, user_id)
        gone = await conn.execute(
            sql_delete(follows).where(
                follows.c.follower_id == user.id, follows.c.followee_id == user_id
            )
        )
        if gone.rowcount == 1:
            await _move_follow_counters(conn, user.id, user_id, -1)
        count = await _scalar(conn, select(users.c.follower_count).where(users.c.id == user_id))
    context_of(request).local.forget_followees(user.id)
    return FollowOut(following=False, follower_count=count)


# --- comments ------------------------------------------------------------------------------


def clean_comment(raw: str) -> str:
    """NFC text without control characters (newlines and tabs kept), 1–2000 characters."""
    text = unicodedata.normalize("NFC", raw)
    text = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc").strip()
    if not 1 <= len(text) <= MAX_COMMENT:
        raise Unprocessable(f"body: 1 to {MAX_COMMENT} characters (after trimming spaces)")
    return text


def _comment_query() -> Any:
    return select(
        comments.c.id,
        comments.c.video_id,
        comments.c.body,
        comments.c.created_at,
        users.c.id.label("author_id"),
        users.c.handle,
        users.c.display_name,
    ).select_from(comments.join(users, users.c.id == comments.c.user_id))


def comment_out(row: Any) -> CommentOut:
    return CommentOut(
        id=row.id,
        video_id=row.video_id,
        author=AuthorOut(id=row.author_id, handle=row.handle, display_name=row.display_name),
        body=row.body,
        created_at=row.created_at,
    )


@post("/v1/videos/{video_id:str}/comments", status_code=201, dependencies=AS_USER, tags=["social"])
async def add_comment(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    user: NamedDependency[User],
    data: RequestBody[CommentIn],
) -> CommentOut:
    """Comment on a video: 201 CommentOut; the video's comment_count moves with it."""
    body = clean_comment(data.body)
    comment_id = new_id("c")
    async with context_of(request).db.begin() as conn:
        await visible_video(conn, video_id, user.id)
        await conn.execute(
            insert(comments).values(
                id=comment_id,
                video_id=video_id,
                user_id=user.id,
                body=body,
                created_at=now_ms(),
            )
        )
        await _bump(conn, videos, video_id, "comment_count", 1)
        row = (await conn.execute(_comment_query().where(comments.c.id == comment_id))).one()
    return comment_out(row)


@get("/v1/videos/{video_id:str}/comments", dependencies=AS_VIEWER, tags=["social"])
async def list_comments(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    viewer: NamedDependency[User | None],
    cursor: FromQuery[str | None] = None,
    limit: PageLimit = DEFAULT_LIMIT,
) -> CommentPage:
    """A video's comments, newest first, in cursor pages."""
    query = _comment_query().where(comments.c.video_id == video_id)
    after = after_cursor(cursor, comments.c.created_at, comments.c.id)
    if after is not None:
        query = query.where(after)
    query = query.order_by(comments.c.created_at.desc(), comments.c.id.desc()).limit(limit + 1)
    async with context_of(request).db.connect() as conn:
        await visible_video(conn, video_id, viewer.id if viewer else None)
        rows = list((await conn.execute(query)).all())
    return CommentPage(
        comments=[comment_out(r) for r in rows[:limit]], next_cursor=next_cursor(rows, limit)
    )


# --- watch events --------------------------------------------------------------------------


async def _visible_ids(conn: AsyncConnection, video_ids: set[str], viewer_id: str) -> set[str]:
    if not video_ids:
        return set()
    query = select(videos.c.id, videos.c.owner_id, videos.c.status, videos.c.privacy).where(
        videos.c.id.in_(sorted(video_ids))
    )
    return {row.id for row in (await conn.execute(query)).all() if visible_to(row, viewer_id)}


def _screen(
    events: list[EventIn], visible: set[str]
) -> tuple[list[EventIn], int, list[RejectedEvent]]:
    """Split a batch into events to insert, in-batch repeats and rejections."""
    keep: dict[str, EventIn] = {}
    repeats = 0
    rejected: list[RejectedEvent] = []
    for event in events:
        if event.event_id in keep:
            repeats += 1
        elif event.video_id not in visible:
            rejected.append(RejectedEvent(event.event_id, "unknown_video"))
        elif event.value is not None and not 0 <= event.value <= MAX_EVENT_VALUE:
            rejected.append(RejectedEvent(event.event_id, "invalid_value"))
        elif event.type == "watch_ms" and event.value is None:
            rejected.append(RejectedEvent(event.event_id, "missing_value"))
        else:
            keep[event.event_id] = event
    return list(keep.values()), repeats, rejected


async def _insert_new(
    conn: AsyncConnection, user_id: str, events: list[EventIn], at: int
) -> list[EventIn]:
    """Insert the events; return those that were not already recorded."""
    if not events:
        return []
    rows = [
        {
            "user_id": user_id,
            "event_id": e.event_id,
            "video_id": e.video_id,
            "kind": e.type,
            "value": e.value or 0,
            "at": at,
        }
        for e in events
    ]
    stmt = insert_ignore(conn.dialect.name, watch_events, rows).returning(watch_events.c.event_id)
    inserted = set((await conn.execute(stmt)).scalars().all())
    return [e for e in events if e.event_id in inserted]


def _counter_deltas(events: list[EventIn]) -> dict[str, dict[str, int]]:
    deltas: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        if e.type == "watch_ms":
            deltas[e.video_id]["watch_ms"] += e.value or 0
        elif e.type in COUNTER_OF:
            deltas[e.video_id][COUNTER_OF[e.type]] += 1
    return deltas


async def _apply_counters(conn: AsyncConnection, events: list[EventIn]) -> None:
    for video_id, changes in sorted(_counter_deltas(events).items()):
        values = {col: videos.c[col] + delta for col, delta in changes.items() if delta}
        if values:
            await conn.execute(update(videos).where(videos.c.id == video_id).values(values))


async def _mark_seen(
    conn: AsyncConnection, user_id: str, events: list[EventIn], at: int
) -> set[str]:
    """Upsert `seen` rows; "not interested" sticks once set. Returns the videos marked."""
    marks: dict[str, bool] = {}
    for e in events:
        if e.type in MARKS_SEEN:
            marks[e.video_id] = marks.get(e.video_id, False) or e.type == "not_interested"
    if not marks:
        return set()
    rows = [
        {"user_id": user_id, "video_id": vid, "not_interested": flag, "at": at}
        for vid, flag in sorted(marks.items())
    ]
    stmt = dialect_insert(conn.dialect.name)(seen).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[seen.c.user_id, seen.c.video_id],
        set_={
            "at": stmt.excluded.at,
            "not_interested": or_(seen.c.not_interested, stmt.excluded.not_interested),
        },
    )
    await conn.execute(stmt)
    return set(marks)


@post("/v1/events", status_code=200, dependencies=AS_USER, tags=["social"])
async def post_events(
    request: Request[Any, Any, Any], user: NamedDependency[User], data: RequestBody[EventsIn]
) -> EventsOut:
    """Record a batch of watch events; each `(user, event_id)` counts once, ever.

    Events naming a video the caller cannot see, or with an out-of-range value, are listed in
    `rejected` while the rest of the batch is recorded.
    """
    at = now_ms()
    ctx = context_of(request)
    async with ctx.db.begin() as conn:
        visible = await _visible_ids(conn, {e.video_id for e in data.events}, user.id)
        candidates, repeats, rejected = _screen(data.events, visible)
        new = await _insert_new(conn, user.id, candidates, at)
        await _apply_counters(conn, new)
        marked = await _mark_seen(conn, user.id, new, at)
    # After the commit: the feed's cached seen set (api/seenset.py) only ever grows.
    await remember_seen(ctx, user.id, marked)
    duplicates = repeats + len(candidates) - len(new)
    return EventsOut(accepted=len(new), duplicates=duplicates, rejected=rejected)


ROUTES: list[Any] = [
    like,
    unlike,
    follow,
    unfollow,
    add_comment,
    list_comments,
    post_events,
]
