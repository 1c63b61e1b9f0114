"""Pre-warm and purge hooks for the CDN edges in front of the origin (issue 4, "CDN pre-warm
hooks").

Two small protocols, so that any CDN can be plugged in:

- `WarmHook.warm(edge, urls)`: make the edge hold these URLs. `HttpWarmHook` does it the way
  any pull CDN (nginx, Varnish, a commercial CDN's edge) fills: a plain GET through the edge,
  body read to the end, so the edge fetches the object from the origin and stores it.
- `PurgeHook.purge(video_id)`: make the edges forget a deleted or taken-down video.
  `NginxCachePurge` removes the entries from an nginx cache directory (stock nginx has no
  purge command; see its docstring); `NoPurge` does nothing (a CDN whose TTLs are enough).

Configured edges only (no SSRF): a hook talks to an `Edge` parsed from the configuration,
and every URL is built by `media_url` from that edge's base URL, a video id and a render id
that match Reelforge's id syntax, and a file name from our own storage listing; anything else
is refused with `UnsafeTarget` before a socket is opened. `HttpWarmHook` connects to the
edge's own host and port whatever the URL says, sends only the path, and never follows a
redirect.

Errors: `EdgeUnavailable` (a 5xx, a refused or reset connection, a timeout) is transient and
the job retries it; `UnsafeTarget` is bad input and is never retried.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

log = logging.getLogger("reelforge.cdn.hooks")

MEDIA_PATH = "/media"
"""The origin's media route; an edge configured without a path serves it there."""

ID = re.compile(r"[a-z]_[0-9a-z]{1,30}")
"""A video or render id (api.core.db.new_id): a letter, '_', then lowercase base 32."""
_NAME_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
NAME = re.compile(rf"{_NAME_SEGMENT}(?:/{_NAME_SEGMENT}){{0,7}}")
"""A stored file's name under its render prefix (`v360/00001.m4s`): plain segments, none
starting with '.', no '%', '~', '\\', '//' or empty segment."""
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_PATH = re.compile(r"(/[A-Za-z0-9_-]+)*")

USER_AGENT = "reelforge-prewarm/1"
# How much of a cache file's start holds nginx's header and its "KEY: ..." line.
_NGINX_HEAD_BYTES = 4096


class HookError(Exception):
    """A hook could not do its work."""


class EdgeUnavailable(HookError):
    """The edge failed or could not be reached (5xx, connection refused, timeout): retried."""


class UnsafeTarget(HookError, ValueError):
    """A URL the hook refuses to request: not under a configured edge, or built from an id
    or a name that is not ours. Bad input, never retried."""


@dataclass(frozen=True)
class Edge:
    """One configured edge: the media base URL players would use through it."""

    scheme: str
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        netloc = host if self.port == default else f"{host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


