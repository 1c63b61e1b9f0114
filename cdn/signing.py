"""Signed playback: expiring HMAC tokens for private and unlisted media (issue 4, "Signed
playback"), in the manner of CloudFront signed URLs and Mux signed playback.

A token is one URL path segment, url-safe as it is (no percent-encoding):

    {kid}.{exp}.{mac}              (anyone holding the link)
    {kid}.{exp}.{viewer}.{mac}     (issued to one viewer)

- ``kid``: the key that signed it, ``[A-Za-z0-9_-]{1,16}``. A `Keyring` holds several keys:
  the first signs, every listed key verifies, so a key is rotated by listing the new one
  first and removing the old one once the tokens it signed have expired.
- ``exp``: the expiry, unix seconds in lowercase base 36 (``sxwkn4`` is 1,750,000,000).
- ``viewer``: the user id the token was issued to (optional).
- ``mac``: HMAC-SHA256 (RFC 2104) keyed by the kid's secret over
  ``reelforge-playback-v1 LF video_id LF kid.exp[.viewer]``, truncated to its first 128 bits
  (RFC 2104 §5 allows truncation to half the hash length) and base64url-encoded without
  padding (RFC 4648 §5): 22 characters. The MAC covers the token text exactly as written,
  so no other spelling of the same claims verifies, and it covers the video id, which the
  token does not carry (the URL does): a token is valid for its own video only.

Review tokens (issue 5, "Human review"): the same text, always bound to a viewer (the
moderator it was issued to), with the MAC taken under the context ``reelforge-review-v1``
instead (`REVIEW`). The scope is not written in the token: it is what the MAC was computed
over, so a playback token never verifies as a review token nor the reverse, and a token a
creator or viewer was handed for a video can never open that video while it is in review.

Verification (`Keyring.verify`) compares MACs in constant time (`hmac.compare_digest`) and
checks the expiry after the MAC, so forged and expired tokens take the same path. Every
failure is one `InvalidToken`; its `reason` is for logs, never for the client.

In URLs the token is a path segment of its own marked by a leading ``~``
(`TOKEN_MARK`), right after the render id:

    /media/{video_id}/{render_id}/~{token}/master.m3u8

so that the relative URIs inside HLS playlists (RFC 8216 §4.1: relative to the playlist's
URI) and DASH manifests (ISO/IEC 23009-1 §5.6: relative to the MPD's URL) resolve to
``.../~{token}/v360/init.mp4`` and carry the token to every init and media segment
without rewriting a manifest. No stored file name can start with ``~``: the origin's path
syntax (`api.routes.media`) admits only letters, digits, ``_``, ``-`` and ``.`` in names.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

TOKEN_MARK = "~"
"""First character of the URL path segment that holds a token."""

DERIVED_KID = "k0"
"""Key id of the key derived from the service's secret key when no playback keys are set."""

EXPIRY_STEP_S = 300
"""Expiries are rounded up to a multiple of this: one viewer gets the same URL for 5 minutes,
so browsers and API response caches can reuse it."""

MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 128

Scope = Literal["playback", "review"]
PLAYBACK: Scope = "playback"
"""Tokens for players: published private and unlisted videos (api/media/playback.py)."""
REVIEW: Scope = "review"
"""Tokens for moderators: a video in review, bound to the moderator (api/moderation/)."""

_CONTEXT = b"reelforge-playback-v1"
_CONTEXTS: dict[str, bytes] = {PLAYBACK: _CONTEXT, REVIEW: b"reelforge-review-v1"}
_MAC_BYTES = 16
_KID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_TOKEN = re.compile(
    r"(?P<kid>[A-Za-z0-9_-]{1,16})\.(?P<exp>[0-9a-z]{1,12})"
    r"(?:\.(?P<viewer>[a-z]_[0-9a-z]{1,30}))?\.(?P<mac>[A-Za-z0-9_-]{22})"
)


class InvalidToken(ValueError):
    """A playback token that does not grant access; `reason` says why (for logs only)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid playback token: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class PlaybackKey:
    kid: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: which key signed it, until when, and for whom."""

    kid: str
    expires_at: int
    viewer_id: str | None


