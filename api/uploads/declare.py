"""Declared uploads (issue 3, "Upload"): the checks on what a client says it will send, the
video row that waits for it, and where to send it (a presigned object-store URL, or the
API's own signed URL on local storage)."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from sqlalchemy import insert

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import new_id, now_ms
from api.core.domain_errors import Forbidden, PayloadTooLarge, Unprocessable, UnsupportedMediaType
from api.core.keys import part_key
from api.core.settings import Settings
from api.core.tables import video_history, videos

PRESIGNED, DIRECT, TUS = "presigned", "direct", "tus"
TUS_UPLOAD_TTL_MS = 7 * 24 * 3600 * 1000
"""How long a tus upload may take to finish (kept in `upload_expires_at`)."""


def normalize_content_type(value: str) -> str:
    """`Video/MP4; codecs=...` → `video/mp4` (RFC 9110 §8.3.1: type and subtype only)."""
    return value.split(";", 1)[0].strip().lower()


def check_declared(settings: Settings, size: int, content_type: str) -> str:
    """Validate a declared upload; returns the normalized media type.

    413 above `max_upload_bytes`, 422 below one byte, 415 for a type not accepted.
    """
    if size < 1:
        raise Unprocessable("file_size_bytes must be at least 1")
    if size > settings.max_upload_bytes:
        raise PayloadTooLarge(
            f"the file is {size} bytes; the limit is {settings.max_upload_bytes} bytes"
        )
    return check_content_type(settings, content_type)


def check_content_type(settings: Settings, content_type: str) -> str:
    media_type = normalize_content_type(content_type)
    if media_type not in settings.upload_content_types:
        allowed = ", ".join(settings.upload_content_types)
        raise UnsupportedMediaType(
            f"{media_type or 'no type'} is not accepted; use one of {allowed}"
        )
    return media_type


@dataclass(frozen=True)
class NewUpload:
    video_id: str
    expires_at: int


async def create_upload(
    ctx: AppContext,
    owner_id: str,
    *,
    kind: str,
    size: int,
    content_type: str,
    ttl_ms: int,
    metadata: str = "",
) -> NewUpload:
    """Insert the video row, `awaiting_upload`, with its first history entry."""
    now = now_ms()
    video_id = new_id("v")
    expires_at = now + ttl_ms
    async with ctx.db.begin() as conn:
        await conn.execute(
            insert(videos).values(
                id=video_id,
                owner_id=owner_id,
                status=lifecycle.AWAITING_UPLOAD,
                status_reason="waiting for the upload",
                caption="",
                privacy="public",
                created_at=now,
                updated_at=now,
                upload_kind=kind,
                upload_size=size,
                upload_content_type=content_type,
                upload_offset=0,
                upload_expires_at=expires_at,
                upload_metadata=metadata,
                lane="normal",
                renditions="[]",
            )
        )
        await conn.execute(
            insert(video_history).values(
                video_id=video_id,
                at=now,
                from_status="",
                to_status=lifecycle.AWAITING_UPLOAD,
                reason=f"{kind} upload of {size} bytes started",
            )
        )
    return NewUpload(video_id=video_id, expires_at=expires_at)


# ------------------------------------------------------------------- signed URLs


def upload_signature(secret: str, video_id: str, expires_at: int) -> str:
    """HMAC-SHA256 (RFC 2104) over the video id and the expiry, hex."""
    message = f"upload\n{video_id}\n{expires_at}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_upload_url(settings: Settings, video_id: str, expires_at: int) -> str:
    query = urlencode(
        {
            "expires": expires_at,
            "signature": upload_signature(settings.secret_key, video_id, expires_at),
        }
    )
    return f"{settings.public_url}/v1/uploads/{video_id}?{query}"


def verify_signature(
    settings: Settings, video_id: str, expires: str | None, signature: str | None
) -> None:
    """403 unless the URL was signed by us for this video and has not expired."""
    if not expires or not signature or not expires.isdigit():
        raise Forbidden("the upload URL is not signed")
    expected = upload_signature(settings.secret_key, video_id, int(expires))
    if not hmac.compare_digest(expected, signature.lower()):
        raise Forbidden("the upload URL's signature does not match")
    if int(expires) <= now_ms():
        raise Forbidden("the upload URL has expired; ask for a new one")


def storage_upload_url(ctx: AppContext, video_id: str, expires_at: int, content_type: str) -> str:
    """Where the client PUTs the file: a presigned object-store URL (the API never carries
    the bytes), or, for local storage, the API's own signed endpoint."""
    ttl = timedelta(seconds=ctx.settings.upload_url_ttl_seconds)
    url = ctx.storage.presigned_put(part_key(video_id, 0), ttl, content_type)
    return url if url is not None else signed_upload_url(ctx.settings, video_id, expires_at)