def parse_edge(url: str) -> Edge:
    """An edge's media base URL from the configuration: `http(s)://host[:port][/path]`.

    No credentials, query or fragment; a path of plain segments (none: the origin's
    `/media`). Raises `UnsafeTarget` otherwise.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget(f"edge {url!r}: the scheme must be http or https")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget(f"edge {url!r}: no credentials in an edge URL")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise UnsafeTarget(f"edge {url!r}: no query or fragment")
    host = parts.hostname or ""
    if not _valid_host(host):
        raise UnsafeTarget(f"edge {url!r}: bad host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UnsafeTarget(f"edge {url!r}: bad port") from None
    path = parts.path.rstrip("/") or MEDIA_PATH
    if not _PATH.fullmatch(path):
        raise UnsafeTarget(f"edge {url!r}: the path must be plain segments like /media")
    return Edge(parts.scheme, host, port, path)


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST.fullmatch(host))


def check_ids(video_id: str, render_id: str | None = None) -> None:
    """Raise `UnsafeTarget` unless the ids have Reelforge's syntax (nothing else reaches a
    URL or a cache key: no '@', '/', '..', ':', '%' or whole URLs)."""
    for value in (video_id, *([] if render_id is None else [render_id])):
        if not isinstance(value, str) or not ID.fullmatch(value):
            raise UnsafeTarget(f"not a media id: {value!r}")


def media_url(edge: Edge, video_id: str, render_id: str, name: str) -> str:
    """`{edge}/{video_id}/{render_id}/{name}`, or `UnsafeTarget`.

    The result is parsed back and must have the edge's scheme, host and port, and the path
    exactly as composed: belt and braces over the syntax checks.
    """
    check_ids(video_id, render_id)
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise UnsafeTarget(f"not a media file name: {name!r}")
    path = f"{edge.path}/{video_id}/{render_id}/{name}"
    url = f"{edge.url.removesuffix(edge.path)}{path}"
    parts = urlsplit(url)
    if (
        parts.scheme != edge.scheme
        or parts.hostname != edge.host.lower()
        or (parts.port or (443 if parts.scheme == "https" else 80)) != edge.port
        or parts.path != path
        or parts.query
        or parts.fragment
    ):
        raise UnsafeTarget(f"{url!r} does not stay under the edge {edge.url}")
    return url


def _path_under(edge: Edge, url: str) -> str:
    """The request path of `url`, which must lie under `edge` (refuses anything else)."""
    prefix = edge.url + "/"
    if not url.startswith(prefix):
        raise UnsafeTarget(f"{url!r} is not under the edge {edge.url}")
    path = urlsplit(url).path
    rest = path.removeprefix(edge.path + "/")
    segments = rest.split("/")
    if (
        len(segments) < 3
        or not ID.fullmatch(segments[0])
        or not ID.fullmatch(segments[1])
        or not NAME.fullmatch("/".join(segments[2:]))
        or url != prefix + rest
    ):
        raise UnsafeTarget(f"{url!r} is not a media URL of the edge {edge.url}")
    return path


# ------------------------------------------------------------------------------- protocols


@dataclass(frozen=True)
class Fetched:
    """What the edge answered for one warmed URL."""

    url: str
    status: int
    cache_status: str  # the edge's X-Cache-Status (nginx: MISS, HIT, ...), "" if none
    size: int
    seconds: float


class WarmHook(Protocol):
    """Makes an edge hold `urls` (each built by `media_url` for that edge)."""

    def warm(self, edge: Edge, urls: Sequence[str]) -> list[Fetched]: ...


class PurgeHook(Protocol):
    """Makes the edges forget every file of a video; returns how many entries went."""

    def purge(self, video_id: str) -> int: ...


# --------------------------------------------------------------------------------- warming


class HttpWarmHook:
    """Warm by GET, for any pull CDN: one keep-alive connection to the edge per call, each
    URL requested in turn and its body read to the end (a cache stores what it fetched
    whole). 2xx and 304 are success; 404/403 are reported (a video deleted meanwhile, say)
    and not retried; 5xx, refused connections and timeouts raise `EdgeUnavailable`.
    """

    def __init__(self, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s

    def warm(self, edge: Edge, urls: Sequence[str]) -> list[Fetched]:
        paths = [(url, _path_under(edge, url)) for url in urls]
        results: list[Fetched] = []
        conn = self._connect(edge)
        try:
            for url, path in paths:
                results.append(self._get(conn, edge, url, path))
        finally:
            conn.close()
        return results

    def _connect(self, edge: Edge) -> http.client.HTTPConnection:
        if edge.scheme == "https":
            return http.client.HTTPSConnection(edge.host, edge.port, timeout=self.timeout_s)
        return http.client.HTTPConnection(edge.host, edge.port, timeout=self.timeout_s)

    def _get(self, conn: http.client.HTTPConnection, edge: Edge, url: str, path: str) -> Fetched:
        started = time.monotonic()
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            size = 0
            while chunk := response.read(64 * 1024):
                size += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            conn.close()  # a broken keep-alive connection is not reused
            raise EdgeUnavailable(f"edge {edge.url}: GET {path}: {exc!r}") from exc
        fetched = Fetched(
            url=url,
            status=response.status,
            cache_status=response.getheader("X-Cache-Status", "") or "",
            size=size,
            seconds=time.monotonic() - started,
        )
        if response.status >= 500:
            raise EdgeUnavailable(f"edge {edge.url}: GET {path}: HTTP {response.status}")
        if response.will_close:
            conn.close()  # http.client reconnects on the next request
        return fetched


# --------------------------------------------------------------------------------- purging


class NoPurge:
    """For a CDN whose own expiry is enough (or that is purged by other means)."""

    def purge(self, video_id: str) -> int:
        check_ids(video_id)
        return 0


class NginxCachePurge:
    """Removes a video's entries from the cache directories of nginx edges.

    Stock nginx has no purge command (that is the commercial `proxy_cache_purge`), but its
    cache is plain files: each entry is one file, named by the MD5 of its key under the
    `levels` directories (`cdn.edge.cache_file`), starting with a binary header and a
    ``KEY: {key}`` line. nginx treats an entry whose file has gone as a miss and fetches it
    again. This hook walks the cache directory and deletes every file whose key is one of the
    video's paths (``.../{video_id}/...``: every render, every file, signed or not), reading
    only each file's first 4 KiB.

    Walking the cache rather than computing the MD5 of each known URL means the purge needs
    no listing of the video's files, which a concurrent cleanup may already have deleted;
    the cost is one small read per cached file: on this machine about 35,000 files a second
    when their first pages are in memory, 5,000 from a cold disk (20,000 entries measured),
    so a 100 GB cache of 500 KB segments takes 5 to 40 s. Deletions are rare enough.

    It needs the cache directory on this machine (the edge's local disk, or a volume shared
    with the edge) and the right to delete in it (nginx makes it 0700, owned by its worker
    user: run the purging worker as that user). Do not give the edge `open_file_cache`: an
    open descriptor would keep serving a deleted file.
    """

    def __init__(self, cache_dirs: Sequence[Path]) -> None:
        self.cache_dirs = [Path(d) for d in cache_dirs]

    def purge(self, video_id: str) -> int:
        check_ids(video_id)
        marker = f"/{video_id}/".encode()
        removed = 0
        for cache_dir in self.cache_dirs:
            if not cache_dir.is_dir():
                raise HookError(f"nginx cache directory {cache_dir} is not there")
            for path in _cache_files(cache_dir):
                if _key_has(path, marker):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        removed += 1
        return removed


def _cache_files(root: Path) -> list[Path]:
    """Every entry file under an nginx cache directory (any `levels`), temp files excluded."""
    found: list[Path] = []
    for directory, _subdirs, files in os.walk(root):
        for name in files:
            # Entries are named by 32 hex digits; in-flight downloads have a numeric suffix.
            if len(name) == 32:
                found.append(Path(directory, name))
    return found


def _key_has(path: Path, marker: bytes) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(_NGINX_HEAD_BYTES)
    except FileNotFoundError:
        return False
    start = head.find(b"\nKEY: ")
    if start < 0:
        return False
    end = head.find(b"\n", start + 6)
    key = head[start + 6 : end if end >= 0 else len(head)]
    return key.startswith(b"/") and marker in key
