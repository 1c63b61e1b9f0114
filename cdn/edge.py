"""The nginx edge in front of the origin: its configuration, rendered from a few values.

`reelforge edge-config --origin URL --listen HOST:PORT --cache-dir DIR` prints `render()`;
`docker/edge/nginx.conf` is its rendering for the compose topology. What the edge does, and
why (issue 4, "A real edge"; RFC 9111 for the caching rules nginx applies):

- `proxy_cache` with a keys zone and a max size; the origin's Cache-Control is honoured
  (`proxy_cache_valid` is not set): segments, init segments and posters are
  `immutable, max-age=31536000` and stay until evicted, manifests `max-age=2`; what the origin
  does not mark cacheable (errors, `private` signed media) is never stored.
- The cache key is the path alone (`$uri`): public media carry no token or query string, so
  every viewer of a segment shares one entry. A signed path (`/~{token}/` in it, checked by the
  origin) is never stored, whatever the origin says (`proxy_no_cache`), so no token's answer
  can be served to another viewer.
- `proxy_cache_lock on` collapses a cold herd into one origin request per object; a request
  still waiting after `lock_timeout_s` goes to the origin uncached.
- `proxy_cache_revalidate on`: an expired manifest is refreshed with a conditional request
  (If-None-Match / If-Modified-Since, RFC 9110 §13.1), answered 304 by the origin.
- `proxy_cache_use_stale error timeout updating http_5xx` with `background_update`: the edge
  keeps serving what it has while the origin is down, and an expired manifest is answered
  from the cache while its refresh runs in the background.
- Only canonical media paths reach the origin: `/media/{video}/{render}/{file...}` made of
  plain segments (no `%`, no empty or dot-led segments), so the decoded `$uri` used as the key
  and sent upstream is byte for byte what the client asked for. Anything else is a 404 at
  the edge. The query string is dropped on the way to the origin (it is not in the key).
- Only GET and HEAD are cached; OPTIONS (CORS preflight) passes through; other methods get 403.
  CORS headers come from the origin and are stored with the object.
- Keepalive connections to the origin; Set-Cookie is neither honoured nor passed on.
- `X-Cache-Status` on every answer, and a JSON access log with `$upstream_cache_status`,
  the upstream address and its status (what the tests and the benchmark count).

A cold Range request makes nginx fetch the whole object from the origin (Range is not passed
upstream when caching); our segments are a few hundred kilobytes and `download.mp4` a few
megabytes, so that is right here. For much larger progressive files, add the `slice` module
(`slice 1m; proxy_cache_key $uri$slice_range; proxy_set_header Range $slice_range;`). A
signed request is never cached, so its Range and If-Range go to the origin as they came (a
player seeking in a private `download.mp4` gets a 206 from the origin, not the whole file).

Do not add `open_file_cache`: it keeps descriptors of purged cache files open and would keep
serving them (see `cdn.hooks.NginxCachePurge`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ZONE = "reelforge"
CACHE_LEVELS = (1, 2)
"""`levels=1:2` of `proxy_cache_path`: the cache file of key K is
``{cache_dir}/{md5(K)[-1]}/{md5(K)[-3:-1]}/{md5(K)}`` (see `cache_file`)."""
DEFAULT_MEDIA_PATH = "/media"
HEALTH_PATH = "/edge-health"

# Reelforge's public ids (api.core.db.new_id) and file names (packager): no dots first, no '%'.
_ID = r"[a-z]_[0-9a-z]{1,30}"
_SEGMENT = r"[A-Za-z0-9_~=-][A-Za-z0-9_.~=-]{0,199}"
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_SIZE = re.compile(r"[0-9]{1,9}[kKmMgG]?")
_TIME = re.compile(r"[0-9]{1,9}(ms|s|m|h|d|w|M|y)?")
# Values written into the configuration verbatim must not be able to end a directive.
_UNSAFE = re.compile(r"[\s;{}'\"\\$#]")


class EdgeConfigError(ValueError):
    """A value the edge configuration cannot be rendered with; the message names it."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class EdgeConfig:
    """What the rendered nginx.conf depends on. Paths are the edge machine's."""

    origin: str
    listen: str
    cache_dir: str
    media_path: str = DEFAULT_MEDIA_PATH
    max_size: str = "10g"
    keys_zone_mb: int = 64
    inactive: str = "7d"
    lock_timeout_s: int = 10
    connect_timeout_s: int = 3
    read_timeout_s: int = 30
    upstream_keepalive: int = 64
    worker_processes: str = "auto"
    worker_connections: int = 4096
    access_log: str = "/dev/stdout"
    error_log: str = "/dev/stderr"
    pid: str = "/tmp/reelforge-edge.pid"
    # Optional: where nginx's own temporary files go (default: its compiled-in paths).
    temp_dir: str = ""
    # Optional: the `user` worker processes run as when the master runs as root.
    user: str = ""


