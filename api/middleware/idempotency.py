"""`Idempotency-Key` on POST (draft-ietf-httpapi-idempotency-key-header-07).

A client that may retry a POST (a like on a flaky mobile network) sends a unique key; the
server runs the request once and answers every retry with the first response:

- the key is scoped per authenticated user (§2.2: the key alone is not a global identity), and
  anonymous requests pass through untouched (they cannot be told apart);
- the first completed response below 500 is stored with a fingerprint of the request (§2.4:
  method, path with its query, body) in `idempotency_keys`; a retry with the same fingerprint
  gets the same status, headers and body plus `Idempotent-Replayed: true`, and the handler does
  not run again;
- the same key with another fingerprint → 422 `idempotency_key_reused` (§2.7);
- a retry while the first request is still running → 409 (§2.7), with `Retry-After`;
- a 5xx (or a crash) releases the key, so a retry runs the request again;
- keys expire after 24 hours (§2.3): an expired key is treated as new.

Only bodies up to 1 MiB are buffered to fingerprint them; larger or streaming uploads pass
through untouched, as do requests without the header and other methods.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from sqlalchemy import and_, delete, select, update

from api.core.caller import app_context, caller_id
from api.core.context import AppContext
from api.core.db import insert_ignore, now_ms
from api.core.errors import BadRequest, IdempotencyKeyInUse, IdempotencyKeyReused
from api.core.tables import idempotency_keys

log = logging.getLogger("reelforge.api.idempotency")

HEADER = b"idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_BODY_BYTES = 1024 * 1024
MAX_KEY_LENGTH = 128
KEY_TTL_MS = 24 * 3600 * 1000
# A request still marked running after this long died with its process: its key is freed.
IN_FLIGHT_LEASE_MS = 120_000
PENDING = 0
# Headers that describe one transfer, not the response; never replayed.
_TRANSIENT_HEADERS = frozenset(
    {"content-length", "date", "server", "set-cookie", "transfer-encoding", "connection"}
)


class StoredResponse(msgspec.Struct):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Capture:
    """What the handler sent, kept while it is forwarded to the client."""

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    size: int = 0
    overflow: bool = False
    finished: bool = False


def parse_key(raw: bytes) -> str:
    """The key as a Structured Field String (RFC 8941 §3.3.3), also accepted unquoted."""
    text = raw.decode("latin-1").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not 1 <= len(text) <= MAX_KEY_LENGTH or not all(0x20 <= ord(c) < 0x7F for c in text):
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters")
    return text


def fingerprint(scope: Scope, body: bytes) -> str:
    """SHA-256 over the method, the path with its query and the body (length-prefixed)."""
    digest = hashlib.sha256()
    parts = (
        str(scope.get("method", "")).encode(),
        scope["path"].encode(),
        scope.get("query_string", b""),
        body,
    )
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


async def read_body(receive: Receive, limit: int) -> tuple[list[ReceiveMessage], bytes | None]:
    """Read the request body; None (with what was read) when it exceeds `limit` or breaks off."""
    messages: list[ReceiveMessage] = []
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if size > limit:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(chunks)


def replaying(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """A `receive` that hands out `messages` again before reading on."""
    pending = list(messages)

    async def wrapped() -> Any:
        if pending:
            return pending.pop(0)
        return await receive()

    return wrapped


def _key_filter(user_id: str, key: str) -> Any:
    return and_(idempotency_keys.c.user_id == user_id, idempotency_keys.c.key == key)


async def claim(ctx: AppContext, user_id: str, key: str, print_: str) -> StoredResponse | None:
    """Reserve the key for this request (None), or return the response to replay.

    Raises 422 when the key was used for another request, 409 while its first use runs.
    """
    for _ in range(3):
        now = now_ms()
        async with ctx.db.begin() as conn:
            # Expired keys of this user go first (§2.3); the primary key makes this cheap.
            await conn.execute(
                delete(idempotency_keys).where(
                    idempotency_keys.c.user_id == user_id,
                    idempotency_keys.c.created_at < now - KEY_TTL_MS,
                )
            )
            row_values = {
                "user_id": user_id,
                "key": key,
                "fingerprint": print_,
                "status_code": PENDING,
                "body": b"",
                "created_at": now,
            }
            stmt = insert_ignore(conn.dialect.name, idempotency_keys, row_values)
            if (await conn.execute(stmt)).rowcount == 1:
                return None
            row = (
                await conn.execute(select(idempotency_keys).where(_key_filter(user_id, key)))
            ).first()
            if row is None:
                continue  # released by a failed first attempt in between: try again
            if row.fingerprint != print_:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was already used for a different request"
                )
            if row.status_code != PENDING:
                return msgspec.msgpack.decode(row.body, type=StoredResponse)
            if row.created_at < now - IN_FLIGHT_LEASE_MS and await _take_over(conn, row, now):
                return None
        raise IdempotencyKeyInUse(
            "a request with this Idempotency-Key is still being processed",
            headers={"Retry-After": "1"},
        )
    raise IdempotencyKeyInUse("this Idempotency-Key is busy", headers={"Retry-After": "1"})


async def _take_over(conn: Any, row: Any, now: int) -> bool:
    """Reclaim a key whose first request died mid-flight (compare-and-set on created_at)."""
    result = await conn.execute(
        update(idempotency_keys)
        .where(
            _key_filter(row.user_id, row.key),
            idempotency_keys.c.status_code == PENDING,
            idempotency_keys.c.created_at == row.created_at,
        )
        .values(created_at=now)
    )
    return bool(result.rowcount == 1)


async def record(ctx: AppContext, user_id: str, key: str, capture: Capture) -> None:
    headers = [(k, v) for k, v in capture.headers if k.lower() not in _TRANSIENT_HEADERS]
    stored = StoredResponse(capture.status, headers, b"".join(capture.chunks))
    async with ctx.db.begin() as conn:
        await conn.execute(
            update(idempotency_keys)
            .where(_key_filter(user_id, key), idempotency_keys.c.status_code == PENDING)
            .values(status_code=capture.status, body=msgspec.msgpack.encode(stored))
        )


async def release(ctx: AppContext, user_id: str, key: str) -> None:
    async with ctx.db.begin() as conn:
        await conn.execute(
            delete(idempotency_keys).where(
                _key_filter(user_id, key), idempotency_keys.c.status_code == PENDING
            )
        )


async def replay(send: Send, stored: StoredResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.headers]
    headers.append((b"content-length", str(len(stored.body)).encode()))
    headers.append((REPLAYED_HEADER.encode(), b"true"))
    await send({"type": "http.response.start", "status": stored.status, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body, "more_body": False})


def capturing_send(
    send: Send, capture: Capture, on_complete: Callable[[], Awaitable[None]]
) -> Send:
    """Forward the response while keeping a copy; the copy is stored before the last chunk
    goes out, so a client never sees a response whose record is not committed yet."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            capture.status = int(message["status"])
            capture.headers = [
                (bytes(k).decode("latin-1"), bytes(v).decode("latin-1"))
                for k, v in message.get("headers", [])
            ]
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            capture.size += len(chunk)
            capture.overflow = capture.overflow or capture.size > MAX_BODY_BYTES
            if not capture.overflow:
                capture.chunks.append(chunk)
            if not message.get("more_body", False):
                capture.finished = True
                await on_complete()
        await send(message)

    return wrapped


