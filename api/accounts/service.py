"""Accounts: registration, sign-in and sign-out, profiles, and a creator's grid.

Passwords are hashed with argon2id (RFC 9106) in a worker thread: a hash costs tens of
milliseconds of CPU and must not stall the event loop. Login answers the same 401 for an
unknown handle and a wrong password, and spends the same work on both (no user enumeration).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.accounts.schemas import MAX_PASSWORD, MIN_PASSWORD, SessionOut, VideoPage, user_out
from api.accounts.tokens import HASHER, hash_password, issue_token, verify_password
from api.core.caller import forget_token, token_digest
from api.core.context import AppContext
from api.core.db import new_id, now_ms
from api.core.domain_errors import Conflict, NotFound, Unauthorized, Unprocessable
from api.core.identity import User
from api.core.paging import after_cursor, next_cursor
from api.core.tables import tokens, users, videos
from api.core.visibility import listed
from api.videos.queries import video_query
from api.videos.schemas import video_out
from api.videos.viewcache import published_views

HANDLE_RE = re.compile(r"[a-z0-9_.]{3,32}")
MAX_DISPLAY_NAME = 64
LOGIN_FAILED = "wrong handle or password"
# Verified against when the handle does not exist, so both failures cost the same time.
_DUMMY_HASH = HASHER.hash("reelforge-no-such-user")


def clean_handle(raw: str) -> str:
    handle = raw.strip().lower()
    if not HANDLE_RE.fullmatch(handle):
        raise Unprocessable("handle: 3 to 32 characters among a-z, 0-9, '_' and '.'")
    return handle


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(f"password: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise Unprocessable(f"password: at most {MAX_PASSWORD} characters")
    return password


def clean_display_name(raw: str | None, handle: str) -> str:
    """Printable text only (no control or format characters), NFC, at most 64 characters."""
    text = unicodedata.normalize("NFC", raw or "")
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()
    if len(text) > MAX_DISPLAY_NAME:
        raise Unprocessable(f"display_name: at most {MAX_DISPLAY_NAME} characters")
    return text or handle


async def load_user(ctx: AppContext, user_id: str) -> Any:
    """The user's row; 404 if there is none."""
    async with ctx.reads.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        raise NotFound("no such user")
    return row


async def _session(ctx: AppContext, user_id: str) -> SessionOut:
    token, expires_at = await issue_token(ctx, user_id)
    return SessionOut(
        user=user_out(await load_user(ctx, user_id)), token=token, expires_at=expires_at
    )


async def register(
    ctx: AppContext, raw_handle: str, raw_password: str, raw_display_name: str | None
) -> SessionOut:
    """A new account, signed in; 409 if the handle is taken, 422 for a malformed handle or
    password, or a display name too long."""
    handle = clean_handle(raw_handle)
    password = check_password(raw_password)
    display_name = clean_display_name(raw_display_name, handle)
    async with ctx.db.connect() as conn:
        taken = (await conn.execute(select(users.c.id).where(users.c.handle == handle))).first()
    if taken is not None:
        raise Conflict("this handle is taken")
    password_hash = await asyncio.to_thread(hash_password, password)
    user_id = new_id("u")
    try:
        async with ctx.db.begin() as conn:
            await conn.execute(
                insert(users).values(
                    id=user_id,
                    handle=handle,
                    display_name=display_name,
                    password_hash=password_hash,
                    role="user",
                    created_at=now_ms(),
                    follower_count=0,
                    following_count=0,
                    video_count=0,
                )
            )
    except IntegrityError:
        raise Conflict("this handle is taken") from None  # lost a race for the same handle
    return await _session(ctx, user_id)


async def login(ctx: AppContext, raw_handle: str, password: str) -> SessionOut:
    """A new session for a handle and its password; the same 401 for either being wrong."""
    handle = raw_handle.strip().lower()
    async with ctx.db.connect() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.handle == handle)
            )
        ).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    sane = len(password) <= MAX_PASSWORD
    valid = await asyncio.to_thread(verify_password, stored, password if sane else "")
    if row is None or not sane or not valid:
        raise Unauthorized(LOGIN_FAILED)
    if HASHER.check_needs_rehash(stored):
        await _rehash(ctx, row.id, password)
    return await _session(ctx, row.id)


async def _rehash(ctx: AppContext, user_id: str, password: str) -> None:
    """Upgrade a hash made with older argon2 parameters (RFC 9106 §4), at login."""
    new_hash = await asyncio.to_thread(hash_password, password)
    async with ctx.db.begin() as conn:
        await conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=new_hash)
        )


async def logout(ctx: AppContext, user: User, token: str) -> None:
    """Revoke `token` (the user's other sessions stay signed in)."""
    async with ctx.db.begin() as conn:
        await conn.execute(
            delete(tokens).where(
                tokens.c.token_hash == token_digest(token), tokens.c.user_id == user.id
            )
        )
    # Other API processes may honor it until their cached entry expires (api.core.caller).
    forget_token(ctx, token)


async def user_videos(
    ctx: AppContext, user_id: str, viewer: User | None, cursor: str | None, limit: int
) -> VideoPage:
    """The creator's grid, newest first (`created_at`, then id), in cursor pages.

    Others see published public videos only; the owner also sees their unlisted, private and
    not yet published videos (never deleted ones).
    """
    await load_user(ctx, user_id)
    if viewer is None or viewer.id != user_id:
        return await _public_grid(ctx, user_id, cursor, limit)
    query = video_query().where(videos.c.owner_id == user_id, videos.c.status != "deleted")
    after = after_cursor(cursor, videos.c.created_at, videos.c.id)
    if after is not None:
        query = query.where(after)
    query = query.order_by(videos.c.created_at.desc(), videos.c.id.desc()).limit(limit + 1)
    async with ctx.db.connect() as conn:
        rows = list((await conn.execute(query)).all())
    return VideoPage(
        videos=[video_out(row, ctx.settings) for row in rows[:limit]],
        next_cursor=next_cursor(rows, limit),
    )


async def _public_grid(ctx: AppContext, user_id: str, cursor: str | None, limit: int) -> VideoPage:
    """What everyone else sees: the published public videos, their views from
    `api.videos.viewcache` (the grid's query reads ids only)."""
    query = select(videos.c.id, videos.c.created_at).where(videos.c.owner_id == user_id, listed())
    after = after_cursor(cursor, videos.c.created_at, videos.c.id)
    if after is not None:
        query = query.where(after)
    query = query.order_by(videos.c.created_at.desc(), videos.c.id.desc()).limit(limit + 1)
    async with ctx.reads.connect() as conn:
        rows = list((await conn.execute(query)).all())
    found = await published_views(ctx, [row.id for row in rows[:limit]])
    return VideoPage(
        videos=[found[row.id] for row in rows[:limit] if row.id in found],
        next_cursor=next_cursor(rows, limit),
    )