def parse_keys(entries: Iterable[str]) -> list[PlaybackKey]:
    """Keys from ``kid:secret`` entries (``REELFORGE_PLAYBACK_KEYS``, comma-separated).

    Raises `ValueError` (naming the entry's position or kid, never its secret) for a malformed
    entry, a secret shorter than `MIN_SECRET_BYTES` bytes, or a kid listed twice.
    """
    keys: list[PlaybackKey] = []
    for number, entry in enumerate(entries, 1):
        kid, sep, secret = entry.strip().partition(":")
        if not sep or not _KID.fullmatch(kid):
            # Never echo the entry: it may hold a secret.
            raise ValueError(
                f"entry {number} is not kid:secret with a kid of [A-Za-z0-9_-]{{1,16}}"
            )
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"playback key {kid!r}: secret shorter than {MIN_SECRET_BYTES} bytes")
        if any(key.kid == kid for key in keys):
            raise ValueError(f"playback key {kid!r} is listed twice")
        keys.append(PlaybackKey(kid, secret.encode()))
    return keys


def derived_key(secret_key: str) -> PlaybackKey:
    """The default key: HMAC-SHA256(secret_key, context), so it is never the secret itself."""
    secret = hmac.new(secret_key.encode(), _CONTEXT + b" key", hashlib.sha256).digest()
    return PlaybackKey(DERIVED_KID, secret)


def expiry(now: float, ttl_s: int, step_s: int = EXPIRY_STEP_S) -> int:
    """Unix seconds at least `ttl_s` after `now`, rounded up to a multiple of `step_s`."""
    return math.ceil((now + ttl_s) / step_s) * step_s


class Keyring:
    """Playback keys: the first signs, all verify."""

    def __init__(self, keys: Sequence[PlaybackKey]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self.keys = {key.kid: key for key in keys}
        if len(self.keys) != len(keys):
            raise ValueError("playback key ids must be unique")
        self.signing = keys[0]

    @classmethod
    def from_config(cls, entries: Sequence[str], secret_key: str) -> Keyring:
        """The configured ``kid:secret`` entries, or the key derived from `secret_key`."""
        keys = parse_keys(entries)
        return cls(keys or [derived_key(secret_key)])

    def sign(
        self,
        video_id: str,
        expires_at: int,
        viewer_id: str | None = None,
        *,
        scope: Scope = PLAYBACK,
    ) -> str:
        """A token for `video_id` valid until `expires_at` (unix seconds), for `viewer_id`,
        in `scope` (a review token must name its viewer)."""
        if scope == REVIEW and viewer_id is None:
            raise ValueError("a review token must be bound to the moderator it is issued to")
        body = f"{self.signing.kid}.{_base36(expires_at)}"
        if viewer_id is not None:
            body += f".{viewer_id}"
        token = f"{body}.{_mac(self.signing.secret, video_id, body, scope)}"
        if _TOKEN.fullmatch(token) is None:
            raise ValueError(f"cannot sign for viewer {viewer_id!r}: not a user id")
        return token

    def verify(
        self, token: str, video_id: str, now: float | None = None, *, scope: Scope = PLAYBACK
    ) -> TokenClaims:
        """The claims of a token that grants `video_id` now in `scope`; raises
        `InvalidToken` otherwise (a token of the other scope is a bad signature)."""
        match = _TOKEN.fullmatch(token) if len(token) <= MAX_TOKEN_CHARS else None
        if match is None:
            raise InvalidToken("malformed")
        key = self.keys.get(match["kid"])
        if key is None:
            raise InvalidToken("unknown key id")
        body = token[: match.start("mac") - 1]
        if not hmac.compare_digest(_mac(key.secret, video_id, body, scope), match["mac"]):
            raise InvalidToken("bad signature")
        if scope == REVIEW and match["viewer"] is None:
            raise InvalidToken("review token without a viewer")
        expires_at = int(match["exp"], 36)
        if (time.time() if now is None else now) >= expires_at:
            raise InvalidToken("expired")
        return TokenClaims(key.kid, expires_at, match["viewer"])


def token_segment(token: str) -> str:
    """The URL path segment that carries `token`."""
    return TOKEN_MARK + token


def split_token(path: str) -> tuple[str | None, str]:
    """(token, rest) of a media path that starts with a token segment, else (None, path)."""
    if not path.startswith(TOKEN_MARK):
        return None, path
    token, _, rest = path[len(TOKEN_MARK) :].partition("/")
    return token, rest


def _mac(secret: bytes, video_id: str, body: str, scope: Scope = PLAYBACK) -> str:
    context = _CONTEXTS.get(scope)
    if context is None:
        raise ValueError(f"token scope must be one of {sorted(_CONTEXTS)}, not {scope!r}")
    message = b"\n".join((context, video_id.encode(), body.encode()))
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _base36(value: int) -> str:
    if value < 0:
        raise ValueError("expiry before 1970")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if value == 0:
            return out