class IdempotencyMiddleware(ASGIMiddleware):
    """Litestar middleware implementing the module docstring (inside the rate limiter)."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        raw_key = _header(scope, HEADER) if scope.get("method") == "POST" else None
        if raw_key is None:
            await next_app(scope, receive, send)
            return
        key = parse_key(raw_key)
        declared = _declared_length(scope)
        user_id = await caller_id(scope)
        if user_id is None or (declared is not None and declared > MAX_BODY_BYTES):
            await next_app(scope, receive, send)
            return
        messages, body = await read_body(receive, MAX_BODY_BYTES)
        if body is None:
            await next_app(scope, replaying(messages, receive), send)
            return
        ctx = app_context(scope)
        stored = await claim(ctx, user_id, key, fingerprint(scope, body))
        if stored is not None:
            await replay(send, stored)
            return
        whole: ReceiveMessage = {"type": "http.request", "body": body, "more_body": False}
        await self._run_once(ctx, user_id, key, next_app, scope, replaying([whole], receive), send)

    async def _run_once(
        self,
        ctx: AppContext,
        user_id: str,
        key: str,
        next_app: ASGIApp,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        capture = Capture()
        kept = False

        async def on_complete() -> None:
            nonlocal kept
            if capture.status < 500 and not capture.overflow:
                try:
                    await record(ctx, user_id, key, capture)
                    kept = True
                except Exception:
                    log.exception("could not store the response for Idempotency-Key %r", key)

        try:
            await next_app(scope, receive, capturing_send(send, capture, on_complete))
        finally:
            if not kept:
                await release(ctx, user_id, key)
