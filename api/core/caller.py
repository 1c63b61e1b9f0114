"""Who is calling, for middlewares that run before the route's own auth dependency.

Rate limits and Idempotency-Key records are scoped per user, so both middlewares need the
bearer token's owner. The lookup is done once per request and kept in the ASGI scope state.
An invalid or expired token yields None here; the route itself still answers 401.
"""

from __future__ import annotations

from typing import Any

from litestar.types import Scope

from api.accounts.tokens import User, lookup_token
from api.core.context import AppContext

_STATE_KEY = "reelforge_caller"
_MISSING = object()


def app_context(scope: Scope) -> AppContext:
    ctx: AppContext = scope["app"].state.ctx
    return ctx


def bearer_token(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer ...` header (RFC 6750 §2.1), if any."""
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


async def caller(scope: Scope) -> User | None:
    """The user whose valid token the request carries, looked up once per request (the
    result is kept in the scope state, where `api.auth.optional_user` finds it too)."""
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
    """The peer address. Forwarded headers are not trusted: any client could forge them."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
