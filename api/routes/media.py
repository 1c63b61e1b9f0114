"""The origin: published media served from storage (issue 3, "Origin serving").

`GET|HEAD|OPTIONS /media/{video_id}/{render_id}/{path}` answers with the object stored at
`media/{video_id}/{render_id}/{path}` only while the video is published under that render id
and is public or unlisted. Everything else (unknown, unpublished, deleted, private, another
render, a report, a malformed or traversing path) gets the same 404 so that nothing tells
which. HTTP semantics (ETag/304, Range/206/416, Cache-Control, CORS) come from
`cdn.origin.plan_response` (RFC 9110); the bytes are streamed from `Storage.open_range`.

Visibility is cached in-process for `VISIBILITY_TTL_S` (2 s) so that a player's segment
requests do not each query the database: a deletion or a privacy change takes effect on the
origin within 2 s (a CDN in front adds its own caching on top).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod, MediaType
from litestar.response import Stream
from sqlalchemy import select

from api.context import AppContext
from api.errors import NotFound
from api.lifecycle import PUBLISHED
from api.tables import videos
from cdn.origin import cors_headers, cors_preflight_headers, plan_response
from cdn.storage import ObjectInfo, ObjectNotFound, validate_key

VISIBILITY_TTL_S = 2.0
CACHE_MAX_ENTRIES = 10_000
SERVED_PRIVACY = frozenset({"public", "unlisted"})
# What a player needs; report.json (encoder settings, timings) stays internal.
SERVED_SUFFIXES = (".m3u8", ".mpd", ".m4s", ".mp4", ".jpg", ".vtt")

_ID = re.compile(r"[a-z]_[0-9a-z]{1,30}")
# Segments of letters, digits, '_', '-', '.', never starting with '.' (so no '.', '..',
# hidden or temp names); no '%', '\\', control characters or empty segments.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,7}}")


@dataclass(frozen=True)
class Visibility:
    """The render id the origin may serve for a video; None: nothing (404)."""

    render_id: str | None


class VisibilityCache:
    """video id → (expiry, what the origin may serve of it), for `VISIBILITY_TTL_S`."""

    def __init__(self, ttl: float = VISIBILITY_TTL_S, max_entries: int = CACHE_MAX_ENTRIES):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Visibility]] = {}

    def get(self, video_id: str) -> Visibility | None:
        entry = self._entries.get(video_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, video_id: str, visibility: Visibility) -> None:
        now = time.monotonic()
        if len(self._entries) >= self.max_entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] >= now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[video_id] = (now + self.ttl, visibility)


def object_key(video_id: str, render_id: str, path: str) -> str | None:
    """The storage key a media URL names, or None when the URL is not one we serve."""
    path = path.removeprefix("/")  # Litestar's path parameters keep their leading '/'
    if not (_ID.fullmatch(video_id) and _ID.fullmatch(render_id) and _PATH.fullmatch(path)):
        return None
    if not path.endswith(SERVED_SUFFIXES):
        return None
    key = f"media/{video_id}/{render_id}/{path}"
    try:
        return validate_key(key)
    except ValueError:
        return None


async def _visibility(
    request: Request[Any, Any, Any], ctx: AppContext, video_id: str
) -> Visibility:
    cache = _cache(request)
    known = cache.get(video_id)
    if known is not None:
        return known
    query = select(videos.c.status, videos.c.render_id, videos.c.privacy).where(
        videos.c.id == video_id
    )
    async with ctx.db.connect() as conn:
        row = (await conn.execute(query)).first()
    served = row is not None and row.status == PUBLISHED and row.privacy in SERVED_PRIVACY
    known = Visibility(row.render_id if served and row is not None else None)
    cache.put(video_id, known)
    return known


def _cache(request: Request[Any, Any, Any]) -> VisibilityCache:
    state = request.app.state
    cache = getattr(state, "media_visibility", None)
    if cache is None:
        cache = VisibilityCache()
        state.media_visibility = cache
    return cache


def _not_found() -> NotFound:
    return NotFound("not found", headers=cors_headers())


async def _stat(ctx: AppContext, key: str) -> ObjectInfo:
    try:
        return await asyncio.to_thread(ctx.storage.stat, key)
    except ObjectNotFound:
        raise _not_found() from None


@route(
    "/media/{video_id:str}/{render_id:str}/{path:path}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD, HttpMethod.OPTIONS],
    summary="Published media (HLS/DASH manifests, segments, posters, storyboards)",
    tags=["media"],
)
async def serve_media(request: Request[Any, Any, Any]) -> Response[Any]:
    if request.method == HttpMethod.OPTIONS:
        # A CORS preflight (Fetch standard §3.2.3) answers the same for any media path.
        return Response(
            content=b"", status_code=204, headers=cors_preflight_headers(request.headers)
        )
    ctx: AppContext = request.app.state.ctx
    params = request.path_params
    video_id, render_id = params["video_id"], params["render_id"]
    key = object_key(video_id, render_id, params["path"])
    if key is None:
        raise _not_found()
    visible = await _visibility(request, ctx, video_id)
    if visible.render_id is None or visible.render_id != render_id:
        raise _not_found()
    info = await _stat(ctx, key)
    plan = plan_response(request.method, dict(request.headers), info)
    media_type = plan.headers.get("Content-Type", MediaType.TEXT)
    if plan.body is None:
        return Response(
            content=b"", status_code=plan.status, headers=plan.headers, media_type=media_type
        )
    # Opened here, so that an object gone since the stat is still a clean 404; the chunks
    # are then read in Litestar's thread pool as they are sent.
    try:
        chunks = await asyncio.to_thread(
            ctx.storage.open_range, key, plan.body.start, plan.body.end
        )
    except ObjectNotFound:
        raise _not_found() from None
    return Stream(
        content=chunks, status_code=plan.status, headers=plan.headers, media_type=media_type
    )


ROUTES: list[Any] = [serve_media]
