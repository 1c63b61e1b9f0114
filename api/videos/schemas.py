"""Public representations shared by several routes (msgspec structs, built from table rows)."""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import Select, select

from api.core.settings import Settings
from api.core.tables import users, videos
from cdn.signing import REVIEW, Keyring, expiry, token_segment
from packager.model import DOWNLOAD_NAME

SIGNED_PRIVACY = frozenset({"private", "unlisted"})
"""Privacy levels whose media URLs carry a playback token (issue 4, "Signed playback")."""


class Rendition(msgspec.Struct):
    name: str
    width: int
    height: int
    bandwidth: int
    codecs: str


class AuthorOut(msgspec.Struct):
    id: str
    handle: str
    display_name: str


class VideoOut(msgspec.Struct):
    id: str
    status: str
    status_reason: str
    author: AuthorOut
    caption: str
    privacy: str
    created_at: int
    published_at: int | None
    duration_s: float | None
    width: int | None
    height: int | None
    like_count: int
    comment_count: int
    view_count: int
    share_count: int
    hls_url: str | None
    dash_url: str | None
    poster_url: str | None
    # download.mp4: a progressive MP4 (720p + audio, faststart) for sharing and saving.
    mp4_url: str | None
    renditions: list[Rendition]


class UserOut(msgspec.Struct):
    id: str
    handle: str
    display_name: str
    created_at: int
    follower_count: int
    following_count: int
    video_count: int


def media_prefix(settings: Settings, video_id: str, render_id: str) -> str:
    """Base URL of a published video's files; the render id makes every URL immutable."""
    return f"{settings.media_url}/{video_id}/{render_id}"


def playback_keyring(settings: Settings) -> Keyring:
    """The keys that sign and verify playback tokens (built once per configuration)."""
    return _keyring(settings.playback_keys, settings.secret_key)


@lru_cache(maxsize=8)
def _keyring(entries: tuple[str, ...], secret_key: str) -> Keyring:
    return Keyring.from_config(entries, secret_key)


def playback_prefix(
    settings: Settings,
    video_id: str,
    render_id: str,
    privacy: str,
    owner_id: str,
    viewer_id: str | None = None,
    now: float | None = None,
) -> str:
    """Base URL a player resolves a published video's files against.

    Public: `media_prefix`, the same for everyone (edges share one cached copy). Private and
    unlisted: `media_prefix` + ``/~{token}`` (cdn/signing.py), valid for
    `playback_token_ttl_seconds`; a private video's token is bound to its owner (the only one
    who can read it), an unlisted one's to `viewer_id` when there is a viewer.
    """
    base = media_prefix(settings, video_id, render_id)
    if privacy not in SIGNED_PRIVACY:
        return base
    bound_to = owner_id if privacy == "private" else viewer_id
    expires_at = expiry(time.time() if now is None else now, settings.playback_token_ttl_seconds)
    token = playback_keyring(settings).sign(video_id, expires_at, bound_to)
    return f"{base}/{token_segment(token)}"


def review_prefix(
    settings: Settings,
    video_id: str,
    render_id: str,
    moderator_id: str,
    now: float | None = None,
) -> str:
    """Base URL a moderator's player resolves a video in review against: `media_prefix` +
    ``/~{token}`` with a review token (cdn/signing.py `REVIEW`) bound to `moderator_id`,
    valid for `review_token_ttl_seconds`. The origin serves it only while the video is in
    review and only while that user is a moderator (api/routes/media.py)."""
    expires_at = expiry(time.time() if now is None else now, settings.review_token_ttl_seconds)
    token = playback_keyring(settings).sign(video_id, expires_at, moderator_id, scope=REVIEW)
    return f"{media_prefix(settings, video_id, render_id)}/{token_segment(token)}"


def video_query() -> Select[Any]:
    """The columns `video_out` needs: the video joined with its author."""
    return select(
        videos,
        users.c.handle.label("author_handle"),
        users.c.display_name.label("author_display_name"),
    ).select_from(videos.join(users, users.c.id == videos.c.owner_id))


def video_out(row: Any, settings: Settings, viewer_id: str | None = None) -> VideoOut:
    """The public view of a video row; media URLs are signed for `viewer_id` where needed."""
    m = row._mapping
    published = m["status"] == "published" and m["render_id"]
    base = (
        playback_prefix(settings, m["id"], m["render_id"], m["privacy"], m["owner_id"], viewer_id)
        if published
        else None
    )
    renditions = [Rendition(**r) for r in json.loads(m["renditions"] or "[]")] if published else []
    return VideoOut(
        id=m["id"],
        status=m["status"],
        status_reason=m["status_reason"],
        author=AuthorOut(
            id=m["owner_id"], handle=m["author_handle"], display_name=m["author_display_name"]
        ),
        caption=m["caption"],
        privacy=m["privacy"],
        created_at=m["created_at"],
        published_at=m["published_at"],
        duration_s=m["duration_s"],
        width=m["width"],
        height=m["height"],
        like_count=m["like_count"],
        comment_count=m["comment_count"],
        view_count=m["view_count"],
        share_count=m["share_count"],
        hls_url=f"{base}/master.m3u8" if base else None,
        dash_url=f"{base}/manifest.mpd" if base else None,
        poster_url=f"{base}/poster.jpg" if base else None,
        mp4_url=f"{base}/{DOWNLOAD_NAME}" if base else None,
        renditions=renditions,
    )


def user_out(row: Any) -> UserOut:
    m = row._mapping
    return UserOut(
        id=m["id"],
        handle=m["handle"],
        display_name=m["display_name"],
        created_at=m["created_at"],
        follower_count=m["follower_count"],
        following_count=m["following_count"],
        video_count=m["video_count"],
    )
