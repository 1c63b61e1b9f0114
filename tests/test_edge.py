"""The nginx edge (issue 4, "A real edge"): the configuration `reelforge edge-config` renders,
run by the real Debian nginx on loopback in front of the real origin (the embedded app under
uvicorn, a video published through its API), counted in the edge's own access log.

Request collapsing (100 cold requests → 1 origin request, a second wave → 0), revalidation
(an expired playlist → a conditional request answered 304), stale on error (the origin down →
cached files still served), purge (→ the next request misses), signed media never stored,
only canonical media paths forwarded, and a real Chromium playing the API's `hls_url` and
`dash_url` through the edge.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.media.playback import playback_prefix
from cdn.edge import EdgeConfig, EdgeConfigError, cache_file, parse_listen, parse_origin, render
from cdn.hooks import NginxCachePurge
from tests.support.e2e import Flow
from tests.support.edge import NGINX, NginxEdge
from tests.support.player import PLAYER_DIR, play_url
from tests.support.services import free_port
from tests.support.static_server import StaticServer
from tests.support.uploads import LiveServer, live_server, small_clip, wait_for

ROOT = Path(__file__).resolve().parents[1]
DOCKER_EDGE_CONF = ROOT / "docker" / "edge" / "nginx.conf"
COMPOSE_EDGE = ("http://api:8000", "0.0.0.0:8080", "/var/cache/reelforge")


# -- the rendered configuration ---------------------------------------------------------------
def test_committed_compose_config_is_a_fresh_rendering() -> None:
    origin, listen, cache_dir = COMPOSE_EDGE
    expected = render(EdgeConfig(origin=origin, listen=listen, cache_dir=cache_dir))
    assert DOCKER_EDGE_CONF.read_text() == expected, (
        "docker/edge/nginx.conf is stale: regenerate it with `reelforge edge-config "
        f"--origin {origin} --listen {listen} --cache-dir {cache_dir} --out {DOCKER_EDGE_CONF}`"
    )
    printed = subprocess.run(
        [sys.executable, "-m", "cli", "edge-config", "--origin", origin, "--listen", listen,
         "--cache-dir", cache_dir],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout == expected


def test_committed_compose_config_passes_nginx_t(tmp_path: Path) -> None:
    """The committed file, with the compose host names and paths mapped to this machine."""
    assert NGINX.is_file(), f"nginx is missing: {NGINX} (apt-get install -y nginx)"
    text = DOCKER_EDGE_CONF.read_text()
    for compose, local in (
        ("server api:8000;", "server 127.0.0.1:8000;"),
        ("/var/cache/reelforge", str(tmp_path / "cache")),
        ("/tmp/reelforge-edge.pid", str(tmp_path / "nginx.pid")),
    ):
        assert compose in text
        text = text.replace(compose, local)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    checked = subprocess.run(
        [str(NGINX), "-t", "-p", str(tmp_path), "-c", str(conf)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_config_carries_the_caching_rules() -> None:
    text = render(EdgeConfig("http://127.0.0.1:8000", "127.0.0.1:8080", "/var/cache/rf"))
    for directive in (
        "proxy_cache_path /var/cache/rf levels=1:2 keys_zone=reelforge:64m",
        "max_size=10g",
        "proxy_cache_key $uri;",
        "proxy_cache_lock on;",
        "proxy_cache_lock_timeout 10s;",
        "proxy_cache_revalidate on;",
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_cache_background_update on;",
        "proxy_cache_methods GET HEAD;",
        "proxy_ignore_headers Set-Cookie;",
        "add_header X-Cache-Status $upstream_cache_status always;",
        "keepalive 64;",
        'proxy_set_header Connection "";',
    ):
        assert directive in text, directive
    # The origin's Cache-Control decides what is stored and for how long.
    assert "proxy_cache_valid" not in text
    assert "open_file_cache" not in text  # it would keep purged files alive


@pytest.mark.parametrize(
    "changes",
    [
        {"origin": "ftp://origin"},
        {"origin": "http://origin/prefix"},
        {"origin": "http://user:pw@origin"},
        {"origin": "http://origin;evil"},
        {"listen": "8080"},
        {"listen": "127.0.0.1:99999"},
        {"cache_dir": "relative/cache"},
        {"cache_dir": "/var/cache/x; include /etc/passwd"},
        {"cache_dir": "/var/cache/{x}"},
        {"media_path": "media"},
        {"media_path": "/media/"},
        {"max_size": "10 g"},
        {"inactive": "7days"},
        {"pid": "/run/x.pid;"},
        {"keys_zone_mb": 0},
    ],
)
def test_render_refuses_values_that_could_break_the_config(changes: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "origin": "http://origin:8000",
        "listen": "0.0.0.0:8080",
        "cache_dir": "/var/cache/rf",
        **changes,
    }
    with pytest.raises(EdgeConfigError):
        render(EdgeConfig(**values))


def test_origin_and_listen_parsing() -> None:
    assert parse_origin("http://api:8000").netloc == "api:8000"
    assert parse_origin("https://origin.example.com").port == 443
    assert parse_origin("http://[::1]:9000").netloc == "[::1]:9000"
    assert parse_listen("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_listen("[::]:8443") == ("::", 8443)


def test_cli_refuses_a_bad_origin() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "edge-config", "--origin", "http://api:8000/x",
         "--listen", "0.0.0.0:8080", "--cache-dir", "/var/cache/rf"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "origin" in result.stderr and not result.stdout


# -- a real nginx in front of the real origin --------------------------------------------------
@dataclass
class Site:
    """The origin (embedded app) with one published public video, and the edge port its
    `media_url` names."""

    server: LiveServer
    flow: Flow
    video: dict[str, Any]
    owner_id: str
    edge_port: int
    data_dir: Path

    @property
    def video_id(self) -> str:
        return str(self.video["id"])

    @property
    def render_id(self) -> str:
        return str(self.video["hls_url"]).rsplit("/", 2)[-2]

    def uri(self, name: str) -> str:
        return f"/media/{self.video_id}/{self.render_id}/{name}"

    def stored(self, name: str) -> bytes:
        key = f"media/{self.video_id}/{self.render_id}/{name}"
        return b"".join(self.server.ctx.storage.open_range(key))

    def names(self) -> list[str]:
        prefix = f"media/{self.video_id}/{self.render_id}/"
        return sorted(info.key[len(prefix) :] for info in self.server.ctx.storage.list(prefix))

    def segments(self) -> list[str]:
        return [name for name in self.names() if name.endswith(".m4s")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("edge-site")
    edge_port = free_port()
    media_url = f"http://127.0.0.1:{edge_port}/media"
    with live_server(root / "data", media_url=media_url) as server, Flow(server.url) as flow:
        creator = flow.register()
        video_id = flow.upload_direct(creator, small_clip(root, seconds=4.0))
        flow.publish(creator, video_id, caption="through the edge")
        video = flow.wait_status(video_id, creator)
        assert video["status"] == "published", video
        assert video["hls_url"].startswith(media_url + "/")
        yield Site(server, flow, video, creator.id, edge_port, root / "data")


@pytest.fixture
def edge(site: Site, tmp_path: Path) -> Iterator[NginxEdge]:
    """A cold edge (empty cache) on the port the site's media URLs name."""
    with NginxEdge(tmp_path / "edge", site.server.url, port=site.edge_port) as running:
        yield running


