"""Comments (issue 3, "Social"): add one to a video the caller may see, and list a video's
comments newest first in cursor pages (`api.core.paging`).

A comment and the video's `comment_count` move together, in one transaction. Bodies are NFC
text without control characters (newlines and tabs kept), 1 to `MAX_COMMENT` characters.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import insert, select

from api.core.context import AppContext
from api.core.db import new_id, now_ms
from api.core.domain_errors import Unprocessable
from api.core.paging import after_cursor, next_cursor
from api.core.tables import comments, users, videos
from api.social.access import bump, visible_video
from api.social.schemas import MAX_COMMENT, CommentOut, CommentPage
from api.videos.schemas import AuthorOut


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


async def add_comment(ctx: AppContext, user_id: str, video_id: str, raw_body: str) -> CommentOut:
    """The new comment; 422 for an empty or too long body, 404 if the video is not visible."""
    body = clean_comment(raw_body)
    comment_id = new_id("c")
    async with ctx.db.begin() as conn:
        await visible_video(conn, video_id, user_id)
        await conn.execute(
            insert(comments).values(
                id=comment_id,
                video_id=video_id,
                user_id=user_id,
                body=body,
                created_at=now_ms(),
            )
        )
        await bump(conn, videos, video_id, "comment_count", 1)
        row = (await conn.execute(_comment_query().where(comments.c.id == comment_id))).one()
    return comment_out(row)


async def list_comments(
    ctx: AppContext, video_id: str, viewer_id: str | None, cursor: str | None, limit: int
) -> CommentPage:
    """One page of the video's comments, newest first; 400 for a cursor this API did not hand
    out, 404 if the video is not visible."""
    query = _comment_query().where(comments.c.video_id == video_id)
    after = after_cursor(cursor, comments.c.created_at, comments.c.id)
    if after is not None:
        query = query.where(after)
    query = query.order_by(comments.c.created_at.desc(), comments.c.id.desc()).limit(limit + 1)
    async with ctx.db.connect() as conn:
        await visible_video(conn, video_id, viewer_id)
        rows = list((await conn.execute(query)).all())
    return CommentPage(
        comments=[comment_out(r) for r in rows[:limit]], next_cursor=next_cursor(rows, limit)
    )
