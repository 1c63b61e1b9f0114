"""Playback URLs: where a player fetches a published video's files, and the tokens signed into
them for unlisted, private and in-review videos (issue 4, "Signed playback"; the token format
is cdn/signing.py's, verified by the origin, `api.media.origin`)."""

from __future__ import annotations

import time
from functools import lru_cache

from api.core.settings import Settings
from api.core.visibility import SIGNED_PRIVACY
from cdn.signing import REVIEW, Keyring, expiry, token_segment


def media_base_url(settings: Settings, video_id: str, render_id: str) -> str:
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

    Public: `media_base_url`, the same for everyone (edges share one cached copy). Private and
    unlisted: `media_base_url` + ``/~{token}`` (cdn/signing.py), valid for
    `playback_token_ttl_seconds`; a private video's token is bound to its owner (the only one
    who can read it), an unlisted one's to `viewer_id` when there is a viewer.
    """
    base = media_base_url(settings, video_id, render_id)
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
    """Base URL a moderator's player resolves a video in review against: `media_base_url` +
    ``/~{token}`` with a review token (cdn/signing.py `REVIEW`) bound to `moderator_id`,
    valid for `review_token_ttl_seconds`. The origin serves it only while the video is in
    review and only while that user is a moderator (api/media/origin.py)."""
    expires_at = expiry(time.time() if now is None else now, settings.review_token_ttl_seconds)
    token = playback_keyring(settings).sign(video_id, expires_at, moderator_id, scope=REVIEW)
    return f"{media_base_url(settings, video_id, render_id)}/{token_segment(token)}"
