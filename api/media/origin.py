"""What the origin may serve, and to whom (issue 3, "Origin serving"; issue 4, "Signed
playback" and "Origin hardening"; issue 5, review playback): the service behind
`api.media.controllers.serve_media`.

A media URL `/media/{video_id}/{render_id}/{path}` names the object stored at
`media/{video_id}/{render_id}/{path}` (`object_key`), served only while the video is published
under that render id, or under one it showed before until that one's `served_until` (issue 15,
"Playable early": the early render a player may still be reading when the whole ladder
replaces it; tables.superseded_renders), or, while it is `processing`, its growing
presentation (api/jobs/progressive.py) to its owner alone: under a playback token bound to
the owner, as a private video's. Unknown, unpublished and deleted videos, another
render, a report, a malformed or traversing path, a path not sent plainly (`//`, a trailing
`/`, any `%` escape: `as_sent`), and a symlink leading out of a local media root all get the
same 404 (`not_found`), so that nothing tells which.

Signed playback (cdn/signing.py): private and unlisted videos are served only under
`/media/{video_id}/{render_id}/~{token}/{path}`, for manifests, init and media segments
alike. A missing, malformed, tampered, expired, other-video or unknown-kid token gets one and
the same 403 (and a private video's token must be bound to its owner). 403 rather than 404:
it is only ever answered to a request naming the video's current render id, which only a URL
handed out by the API contains, so it reveals nothing to someone guessing ids while it tells
the holder of an old or unsigned link what is wrong. A token on a public video's URL is
checked all the same.

Review playback (issue 5, "Human review"): a video in review (held by the automated checks,
pulled by reports, or rejected and appealed) keeps its stored outputs under its render id,
and the origin serves them only under a review token (cdn/signing.py `REVIEW`, handed out
in the moderation queue) bound to a user who is a moderator when the request comes (the
role is re-read at most every `VISIBILITY_TTL_S`). Anything else, a plain URL, a playback
token (the creator's own, an unlisted link) or a review token whose holder is no longer a
moderator, gets the same 404 as any unpublished video: nothing tells that the video is in
review. Once it is published again the normal rules above apply, and review tokens open
nothing (they never verify as playback tokens).

Visibility is cached in-process for `VISIBILITY_TTL_S` (2 s) so that a player's segment
requests do not each query the database: a deletion or a privacy change takes effect on the
origin within 2 s (a CDN in front adds its own caching on top, for public media only). Both
caches live on the app's state, made on first use.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from api.core.caller import current_role
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Forbidden, NotFound
from api.core.identity import is_moderator
from api.core.keys import media_key
from api.core.lifecycle import PROCESSING
from api.core.tables import superseded_renders, video_growing, videos
from api.core.ttlcache import TTLCache
from api.core.visibility import origin_access
from api.media.playback import playback_keyring
from cdn.origin import cors_headers
from cdn.signing import REVIEW, InvalidToken, Keyring
from cdn.storage import ObjectInfo, ObjectNotFound, validate_key

log = logging.getLogger("reelforge.api.media")

VISIBILITY_TTL_S = 2.0
CACHE_MAX_ENTRIES = 10_000
FORBIDDEN_MESSAGE = "this media needs a valid playback token"
# What a player needs; report.json (encoder settings, timings) stays internal.
SERVED_SUFFIXES = (".m3u8", ".mpd", ".m4s", ".mp4", ".jpg", ".vtt")

_ID = re.compile(r"[a-z]_[0-9a-z]{1,30}")
# Segments of letters, digits, '_', '-', '.', never starting with '.' (so no '.', '..',
# hidden or temp names); no '%', '\\', control characters or empty segments.
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
_PATH = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT}){{0,7}}")


@dataclass(frozen=True)
class Visibility:
    """The render id the origin may serve for a video (None: nothing, 404), and to whom
    (`review`: moderators only, under a review token)."""

    render_id: str | None
    privacy: str = "public"
    owner_id: str = ""
    review: bool = False
    # Renders the video showed before, still served (tables.superseded_renders).
    previous: tuple[str, ...] = ()


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

    def forget(self, video_id: str) -> None:
        self._entries.pop(video_id, None)


def not_found() -> NotFound:
    """The one 404 of the origin, whatever is missing (CORS headers: players read it)."""
    return NotFound("not found", headers=cors_headers())


def _forbidden() -> Forbidden:
    return Forbidden(FORBIDDEN_MESSAGE, headers={**cors_headers(), "Cache-Control": "no-store"})


def as_sent(raw_path: bytes, video_id: str, render_id: str, path: str) -> bool:
    """Whether the request target's path, byte for byte as the client sent it (`raw_path`),
    is `/media/{video_id}/{render_id}/{path}` (issue 16, item 7). The router folds `//`, a
    trailing `/` and percent-encodings (`%2F` included) into the parameters it hands out;
    a plain media path needs none of them, so a target that differs from the one rebuilt
    from the parameters is not a plain media path: the one 404."""
    path = path.removeprefix("/")  # Litestar's path parameters keep their leading '/'
    sent = raw_path.partition(b"?")[0]  # some ASGI clients (httpx's) keep the query in it
    return sent == f"/media/{video_id}/{render_id}/{path}".encode()


def object_key(video_id: str, render_id: str, path: str) -> str | None:
    """The storage key a media URL names (after its token segment, if any), or None when
    the URL is not one we serve."""
    path = path.removeprefix("/")  # Litestar's path parameters keep their leading '/'
    if not (_ID.fullmatch(video_id) and _ID.fullmatch(render_id) and _PATH.fullmatch(path)):
        return None
    if not path.endswith(SERVED_SUFFIXES):
        return None
    key = media_key(video_id, render_id, path)
    try:
        return validate_key(key)
    except ValueError:
        return None


async def visibility(state: Any, ctx: AppContext, video_id: str) -> Visibility:
    """What the origin may serve of a video now (cached for `VISIBILITY_TTL_S`); `state` is
    the app's."""
    cache = _cache(state)
    known = cache.get(video_id)
    if known is not None:
        return known
    query = select(videos.c.status, videos.c.render_id, videos.c.privacy, videos.c.owner_id).where(
        videos.c.id == video_id
    )
    earlier = select(superseded_renders.c.render_id).where(
        superseded_renders.c.video_id == video_id, superseded_renders.c.served_until > now_ms()
    )
    async with ctx.db.connect() as conn:
        row = (await conn.execute(query)).first()
        previous = tuple((await conn.execute(earlier)).scalars()) if row is not None else ()
        grown = (
            (await conn.execute(growing_query(video_id))).scalar()
            if row is not None and row.status == PROCESSING
            else None
        )
    access = None if row is None else origin_access(row.status, row.privacy, row.render_id)
    if row is not None and access is not None:
        known = Visibility(
            row.render_id, row.privacy, row.owner_id, review=access == "review", previous=previous
        )
    elif row is not None and grown is not None:  # its owner's, under an owner-bound token
        known = Visibility(str(grown), "private", row.owner_id)
    else:
        known = Visibility(None)
    cache.put(video_id, known)
    return known


