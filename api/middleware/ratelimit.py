"""Per-caller rate limits on mutating requests: fixed 60-second windows in the shared cache.

- POST/PUT/PATCH/DELETE count per authenticated user, or per client IP for anonymous calls,
  against `settings.rate_limit_per_minute`;
- register and login count per IP against a stricter fixed limit (password guessing, sign-up
  floods), whoever the caller claims to be;
- GET/HEAD/OPTIONS (feeds, media, health probes) are never limited here.

Beyond the limit the answer is 429 with `Retry-After` in whole seconds (RFC 9110 §10.2.3).
Every limited response also carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (draft-ietf-httpapi-ratelimit-headers). The windows live in `ctx.cache`
(Redis in production, so every API process shares them); if the cache is unreachable the
request is let through: a limiter outage must not become an API outage.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.core.caller import app_context, caller_id, client_ip
from api.core.errors import TooManyRequests

log = logging.getLogger("reelforge.api.ratelimit")

WINDOW_SECONDS = 60
AUTH_LIMIT_PER_MINUTE = 30
"""The default of `settings.auth_rate_limit_per_minute`."""
AUTH_PATHS = frozenset({"/v1/auth/register", "/v1/auth/login"})
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Bucket:
    key: str
    limit: int


@dataclass(frozen=True)
class Verdict:
    limit: int
    remaining: int
    reset_seconds: int

    @property
    def allowed(self) -> bool:
        return self.remaining >= 0


async def bucket_for(scope: Scope) -> Bucket | None:
    """Which counter this request spends, or None when it is not limited."""
    if scope.get("method", "GET") not in MUTATING:
        return None
    path = scope["path"].rstrip("/")
    settings = app_context(scope).settings
    if path in AUTH_PATHS:
        return Bucket(f"rl:auth:{client_ip(scope)}", settings.auth_rate_limit_per_minute)
    limit = settings.rate_limit_per_minute
    user_id = await caller_id(scope)
    if user_id is not None:
        return Bucket(f"rl:user:{user_id}", limit)
    return Bucket(f"rl:ip:{client_ip(scope)}", limit)


async def spend(scope: Scope, bucket: Bucket) -> Verdict | None:
    """Count this request in its window (None when the cache cannot be reached)."""
    try:
        count, reset = await app_context(scope).cache.incr_window(bucket.key, WINDOW_SECONDS)
    except Exception as exc:
        log.warning("rate limiter unavailable, request let through: %s", exc)
        return None
    reset_seconds = max(1, math.ceil(reset))
    return Verdict(limit=bucket.limit, remaining=bucket.limit - count, reset_seconds=reset_seconds)


def _headers(verdict: Verdict) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(verdict.limit),
        "RateLimit-Remaining": str(max(0, verdict.remaining)),
        "RateLimit-Reset": str(verdict.reset_seconds),
    }


class RateLimitMiddleware(ASGIMiddleware):
    """Litestar middleware enforcing the limits above (put it outermost)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        bucket = await bucket_for(scope)
        verdict = await spend(scope, bucket) if bucket is not None else None
        if verdict is None:
            await next_app(scope, receive, send)
            return
        headers = _headers(verdict)
        if not verdict.allowed:
            headers["Retry-After"] = str(verdict.reset_seconds)
            raise TooManyRequests(
                f"too many requests; retry in {verdict.reset_seconds} s", headers=headers
            )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableScopeHeaders.from_message(message)
                for name, value in headers.items():
                    response_headers[name] = value
            await send(message)

        await next_app(scope, receive, send_with_headers)
