"""Which files of a published video to pre-warm at the edges (issue 4, "CDN pre-warm hooks").

A viewer's player starts with the master playlist, picks a rendition (hls.js and dash.js
start low or in the middle of the ladder), then fetches that rendition's media playlist, its
initialization section and its first segment, with the audio rendition's alongside. So a
warm video has at the edge:

- `master.m3u8` (RFC 8216 §4.3.4) and `manifest.mpd` (ISO/IEC 23009-1), and `poster.jpg`
  (the feed shows it before playback);
- for the lowest and the middle video renditions by BANDWIDTH (§4.3.4.2 EXT-X-STREAM-INF,
  `pick_renditions`), and for the audio rendition (§4.3.4.1 EXT-X-MEDIA): the media
  playlist, its EXT-X-MAP initialization section (§4.3.2.5) and its first media segment
  (§4.3.2.1).

Everything is worked out from the video's own files: `plan_warm` reads the master playlist
and the chosen media playlists through `read` (from storage, not through any edge) and keeps
a name only if it is in `listing`, the names stored under the render's prefix. A URI that is
absolute, has a scheme or a query, climbs out with `..`, or is not in the listing is refused
and reported, never warmed.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

MASTER = "master.m3u8"
EXTRAS = ("manifest.mpd", "poster.jpg")

_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


@dataclass(frozen=True)
class Variant:
    """One EXT-X-STREAM-INF entry of a master playlist."""

    uri: str
    bandwidth: int


@dataclass
class WarmPlan:
    """The names to warm, in the order a player asks for them, and what was refused."""

    names: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def add(self, name: str | None, listing: Collection[str]) -> None:
        if name is None:
            return
        if name not in listing:
            self.refused.append(name)
        elif name not in self.names:
            self.names.append(name)


def attributes(line: str) -> dict[str, str]:
    """The attribute list of a tag line (RFC 8216 §4.2), quotes removed."""
    _, _, text = line.partition(":")
    return {name: value.strip('"') for name, value in _ATTRIBUTE.findall(text)}


def parse_master(text: str) -> tuple[list[Variant], list[str]]:
    """(variants, audio rendition URIs) of a master playlist (RFC 8216 §4.3.4)."""
    variants: list[Variant] = []
    audio: list[str] = []
    pending: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = attributes(line)
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = attributes(line)
            if attrs.get("TYPE") == "AUDIO" and attrs.get("URI"):
                audio.append(attrs["URI"])
        elif line and not line.startswith("#") and pending is not None:
            try:
                bandwidth = int(pending.get("BANDWIDTH", "0"))
            except ValueError:
                bandwidth = 0
            variants.append(Variant(line, bandwidth))
            pending = None
    return variants, audio


def parse_media(text: str) -> tuple[str | None, str | None]:
    """(initialization section URI, first media segment URI) of a media playlist."""
    init: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MAP:") and init is None:
            init = attributes(line).get("URI")
        elif line and not line.startswith("#"):
            return init, line
    return init, None


def pick_renditions(variants: list[Variant]) -> list[Variant]:
    """The lowest and the middle variants by bandwidth: the lower middle of an even count
    (540 of 360/540/720/1080, where players estimating ~0.5–1 Mb/s start), and never the
    lowest twice (the second of two)."""
    ordered = sorted(variants, key=lambda v: v.bandwidth)
    if len(ordered) < 2:
        return ordered
    return [ordered[0], ordered[max(1, (len(ordered) - 1) // 2)]]


def resolve(base: str, uri: str) -> str | None:
    """`uri` from a playlist at `base` (a name under the render prefix) as a name under the
    same prefix, or None when it is not a plain relative path that stays inside it."""
    if not uri or "://" in uri or uri.startswith("/") or any(c in uri for c in "?#%\\~:@"):
        return None
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), uri))
    if joined.startswith(("../", "/")) or joined in (".", ".."):
        return None
    return joined


def plan_warm(read: Callable[[str], str], listing: Collection[str]) -> WarmPlan:
    """What to warm for one render (see the module docstring). `read(name)` returns a stored
    playlist's text; `listing` holds every name stored under the render's prefix."""
    plan = WarmPlan()
    if MASTER not in listing:
        plan.refused.append(MASTER)
        return plan
    plan.add(MASTER, listing)
    for extra in EXTRAS:
        if extra in listing:
            plan.add(extra, listing)
    variants, audio = parse_master(read(MASTER))
    playlists = [v.uri for v in pick_renditions(variants)] + audio[:1]
    for uri in playlists:
        name = resolve(MASTER, uri)
        if name is None or name not in listing:
            plan.refused.append(uri)
            continue
        plan.add(name, listing)
        init, first = parse_media(read(name))
        for entry in (init, first):
            if entry is None:
                continue
            target = resolve(name, entry)
            if target is None:
                plan.refused.append(entry)
            else:
                plan.add(target, listing)
    return plan
