"""Who is calling: the bearer token's user, the roles, and the guards every route uses.

A token is 32 random bytes (url-safe base64) given to the client once; the database keeps only
its SHA-256, so a leaked table cannot be replayed. Tokens expire (`token_ttl_seconds`).

Every authenticated request needs its token's user, so each API process keeps the answer for
`settings.token_cache_seconds` (never past the token's own expiry). Logging out evicts the
token in the process that served the logout; another API process may still honor it until
its entry expires (at most `token_cache_seconds`, 30 s by default; 0 disables the cache).

The lookup is done once per request and kept in the ASGI scope state: the rate-limit and
Idempotency-Key middlewares (scoped per user) and the route's own guard share it. An invalid
or expired token yields None for the middlewares; the route's guard answers 401.
"""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request
from litestar.di import Provide
from litestar.types import Scope
from sqlalchemy import bindparam, select

from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Forbidden, Unauthorized
from api.core.identity import MODERATOR, ROLES, USER, User
from api.core.tables import tokens, users

__all__ = [
    "AS_MODERATOR",
    "AS_USER",
    "AS_VIEWER",
    "BEARER",
    "MODERATOR",
    "ROLES",
    "USER",
    "User",
    "app_context",
    "bearer_token",
    "caller",
    "caller_id",
    "client_ip",
    "context_of",
    "current_role",
    "forget_token",
    "lookup_token",
    "optional_user",
    "require_moderator",
    "require_user",
    "token_digest",
]

_STATE_KEY = "reelforge_caller"
_MISSING = object()


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def app_context(scope: Scope) -> AppContext:
    """The application's context (built once at start-up, `api.app.create_app`)."""
    ctx: AppContext = scope["app"].state.ctx
    return ctx


def context_of(request: Request[Any, Any, Any]) -> AppContext:
    """`app_context` for a route handler."""
    return app_context(request.scope)


def bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer ...` header (RFC 6750 §2.1), if any."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


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


async def current_role(ctx: AppContext, user_id: str) -> str | None:
    """The user's role as stored now (None: no such user); for a user named by a signed
    claim rather than by the request's bearer token (a moderator's review token)."""
    async with ctx.db.connect() as conn:
        role = (await conn.execute(select(users.c.role).where(users.c.id == user_id))).scalar()
    return None if role is None else str(role)


def forget_token(ctx: AppContext, token: str) -> None:
    """Evict a revoked token from this process's cache."""
    ctx.local.tokens.pop(token_digest(token))


async def caller(scope: Scope) -> User | None:
    """The user whose valid token the request carries, looked up once per request."""
    state: dict[str, Any] = scope.setdefault("state", {})  # type: ignore[typeddict-item]
    cached = state.get(_STATE_KEY, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[no-any-return]
    token = bearer_token(scope)
    user = await lookup_token(app_context(scope), token) if token else None
    state[_STATE_KEY] = user
    return user


async def caller_id(scope: Scope) -> str | None:
    """The id of the calling user, or None (anonymous or an invalid token)."""
    user = await caller(scope)
    return None if user is None else user.id


def client_ip(scope: Scope) -> str:
    """The client's address: the peer's, or the one a trusted proxy forwarded. Uvicorn
    rewrites the peer from `X-Forwarded-For` only when the peer is one of
    `settings.trusted_proxies` (none by default; `cli.serve.forwarded_options`), so a
    client cannot forge the address its per-IP limits count under (issue 16, item 2)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def optional_user(request: Request[Any, Any, Any]) -> User | None:
    """The caller when a valid token is presented; None for anonymous requests.
    A presented but invalid or expired token is still an error (401)."""
    if bearer_token(request.scope) is None:
        return None
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


async def require_moderator(request: Request[Any, Any, Any]) -> User:
    """The caller, who must be a moderator: 401 without a valid token, 403 otherwise."""
    user = await require_user(request)
    if not user.is_moderator:
        raise Forbidden("this route is for moderators")
    return user


# Route dependencies: `dependencies=AS_USER` gives the handler a `user: User` parameter.
AS_USER = {"user": Provide(require_user)}
AS_VIEWER = {"viewer": Provide(optional_user)}
AS_MODERATOR = {"moderator": Provide(require_moderator)}
BEARER: list[dict[str, list[str]]] = [{"BearerToken": []}]
"""The OpenAPI security requirement of a route that takes a bearer token."""