def _get(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(url, timeout=30, **kwargs)


def _herd(url: str, viewers: int) -> list[tuple[int, str, str]]:
    """`viewers` GETs released at once, each on its own connection: (status, cache, sha256)."""
    barrier = threading.Barrier(viewers)

    def one(_: int) -> tuple[int, str, str]:
        with httpx.Client(timeout=60) as client:
            barrier.wait(30)
            response = client.get(url)
            digest = hashlib.sha256(response.content).hexdigest()
            return response.status_code, response.headers.get("x-cache-status", ""), digest

    with ThreadPoolExecutor(viewers) as pool:
        return list(pool.map(one, range(viewers)))


def test_cold_herd_costs_the_origin_one_request(site: Site, edge: NginxEdge) -> None:
    name = site.segments()[0]
    uri = site.uri(name)
    expected = hashlib.sha256(site.stored(name)).hexdigest()

    first = _herd(edge.url + uri, 100)
    assert Counter(status for status, _, _ in first) == {200: 100}
    assert {digest for _, _, digest in first} == {expected}
    assert len(edge.origin_requests(uri)) == 1, edge.origin_requests(uri)
    assert Counter(cache for _, cache, _ in first)["MISS"] == 1

    edge.clear_log()
    second = _herd(edge.url + uri, 100)
    assert Counter(cache for _, cache, _ in second) == {"HIT": 100}
    assert {digest for _, _, digest in second} == {expected}
    assert edge.origin_requests(uri) == []
    assert len(edge.log()) == 100


def test_expired_playlist_is_revalidated_with_a_304(site: Site, edge: NginxEdge) -> None:
    uri = site.uri("master.m3u8")
    first = _get(edge.url + uri)
    assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
    assert "max-age=2" in first.headers["cache-control"]
    assert _get(edge.url + uri).headers["x-cache-status"] == "HIT"
    time.sleep(3.2)  # max-age=2, and nginx counts whole seconds
    refreshed = _get(edge.url + uri)
    assert refreshed.status_code == 200
    assert refreshed.content == first.content

    def revalidated() -> list[dict[str, str]]:
        return [e for e in edge.origin_requests(uri) if e["upstream_status"] == "304"]

    wait_for(lambda: bool(revalidated()), 10, "the conditional request to the origin")
    assert revalidated()[0]["cache"] == "REVALIDATED"
    # The origin sent the playlist's bytes once: after that, only a 304.
    statuses = [e["upstream_status"] for e in edge.origin_requests(uri)]
    assert statuses == ["200", "304"], statuses
    assert _get(edge.url + uri).headers["x-cache-status"] == "HIT"


def test_range_requests_are_served_from_the_whole_cached_object(
    site: Site, edge: NginxEdge
) -> None:
    name = site.segments()[-1]
    uri, body = site.uri(name), site.stored(name)
    cold = _get(edge.url + uri, headers={"Range": "bytes=100-199"})
    assert cold.status_code == 206 and cold.content == body[100:200]
    # A cold Range request made the edge fetch the whole object once, then serve any range.
    assert len(edge.origin_requests(uri)) == 1
    warm = _get(edge.url + uri, headers={"Range": f"bytes=-{len(body) // 2}"})
    assert warm.status_code == 206 and warm.headers["x-cache-status"] == "HIT"
    assert warm.content == body[len(body) - len(body) // 2 :]
    assert _get(edge.url + uri).content == body
    assert len(edge.origin_requests(uri)) == 1


def test_download_mp4_seeks_through_the_edge_public_and_signed(site: Site, edge: NginxEdge) -> None:
    """`mp4_url` (download.mp4) as a progressive player reads it: ranges from the front (the
    moov) and from anywhere after; public from the shared cache, signed straight through."""
    body = site.stored("download.mp4")
    assert site.flow.video(site.video_id)["mp4_url"] == edge.media_url + site.uri(
        "download.mp4"
    ).removeprefix("/media")
    uri = site.uri("download.mp4")
    for ask, expect in (("bytes=0-1023", body[:1024]), ("bytes=5000-", body[5000:])):
        got = _get(edge.url + uri, headers={"Range": ask})
        assert got.status_code == 206 and got.content == expect, (ask, got.status_code)
        assert got.headers["content-type"] == "video/mp4"
    assert len(edge.origin_requests(uri)) == 1  # the whole file once, then ranges from cache

    settings = site.server.settings
    base = playback_prefix(
        settings, site.video_id, site.render_id, "unlisted", site.owner_id, site.owner_id
    )
    signed = f"/media{base.removeprefix(settings.media_url)}/download.mp4"
    for ask, expect in (("bytes=0-1023", body[:1024]), ("bytes=-2000", body[-2000:])):
        got = _get(edge.url + signed, headers={"Range": ask})
        assert got.status_code == 206 and got.content == expect, (ask, got.status_code)
        assert got.headers["x-cache-status"] == "BYPASS"
        assert got.headers["content-range"].endswith(f"/{len(body)}")
    assert not cache_file(edge.cache_dir, signed).exists()


def test_purge_makes_the_next_request_miss(site: Site, edge: NginxEdge) -> None:
    names = ["master.m3u8", site.segments()[0]]
    for name in names:
        assert _get(edge.url + site.uri(name)).headers["x-cache-status"] == "MISS"
        assert _get(edge.url + site.uri(name)).headers["x-cache-status"] == "HIT"
    entries = [cache_file(edge.cache_dir, site.uri(name)) for name in names]
    assert all(path.is_file() for path in entries)
    # Another video's entry, in nginx's own format, must survive the purge.
    other_key = "/media/v_other0000000000/r_other000000000/master.m3u8"
    other = cache_file(edge.cache_dir, other_key)
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_bytes(
        entries[0].read_bytes().replace(site.uri("master.m3u8").encode(), other_key.encode())
    )

    removed = NginxCachePurge([edge.cache_dir]).purge(site.video_id)

    assert removed == 2
    assert not any(path.exists() for path in entries)
    assert other.is_file()
    for name in names:
        again = _get(edge.url + site.uri(name))
        assert again.status_code == 200 and again.headers["x-cache-status"] == "MISS"
        assert again.content == site.stored(name)
        assert _get(edge.url + site.uri(name)).headers["x-cache-status"] == "HIT"


def test_cached_files_are_served_while_the_origin_is_down(site: Site, tmp_path: Path) -> None:
    """A second origin process on the same data (the embedded app again), stopped mid-test."""
    names = ["master.m3u8", site.segments()[0]]
    with live_server(site.data_dir, media_url=site.server.settings.media_url) as origin:
        edge = NginxEdge(tmp_path / "edge", origin.url).start()
        for name in names:
            assert _get(edge.url + site.uri(name)).headers["x-cache-status"] == "MISS"
    try:
        with pytest.raises(httpx.ConnectError):
            httpx.get(origin.url + "/healthz", timeout=5)
        time.sleep(3.2)  # the playlist (max-age=2) has expired, the segment never does
        segment = _get(edge.url + site.uri(names[1]))
        assert segment.status_code == 200 and segment.headers["x-cache-status"] == "HIT"
        assert segment.content == site.stored(names[1])
        for _ in range(2):
            playlist = _get(edge.url + site.uri(names[0]))
            assert playlist.status_code == 200, playlist.text
            assert playlist.headers["x-cache-status"] in ("STALE", "UPDATING")
            assert playlist.content == site.stored(names[0])
        # The edge did try the origin, and got nothing.
        failed = [e for e in edge.origin_requests(site.uri(names[0])) if e["upstream_status"]]
        assert any(e["upstream_status"] in ("502", "504") for e in failed), failed
        # What it never had, it cannot serve.
        cold = _get(edge.url + site.uri(site.segments()[-1]))
        assert cold.status_code in (502, 504)
    finally:
        edge.stop()


def test_signed_media_is_never_stored_at_the_edge(site: Site, edge: NginxEdge) -> None:
    settings = site.server.settings
    base = playback_prefix(
        settings, site.video_id, site.render_id, "unlisted", site.owner_id, site.owner_id
    )
    path = base.removeprefix(settings.media_url)
    assert "/~" in path, base
    uri = f"/media{path}/master.m3u8"
    for _ in range(2):
        response = _get(edge.url + uri)
        assert response.status_code == 200, response.text
        assert response.headers["x-cache-status"] == "BYPASS"
        assert response.headers["cache-control"].startswith("private")
    assert len(edge.origin_requests(uri)) == 2
    assert not cache_file(edge.cache_dir, uri).exists()
    # The token does not leak into the shared entry of the plain URL either.
    assert not cache_file(edge.cache_dir, site.uri("master.m3u8")).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/media/{v}/{r}/%2e%2e/%2e%2e/secret",
        "/media/{v}/{r}/../../../etc/passwd",
        "/media/{v}/{r}/v240//init.mp4",
        "/media/{v}/{r}/.hidden.m3u8",
        "/media/{v}/R_UPPER/master.m3u8",
        "/media/{v}/{r}/%6Daster.m3u8",
        "/media/{v}",
        "/admin",
        "/v1/videos",
    ],
)
def test_only_canonical_media_paths_reach_the_origin(
    site: Site, edge: NginxEdge, path: str
) -> None:
    url = edge.url + path.format(v=site.video_id, r=site.render_id)
    response = httpx.get(url, timeout=10)
    assert response.status_code == 404
    assert edge.origin_requests() == []


