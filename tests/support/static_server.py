"""A loopback HTTP server for output folders, good enough to stand in for an origin.

It speaks what players need from an origin: the media types of RFC 8216 §4 (HLS) and
ISO/IEC 23009-1 Annex C (DASH), byte ranges (RFC 9110 §14), CORS, and nothing else — no
directory listings, no writes, no log lines on stderr.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

CONTENT_TYPES: Mapping[str, str] = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".mp4": "video/mp4",
    ".m4s": "video/iso.segment",
    ".m4a": "audio/mp4",
    ".m4v": "video/mp4",
    ".ts": "video/mp2t",
    ".vtt": "text/vtt; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".txt": "text/plain; charset=utf-8",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


def content_type_for(path: Path) -> str:
    """The media type served for a file, chosen by its suffix."""
    return CONTENT_TYPES.get(path.suffix.lower(), DEFAULT_CONTENT_TYPE)


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte span of a single-range `Range` header.

    RFC 9110 §14.1.2: `bytes=a-b`, `bytes=a-` or the suffix form `bytes=-n`. Returns None
    when the range cannot be satisfied; raises ValueError when the header is not one we
    serve (several ranges, other units), in which case the whole file is sent.
    """
    match = _RANGE.match(header.strip())
    if match is None:
        raise ValueError(f"unsupported Range header: {header!r}")
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        raise ValueError(f"empty Range header: {header!r}")
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            return None
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self._send_cors_headers()
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def log_message(self, format: str, *args: object) -> None:
        pass  # Quiet: test output is for test results.

    def _serve(self, *, send_body: bool) -> None:
        path = self.server.resolve(urlsplit(self.path).path)
        if path is None:
            self._send_error(HTTPStatus.NOT_FOUND)
            return
        self.server.record(self.path)
        size = path.stat().st_size
        first, last = 0, size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header:
            try:
                span = parse_range(range_header, size)
            except ValueError:
                span = (0, size - 1)  # RFC 9110 §14.2: a server may ignore a Range it can't do.
            if span is None:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self._send_cors_headers()
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first, last = span
            status = HTTPStatus.PARTIAL_CONTENT
        length = max(last - first + 1, 0)
        self.send_response(status)
        self._send_cors_headers()
        self.send_header("Content-Type", content_type_for(path))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-store")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if send_body and length:
            self._copy(path, first, length)

    def _copy(self, path: Path, offset: int, length: int) -> None:
        try:
            with path.open("rb") as source:
                source.seek(offset)
                remaining = length
                while remaining:
                    chunk = source.read(min(_CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Players abort requests on seek and teardown; that is not a server fault.

    def _send_error(self, status: HTTPStatus) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self._send_cors_headers()
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_cors_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.send_header(
            "Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges"
        )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, root: Path, mounts: Mapping[str, Path]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        # Longest prefix first, so "/_player/x/" wins over "/_player/".
        self.mounts = sorted(
            ((_normalise_prefix(prefix), folder.resolve()) for prefix, folder in mounts.items()),
            key=lambda item: len(item[0]),
            reverse=True,
        )
        self.root = root.resolve()
        self.requests: list[str] = []
        self._requests_lock = threading.Lock()

    def record(self, path: str) -> None:
        with self._requests_lock:
            self.requests.append(path)

    def resolve(self, url_path: str) -> Path | None:
        """The file a URL path names, or None: outside every folder, missing, or a folder."""
        url_path = posixpath.normpath(unquote(url_path))
        if not url_path.startswith("/"):
            return None
        base, rest = self.root, url_path
        for prefix, folder in self.mounts:
            if url_path.startswith(prefix):
                base, rest = folder, url_path[len(prefix) :]
                break
        candidate = (base / rest.lstrip("/")).resolve()
        if not candidate.is_relative_to(base) or not candidate.is_file():
            return None
        return candidate


def _normalise_prefix(prefix: str) -> str:
    return "/" + prefix.strip("/") + "/"


class StaticServer:
    """Serves `root` (and each mount: URL prefix → folder) on 127.0.0.1 at an ephemeral port.

    with StaticServer(outdir, {"/_player/": player_dir}) as server:
        server.url("master.m3u8")   # http://127.0.0.1:PORT/master.m3u8
    """

    def __init__(self, root: Path, mounts: Mapping[str, Path] | None = None) -> None:
        self._root = Path(root)
        self._mounts = dict(mounts or {})
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        host, port = self._running().server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[str]:
        """Request paths served so far (files that were found), in arrival order."""
        server = self._running()
        with server._requests_lock:
            return list(server.requests)

    def url(self, path: str = "") -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def start(self) -> StaticServer:
        if self._server is not None:
            return self
        if not self._root.is_dir():
            raise FileNotFoundError(f"nothing to serve: {self._root} is not a folder")
        self._server = _Server(self._root, self._mounts)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"static-server:{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _running(self) -> _Server:
        if self._server is None:
            raise RuntimeError("the static server is not running")
        return self._server


__all__ = ["CONTENT_TYPES", "StaticServer", "content_type_for", "parse_range"]
