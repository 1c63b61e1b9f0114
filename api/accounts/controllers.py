"""Routes: accounts (issue 3, "Accounts").

`POST /v1/auth/register`, `POST /v1/auth/login`, `POST /v1/auth/logout`, `GET /v1/users/{id}`
and `GET /v1/users/{id}/videos` (the creator's grid, newest first, cursor pages).

Passwords are hashed with argon2id (RFC 9106) in a worker thread: a hash costs tens of
milliseconds of CPU and must not stall the event loop. Login answers the same 401 for an
unknown handle and a wrong password, and spends the same work on both (no user enumeration).
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, RequestBody
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.accounts.tokens import HASHER, hash_password, issue_token, verify_password
from api.core.caller import (
    AS_USER,
    AS_VIEWER,
    User,
    context_of,
    forget_token,
    token_digest,
)
from api.core.context import AppContext
from api.core.db import new_id, now_ms
from api.core.errors import Conflict, NotFound, Unauthorized, Unprocessable
from api.core.paging import DEFAULT_LIMIT, MAX_LIMIT, after_cursor, next_cursor
from api.core.tables import tokens, users, videos
from api.core.visibility import listed
from api.videos.schemas import UserOut, VideoOut, user_out, video_out, video_query
from api.videos.viewcache import published_views

HANDLE_RE = re.compile(r"[a-z0-9_.]{3,32}")
MIN_PASSWORD = 8
# argon2 hashes whatever it is given; a cap keeps a megabyte "password" from costing more.
MAX_PASSWORD = 1024
MAX_DISPLAY_NAME = 64
LOGIN_FAILED = "wrong handle or password"
# Verified against when the handle does not exist, so both failures cost the same time.
_DUMMY_HASH = HASHER.hash("reelforge-no-such-user")


class RegisterIn(msgspec.Struct):
    handle: str
    password: str
    display_name: str | None = None


class LoginIn(msgspec.Struct):
    handle: str
    password: str


class SessionOut(msgspec.Struct):
    user: UserOut
    token: str
    expires_at: int


class VideoPage(msgspec.Struct):
    videos: list[VideoOut]
    next_cursor: str | None


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


async def _load_user(ctx: AppContext, user_id: str) -> Any:
    async with ctx.reads.connect() as conn:
        row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    if row is None:
        raise NotFound("no such user")
    return row


async def _session(ctx: AppContext, user_id: str) -> SessionOut:
    token, expires_at = await issue_token(ctx, user_id)
    return SessionOut(
        user=user_out(await _load_user(ctx, user_id)), token=token, expires_at=expires_at
    )


@post("/v1/auth/register", status_code=201, tags=["accounts"])
async def register(request: Request[Any, Any, Any], data: RequestBody[RegisterIn]) -> SessionOut:
    """Create an account and sign it in: 201 `{user, token, expires_at}`; 409 if the handle
    is taken, 422 for a malformed handle or a short password."""
    ctx = context_of(request)
    handle = clean_handle(data.handle)
    password = check_password(data.password)
    display_name = clean_display_name(data.display_name, handle)
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


@post("/v1/auth/login", status_code=200, tags=["accounts"])
async def login(request: Request[Any, Any, Any], data: RequestBody[LoginIn]) -> SessionOut:
    """Exchange a handle and password for a new token: 200 `{user, token, expires_at}`."""
    ctx = context_of(request)
    handle = data.handle.strip().lower()
    async with ctx.db.connect() as conn:
        row = (
            await conn.execute(
                select(users.c.id, users.c.password_hash).where(users.c.handle == handle)
            )
        ).first()
    stored = row.password_hash if row is not None else _DUMMY_HASH
    sane = len(data.password) <= MAX_PASSWORD
    valid = await asyncio.to_thread(verify_password, stored, data.password if sane else "")
    if row is None or not sane or not valid:
        raise Unauthorized(LOGIN_FAILED)
    if HASHER.check_needs_rehash(stored):
        await _rehash(ctx, row.id, data.password)
    return await _session(ctx, row.id)


async def _rehash(ctx: AppContext, user_id: str, password: str) -> None:
    """Upgrade a hash made with older argon2 parameters (RFC 9106 §4), at login."""
    new_hash = await asyncio.to_thread(hash_password, password)
    async with ctx.db.begin() as conn:
        await conn.execute(
            update(users).where(users.c.id == user_id).values(password_hash=new_hash)
        )


@post(
    "/v1/auth/logout",
    status_code=204,
    dependencies=AS_USER,
    tags=["accounts"],
)
async def logout(request: Request[Any, Any, Any], user: NamedDependency[User]) -> None:
    """Revoke the token this request presents (other sessions stay signed in)."""
    token = request.headers.get("authorization", "").partition(" ")[2].strip()
    ctx = context_of(request)
    async with ctx.db.begin() as conn:
        await conn.execute(
            delete(tokens).where(
                tokens.c.token_hash == token_digest(token), tokens.c.user_id == user.id
            )
        )
    # Other API processes may honor it until their cached entry expires (api/auth.py).
    forget_token(ctx, token)


@get("/v1/users/{user_id:str}", tags=["accounts"])
async def get_user(request: Request[Any, Any, Any], user_id: FromPath[str]) -> UserOut:
    """A public profile with its follower/following/video counters (404 if unknown)."""
    return user_out(await _load_user(context_of(request), user_id))


@get(
    "/v1/users/{user_id:str}/videos",
    dependencies=AS_VIEWER,
    tags=["accounts"],
)
async def user_videos(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    viewer: NamedDependency[User | None],
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> VideoPage:
    """The creator's grid, newest first (`created_at`, then id), in cursor pages.

    Others see published public videos only; the owner also sees their unlisted, private and
    not yet published videos (never deleted ones).
    """
    ctx = context_of(request)
    await _load_user(ctx, user_id)
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
    `api.viewcache` (the grid's query reads ids only)."""
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


ROUTES: list[Any] = [register, login, logout, get_user, user_videos]