def parse_origin(url: str) -> Origin:
    """`http(s)://host[:port]`, nothing else: no path, query, fragment or credentials."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise EdgeConfigError(f"origin {url!r}: the scheme must be http or https")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise EdgeConfigError(f"origin {url!r}: no credentials, query or fragment")
    if parts.path not in ("", "/"):
        raise EdgeConfigError(f"origin {url!r}: give scheme://host[:port], without a path")
    host = parts.hostname or ""
    _check_host(host, f"origin {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise EdgeConfigError(f"origin {url!r}: bad port") from None
    return Origin(parts.scheme, host, port)


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[v6]:PORT` for IPv6) → (host, port)."""
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EdgeConfigError(f"listen {value!r}: give HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    _check_host(host, f"listen {value!r}")
    return host, int(port_text)


def _check_host(host: str, what: str) -> None:
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if not _HOST.fullmatch(host):
        raise EdgeConfigError(f"{what}: bad host name {host!r}")


def _check(config: EdgeConfig) -> None:
    for name in ("cache_dir", "access_log", "error_log", "pid", "temp_dir", "user"):
        value = getattr(config, name)
        if _UNSAFE.search(value):
            raise EdgeConfigError(f"{name} {value!r}: no spaces, quotes, ';', '{{', '}}', '$'")
    if not config.cache_dir.startswith("/"):
        raise EdgeConfigError(f"cache dir {config.cache_dir!r} must be an absolute path")
    if not re.fullmatch(r"(/[A-Za-z0-9_-]+)+", config.media_path):
        raise EdgeConfigError(f"media path {config.media_path!r}: like /media, no trailing /")
    if not _SIZE.fullmatch(config.max_size):
        raise EdgeConfigError(f"max size {config.max_size!r}: like 10g or 500m")
    if not _TIME.fullmatch(config.inactive):
        raise EdgeConfigError(f"inactive {config.inactive!r}: like 7d or 12h")
    if not (config.worker_processes == "auto" or config.worker_processes.isdigit()):
        raise EdgeConfigError(f"worker_processes {config.worker_processes!r}: auto or a number")
    for name in (
        "keys_zone_mb",
        "lock_timeout_s",
        "connect_timeout_s",
        "read_timeout_s",
        "upstream_keepalive",
        "worker_connections",
    ):
        if int(getattr(config, name)) <= 0:
            raise EdgeConfigError(f"{name} must be positive")


def media_path_pattern(media_path: str = DEFAULT_MEDIA_PATH) -> str:
    """The regex (PCRE, as in the config) every request URI must match to reach the origin:
    `{media_path}/{video}/{render}/{segment}(/{segment})*`, with an optional query string."""
    return rf"^{media_path}/{_ID}/{_ID}/{_SEGMENT}(/{_SEGMENT}){{0,7}}(\?.*)?$"


def render(config: EdgeConfig) -> str:
    """The whole nginx.conf (nginx 1.22) for `config`."""
    _check(config)
    origin = parse_origin(config.origin)
    listen_host, listen_port = parse_listen(config.listen)
    listen = f"[{listen_host}]:{listen_port}" if ":" in listen_host else config.listen.strip()
    media = config.media_path
    cache_dir = config.cache_dir.rstrip("/") or "/"
    levels = ":".join(str(n) for n in CACHE_LEVELS)
    lines = [
        "# Rendered by `reelforge edge-config` (cdn/edge.py); edit the options, not this file.",
        f"# origin {origin.scheme}://{origin.netloc}  listen {listen}  cache {cache_dir}",
        *([f"user {config.user};"] if config.user else []),
        f"worker_processes {config.worker_processes};",
        f"pid {config.pid};",
        f"error_log {config.error_log} warn;",
        "",
        "events {",
        f"    worker_connections {config.worker_connections};",
        "}",
        "",
        "http {",
        "    server_tokens off;",
        "    default_type application/octet-stream;",
        "    sendfile on;",
        "    tcp_nopush on;",
        "    tcp_nodelay on;",
        "    keepalive_timeout 65s;",
        "    keepalive_requests 10000;",
        *_temp_paths(config.temp_dir),
        "",
        "    # One JSON line per request; background refreshes (subrequests) are logged too.",
        "    log_format reelforge_edge escape=json",
        '        \'{"time":"$time_iso8601","method":"$request_method","uri":"$uri",\'',
        '        \'"status":"$status","bytes":"$body_bytes_sent",\'',
        '        \'"cache":"$upstream_cache_status","upstream":"$upstream_addr",\'',
        '        \'"upstream_status":"$upstream_status","request_time":"$request_time",\'',
        '        \'"upstream_time":"$upstream_response_time"}\';',
        f"    access_log {config.access_log} reelforge_edge;",
        "    log_subrequest on;",
        "",
        f"    proxy_cache_path {cache_dir} levels={levels} keys_zone={ZONE}:{config.keys_zone_mb}m",
        f"        max_size={config.max_size} inactive={config.inactive} use_temp_path=off;",
        "",
        "    # Canonical media paths only: then the decoded $uri equals what the client sent.",
        "    map $request_uri $reelforge_canonical {",
        "        default 0;",
        f'        "~{media_path_pattern(media)}" 1;',
        "    }",
        "    # Signed media (a /~token/ segment) is per viewer: never stored, never served from",
        "    # the cache.",
        "    map $uri $reelforge_signed {",
        "        default 0;",
        '        "~/~" 1;',
        "    }",
        "    # Range goes to the origin only for signed media (never cached): the origin answers",
        "    # 206, so a player can seek in a private download.mp4. Cached media are fetched whole",
        "    # and cut into ranges here.",
        "    map $reelforge_signed $reelforge_upstream_range {",
        '        default "";',
        "        1 $http_range;",
        "    }",
        "    map $reelforge_signed $reelforge_upstream_if_range {",
        '        default "";',
        "        1 $http_if_range;",
        "    }",
        "",
        "    upstream reelforge_origin {",
        f"        server {origin.netloc};",
        f"        keepalive {config.upstream_keepalive};",
        "        keepalive_requests 10000;",
        "        keepalive_timeout 60s;",
        "    }",
        "",
        "    server {",
        f"        listen {listen} reuseport;",
        "        server_name _;",
        "",
        f"        location = {HEALTH_PATH} {{",
        "            access_log off;",
        "            default_type text/plain;",
        '            return 200 "ok\\n";',
        "        }",
        "",
        f"        location {media}/ {{",
        "            if ($reelforge_canonical = 0) {",
        "                return 404;",
        "            }",
        "            limit_except GET HEAD OPTIONS {",
        "                deny all;",
        "            }",
        f"            proxy_pass {origin.scheme}://reelforge_origin$uri;",
        *_tls_lines(origin),
        "            proxy_http_version 1.1;",
        '            proxy_set_header Connection "";',
        f"            proxy_set_header Host {origin.netloc};",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        f"            proxy_connect_timeout {config.connect_timeout_s}s;",
        f"            proxy_read_timeout {config.read_timeout_s}s;",
        "            proxy_next_upstream off;",
        "",
        f"            proxy_cache {ZONE};",
        "            proxy_cache_key $uri;",
        "            proxy_cache_methods GET HEAD;",
        "            proxy_no_cache $reelforge_signed;",
        "            proxy_cache_bypass $reelforge_signed;",
        "            proxy_set_header Range $reelforge_upstream_range;",
        "            proxy_set_header If-Range $reelforge_upstream_if_range;",
        "            proxy_cache_lock on;",
        f"            proxy_cache_lock_timeout {config.lock_timeout_s}s;",
        f"            proxy_cache_lock_age {config.lock_timeout_s}s;",
        "            proxy_cache_revalidate on;",
        "            proxy_cache_use_stale error timeout updating http_500 http_502 http_503"
        " http_504;",
        "            proxy_cache_background_update on;",
        "            proxy_ignore_headers Set-Cookie;",
        "            proxy_hide_header Set-Cookie;",
        "            add_header X-Cache-Status $upstream_cache_status always;",
        "        }",
        "",
        "        location / {",
        "            return 404;",
        "        }",
        "    }",
        "}",
        "",
    ]
    return "\n".join(lines)


def _temp_paths(temp_dir: str) -> list[str]:
    if not temp_dir:
        return []
    base = temp_dir.rstrip("/")
    return [
        f"    client_body_temp_path {base}/client_body;",
        f"    proxy_temp_path {base}/proxy;",
        f"    fastcgi_temp_path {base}/fastcgi;",
        f"    uwsgi_temp_path {base}/uwsgi;",
        f"    scgi_temp_path {base}/scgi;",
    ]


def _tls_lines(origin: Origin) -> list[str]:
    if origin.scheme != "https":
        return []
    return [
        "            proxy_ssl_server_name on;",
        f"            proxy_ssl_name {origin.host};",
        "            proxy_ssl_session_reuse on;",
    ]


def cache_file(cache_dir: Path, key: str) -> Path:
    """Where nginx stores the entry of `key` with `levels=1:2` (ngx_http_file_cache: the
    file is named by md5(key) in hex; the first level is its last character, the second the
    two before it)."""
    digest = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
    parts, end = [], len(digest)
    for width in CACHE_LEVELS:
        parts.append(digest[end - width : end])
        end -= width
    return cache_dir.joinpath(*parts, digest)