def growing_query(video_id: str) -> Any:
    """The render id of a processing video's growing presentation (api/jobs/progressive.py),
    once it has published anything."""
    return select(video_growing.c.render_id).where(
        video_growing.c.video_id == video_id, video_growing.c.chunks > 0
    )


def _cache(state: Any) -> VisibilityCache:
    cache = getattr(state, "media_visibility", None)
    if cache is None:
        cache = VisibilityCache()
        state.media_visibility = cache
    return cache


def forget_visibility(state: Any, video_id: str) -> None:
    """Drop this process's cached visibility of a video whose status it just changed (a
    moderator's decision), so that its origin applies the new status at once."""
    cache = getattr(state, "media_visibility", None)
    if cache is not None:
        cache.forget(video_id)


async def _is_moderator(state: Any, ctx: AppContext, user_id: str) -> bool:
    """Whether `user_id` is a moderator now (cached for `VISIBILITY_TTL_S`)."""
    cache: TTLCache[str, bool] | None = getattr(state, "media_reviewers", None)
    if cache is None:
        cache = TTLCache(VISIBILITY_TTL_S, max_items=CACHE_MAX_ENTRIES)
        state.media_reviewers = cache
    known = cache.get(user_id)
    if known is not None:
        return known
    found = is_moderator(await current_role(ctx, user_id))
    cache.put(user_id, found)
    return found


def check_access(visible: Visibility, video_id: str, token: str | None, keys: Keyring) -> bool:
    """Whether the request is token-checked (True) or plainly public (False); raises 403.

    No token: public videos only. A token: it must verify for this video (cdn/signing.py),
    and a private video's token must be bound to its owner.
    """
    if token is None:
        if visible.privacy == "public":
            return False
        raise _forbidden()
    try:
        claims = keys.verify(token, video_id)
    except InvalidToken as exc:
        log.debug("media %s: %s", video_id, exc.reason)
        raise _forbidden() from None
    if visible.privacy == "private" and claims.viewer_id != visible.owner_id:
        log.debug("media %s: private video, token bound to %s", video_id, claims.viewer_id)
        raise _forbidden()
    return True


async def check_review(state: Any, ctx: AppContext, video_id: str, token: str | None) -> None:
    """A video in review: only a review token for it, bound to a user who is a moderator
    now; anything else is the 404 of an unpublished video (see the module doc)."""
    if token is None:
        raise not_found()
    try:
        claims = playback_keyring(ctx.settings).verify(token, video_id, scope=REVIEW)
    except InvalidToken as exc:
        log.debug("media %s in review: %s", video_id, exc.reason)
        raise not_found() from None
    if claims.viewer_id is None or not await _is_moderator(state, ctx, claims.viewer_id):
        log.debug("media %s in review: %s is not a moderator", video_id, claims.viewer_id)
        raise not_found()


async def check_request(
    state: Any, ctx: AppContext, video_id: str, render_id: str, token: str | None
) -> bool:
    """Whether this render of the video may be served to the request's token: True when the
    answer is token-checked (private caching), False when plainly public; raises the 404 or
    403 the module doc describes."""
    visible = await visibility(state, ctx, video_id)
    if visible.render_id is None or render_id not in (visible.render_id, *visible.previous):
        raise not_found()
    if visible.review:
        await check_review(state, ctx, video_id, token)
        return True
    return check_access(visible, video_id, token, playback_keyring(ctx.settings))


async def stat(ctx: AppContext, key: str) -> ObjectInfo:
    """The stored object's size, ETag and dates; the origin's 404 when it is not there."""
    try:
        return await asyncio.to_thread(ctx.storage.stat, key)
    except (ObjectNotFound, ValueError):  # ValueError: a local symlink leading out of the root
        raise not_found() from None


async def open_range(ctx: AppContext, key: str, start: int, end: int | None) -> Iterator[bytes]:
    """The object's bytes `[start, end]`, opened here so that an object gone since `stat` is
    still the origin's 404; the chunks are read later, as they are sent."""
    try:
        return await asyncio.to_thread(ctx.storage.open_range, key, start, end)
    except (ObjectNotFound, ValueError):
        raise not_found() from None
