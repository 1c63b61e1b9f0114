"""Content types by key extension: the one table both backends serve objects with."""

from __future__ import annotations

_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
    ".json": "application/json",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def content_type_for(key: str) -> str:
    """The media type served for a key, from its extension (the one table both backends use)."""
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return DEFAULT_CONTENT_TYPE
    return _CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE)