def test_methods(site: Site, edge: NginxEdge) -> None:
    url = edge.url + site.uri("master.m3u8")
    assert httpx.post(url, content=b"x", timeout=10).status_code == 403
    assert httpx.delete(url, timeout=10).status_code == 403
    preflight = {"Origin": "http://player.example", "Access-Control-Request-Method": "GET"}
    for _ in range(2):
        answer = httpx.options(url, headers=preflight, timeout=10)
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == "*"
    assert len(edge.origin_requests(site.uri("master.m3u8"))) == 2  # never cached
    head = httpx.head(url, timeout=10)
    assert head.status_code == 200 and head.headers["x-cache-status"] == "MISS"
    got = _get(url, headers={"Origin": "http://player.example"})
    assert got.headers["x-cache-status"] == "HIT"  # HEAD filled the cache with the GET
    assert got.headers["access-control-allow-origin"] == "*"  # CORS stored with the object
    assert "set-cookie" not in got.headers


@pytest.mark.browser
@pytest.mark.parametrize("mode", ["hlsjs", "dashjs"])
def test_browser_plays_the_api_urls_through_the_edge(
    site: Site, edge: NginxEdge, mode: str, tmp_path: Path
) -> None:
    video = site.flow.video(site.video_id)
    src = video["hls_url"] if mode == "hlsjs" else video["dash_url"]
    assert src.startswith(edge.media_url + "/")
    (tmp_path / "page").mkdir()
    with StaticServer(tmp_path / "page", {"/_player/": PLAYER_DIR}) as page:
        result = play_url(
            src.rsplit("/", 1)[0] + "/",
            mode,
            timeout=60,
            until=2.0,
            src=src,
            player_url=page.url("_player/player.html"),
        )
    assert not result.failures(min_time=2.0), result.summary()
    served = [e for e in edge.log() if e["uri"].startswith(site.uri(""))]
    segments = [e for e in served if e["uri"].endswith(".m4s")]
    assert segments, served
    assert all(e["status"] in ("200", "206", "304") for e in served), served
    # Every object crossed to the origin at most once, however often the player asked.
    per_object = Counter(e["uri"] for e in edge.origin_requests())
    assert per_object and max(per_object.values()) == 1, per_object
