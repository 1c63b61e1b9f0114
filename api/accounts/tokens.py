"""Accounts' secrets: argon2id password hashes and opaque bearer tokens stored hashed.

A token is 32 random bytes (url-safe base64) given to the client once; the database keeps only
its SHA-256, so a leaked table cannot be replayed. Tokens expire (`token_ttl_seconds`).

Every authenticated request needs its token's user, so each API process keeps the answer for
`settings.token_cache_seconds` (never past the token's own expiry). Logging out evicts the
token in the process that served the logout; another API process may still honor it until
its entry expires (at most `token_cache_seconds`, 30 s by default; 0 disables the cache).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request
from sqlalchemy import bindparam, insert, select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.errors import Unauthorized
from api.core.tables import tokens, users

# argon2id with RFC 9106's second recommended option scaled down for a 2-core API host.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class User:
    id: str
    handle: str
    role: str

    @property
    def is_moderator(self) -> bool:
        return self.role == "moderator"


async def issue_token(ctx: AppContext, user_id: str) -> tuple[str, int]:
    token = secrets.token_urlsafe(32)
    created = now_ms()
    expires = created + ctx.settings.token_ttl_seconds * 1000
    async with ctx.db.begin() as conn:
        await conn.execute(
            insert(tokens).values(
                token_hash=token_digest(token),
                user_id=user_id,
                created_at=created,
                expires_at=expires,
            )
        )
    return token, expires


def _bearer(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


_TOKEN_QUERY = (
    select(users.c.id, users.c.handle, users.c.role, tokens.c.expires_at)
    .select_from(tokens.join(users, users.c.id == tokens.c.user_id))
    .where(tokens.c.token_hash == bindparam("digest"))
)


async def lookup_token(ctx: AppContext, token: str) -> User | None:
    """The token's user when it exists and has not expired (cached, see the docstring)."""
    digest = token_digest(token)
    now = now_ms()
    cached = ctx.local.tokens.get(digest)
    if cached is not None:
        user, expires_at = cached
        return user if expires_at > now else None
    async with ctx.reads.connect() as conn:
        row = (await conn.execute(_TOKEN_QUERY, {"digest": digest})).first()
    if row is None or row.expires_at <= now:
        return None
    user = User(id=row.id, handle=row.handle, role=row.role)
    ctx.local.tokens.put(digest, (user, row.expires_at), (row.expires_at - now) / 1000)
    return user


def forget_token(ctx: AppContext, token: str) -> None:
    """Evict a revoked token from this process's cache."""
    ctx.local.tokens.pop(token_digest(token))


async def optional_user(request: Request[Any, Any, Any]) -> User | None:
    """The caller when a valid token is presented; None for anonymous requests.
    A presented but invalid or expired token is still an error (401)."""
    token = _bearer(request)
    if token is None:
        return None
    from api.core.caller import caller

    user = await caller(request.scope)
    if user is None:
        raise Unauthorized("the bearer token is invalid or expired")
    return user


async def require_user(request: Request[Any, Any, Any]) -> User:
    """The caller; 401 without a valid bearer token."""
    user = await optional_user(request)
    if user is None:
        raise Unauthorized("this route needs a bearer token (Authorization: Bearer ...)")
    return user
