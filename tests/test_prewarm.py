"""CDN pre-warm and purge hooks (issue 4, "CDN pre-warm hooks").

What to warm (`cdn.prewarm.plan_warm`, from a video's own files), which URLs a hook may
request (`cdn.hooks`: configured edges only, no SSRF through ids, names or playlists), the
HTTP warm hook against real servers, and the whole flow with the real app, its embedded
Dramatiq worker and a real nginx edge: publish → the `prewarm_video` job warms the edge → the
next viewer's first files are cache hits; the edge down → publication still succeeds and the
job's retry warms the edge once it is back; delete → the `purge_video` job empties the edge.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from api.core.settings import Settings, SettingsError
from api.jobs.edge import EdgeJobs
from api.jobs.transcode import Runtime
from cdn.hooks import (
    Edge,
    EdgeUnavailable,
    HttpWarmHook,
    NginxCachePurge,
    NoPurge,
    UnsafeTarget,
    check_ids,
    media_url,
    parse_edge,
)
from cdn.prewarm import Variant, pick_renditions, plan_warm, resolve
from tests.support.api import seed_video
from tests.support.clips import ffmpeg
from tests.support.e2e import Account, Flow
from tests.support.edge import NginxEdge
from tests.support.services import free_port
from tests.support.uploads import LiveServer, live_server, record_jobs, wait_for
from worker import PURGE_DELAY_MS

GOLDEN = Path(__file__).resolve().parent / "resources" / "manifests" / "ladder_with_audio"
EDGE = parse_edge("http://127.0.0.1:8080/media")
VID, RID = "v_0123456789abcdef", "r_0123456789abcdef"


# -- what to warm -----------------------------------------------------------------------------
def _golden_listing() -> set[str]:
    names = {str(p.relative_to(GOLDEN)) for p in GOLDEN.rglob("*.m3u8")}
    for folder in ("v360", "v720", "v1080", "audio"):
        names |= {f"{folder}/init.mp4", f"{folder}/00001.m4s", f"{folder}/00002.m4s"}
    return names | {"manifest.mpd", "poster.jpg", "storyboard.jpg", "report.json"}


def test_plan_warms_master_lowest_middle_and_audio_starts() -> None:
    plan = plan_warm(lambda name: (GOLDEN / name).read_text(), _golden_listing())
    assert plan.names == [
        "master.m3u8",
        "manifest.mpd",
        "poster.jpg",
        "v360/index.m3u8",
        "v360/init.mp4",
        "v360/00001.m4s",
        "v720/index.m3u8",
        "v720/init.mp4",
        "v720/00001.m4s",
        "audio/index.m3u8",
        "audio/init.mp4",
        "audio/00001.m4s",
    ]
    assert plan.refused == []


def test_plan_without_a_master_warms_nothing() -> None:
    plan = plan_warm(lambda name: "", {"v360/index.m3u8"})
    assert plan.names == [] and plan.refused == ["master.m3u8"]


HOSTILE_MASTER = """#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",URI="http://169.254.169.254/latest/meta-data"
#EXT-X-STREAM-INF:BANDWIDTH=100
//evil.example/steal.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=150
v360/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=300
../../other-video/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=400
missing/index.m3u8
"""
HOSTILE_MEDIA = """#EXTM3U
#EXT-X-MAP:URI="/etc/passwd"
#EXTINF:2.0,
../../../../../../x.m4s
"""


def test_plan_refuses_what_is_not_our_own_file() -> None:
    listing = {"master.m3u8", "v360/index.m3u8", "v360/init.mp4", "v360/00001.m4s"}
    texts = {"master.m3u8": HOSTILE_MASTER, "v360/index.m3u8": HOSTILE_MEDIA}
    plan = plan_warm(texts.__getitem__, listing)
    assert plan.names == ["master.m3u8", "v360/index.m3u8"]
    assert set(plan.refused) == {
        "//evil.example/steal.m3u8",
        "http://169.254.169.254/latest/meta-data",
        "/etc/passwd",
        "../../../../../../x.m4s",
    }
    # Climbing out of the render is refused even when the target exists; so is a playlist
    # the listing does not hold.
    texts["master.m3u8"] = HOSTILE_MASTER.replace("BANDWIDTH=150", "BANDWIDTH=900")
    plan = plan_warm(texts.__getitem__, listing | {"other-video/index.m3u8"})
    assert plan.names == ["master.m3u8"]
    assert "../../other-video/index.m3u8" in plan.refused


@pytest.mark.parametrize(
    ("base", "uri", "expected"),
    [
        ("master.m3u8", "v360/index.m3u8", "v360/index.m3u8"),
        ("v360/index.m3u8", "init.mp4", "v360/init.mp4"),
        ("v360/index.m3u8", "../audio/00001.m4s", "audio/00001.m4s"),
        ("v360/index.m3u8", "../../x.m4s", None),
        ("master.m3u8", "../x.m3u8", None),
        ("master.m3u8", "/abs/x.m3u8", None),
        ("master.m3u8", "http://evil/x.m3u8", None),
        ("master.m3u8", "//evil/x.m3u8", None),
        ("master.m3u8", "x.m3u8?token=1", None),
        ("master.m3u8", "v%2e%2e/x.m3u8", None),
        ("master.m3u8", "user@evil/x", None),
        ("master.m3u8", "", None),
    ],
)
def test_resolve(base: str, uri: str, expected: str | None) -> None:
    assert resolve(base, uri) == expected


@pytest.mark.parametrize(
    ("bandwidths", "chosen"),
    [
        ([], []),
        ([500], [500]),
        ([900, 500], [500, 900]),
        ([3000, 500, 1500], [500, 1500]),
        ([5000, 500, 3000, 1500], [500, 1500]),
        ([5000, 500, 3000, 1500, 8000], [500, 3000]),
    ],
)
def test_pick_renditions(bandwidths: list[int], chosen: list[int]) -> None:
    variants = [Variant(f"v{b}/index.m3u8", b) for b in bandwidths]
    assert [v.bandwidth for v in pick_renditions(variants)] == chosen


# -- configured edges only --------------------------------------------------------------------
def test_media_url_is_built_under_the_edge() -> None:
    url = media_url(EDGE, VID, RID, "v360/00001.m4s")
    assert url == f"http://127.0.0.1:8080/media/{VID}/{RID}/v360/00001.m4s"


@pytest.mark.parametrize(
    "video_id",
    [
        "v_abc@evil.example",
        "v_abc/../../admin",
        "..",
        "//evil.example/x",
        "http://evil.example/",
        "v_abc%2f..%2f",
        "v_ABC",
        "v_abc:8080",
        "v_abc?x=1",
        "v_abc#x",
        "v_abc\r\nHost: evil",
        "",
        "v_" + "a" * 31,
    ],
)
def test_hostile_video_ids_are_refused(video_id: str) -> None:
    with pytest.raises(UnsafeTarget):
        media_url(EDGE, video_id, RID, "master.m3u8")
    with pytest.raises(UnsafeTarget):
        check_ids(video_id)
    with pytest.raises(UnsafeTarget):
        NoPurge().purge(video_id)


@pytest.mark.parametrize(
    "name",
    ["../x", "/etc/passwd", "http://evil/x", "a//b", ".hidden", "a/../../b", "x%2e", "~t/x",
     "@evil.example/x", "x?y", "x#y", "a b"],
)  # fmt: skip
def test_hostile_names_are_refused(name: str) -> None:
    with pytest.raises(UnsafeTarget):
        media_url(EDGE, VID, RID, name)
    with pytest.raises(UnsafeTarget):
        media_url(EDGE, VID, name, "master.m3u8")


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@edge/media",
        "http://edge@evil.example/media",
        "ftp://edge/media",
        "http://edge/media?x=1",
        "http://edge/media#x",
        "http://edge/../media",
        "http://edge/%2e%2e/media",
        "http://edge:99999/media",
        "http://ed ge/media",
        "file:///etc/passwd",
        "//edge/media",
    ],
)
def test_bad_edge_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        parse_edge(url)
    with pytest.raises(SettingsError):
        Settings(edges=(url,)).resolved()


def test_edge_urls_are_normalized() -> None:
    assert parse_edge("http://Edge:8080").url == "http://edge:8080/media"
    assert parse_edge("https://cdn.example.com:443/v/").url == "https://cdn.example.com/v"
    settings = Settings(edges=("http://a:1/media/", "http://a:1")).resolved()
    assert settings.edges == ("http://a:1/media",)


def test_purge_settings_are_checked() -> None:
    with pytest.raises(SettingsError):
        Settings(edge_purge="varnish").resolved()
    with pytest.raises(SettingsError):
        Settings(edge_purge="files").resolved()
    assert Settings(edge_purge="files", edge_cache_dirs=("/c",)).resolved().edge_cache_dirs


class _Counting:
    """A loopback TCP listener that only counts the connections it gets."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join(5)
        self.sock.close()


def test_warm_hook_never_requests_outside_the_edge() -> None:
    edge_listener, other = _Counting(), _Counting()
    try:
        edge = parse_edge(f"http://127.0.0.1:{edge_listener.port}/media")
        outside = [
            f"http://127.0.0.1:{other.port}/media/{VID}/{RID}/master.m3u8",
            f"http://localhost:{edge_listener.port}/media/{VID}/{RID}/master.m3u8",
            f"{edge.url}/{VID}/{RID}/../../../admin",
            f"{edge.url}/{VID}/{RID}/master.m3u8?x=http://evil",
            f"{edge.url}@127.0.0.1:{other.port}/{VID}/{RID}/master.m3u8",
            f"{edge.url}/{VID}/{RID}",
            f"{edge.url}/v_x@evil/{RID}/master.m3u8",
        ]
        for url in outside:
            # One bad URL in a batch refuses the whole batch before any connection.
            with pytest.raises(UnsafeTarget):
                HttpWarmHook(timeout_s=2).warm(edge, [media_url(edge, VID, RID, "a.m4s"), url])
        assert edge_listener.accepted == 0 and other.accepted == 0
    finally:
        edge_listener.close()
        other.close()


class _FixedAnswer(http.server.BaseHTTPRequestHandler):
    server: _Answering

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        if self.server.location:
            self.send_header("Location", self.server.location)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"no")

    def log_message(self, *args: Any) -> None:
        pass


class _Answering(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering every GET with one fixed status (and a Location)."""

    def __init__(self, status: int, location: str = "") -> None:
        self.status, self.location = status, location
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _FixedAnswer)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def edge(self) -> Edge:
        return parse_edge(f"http://127.0.0.1:{self.server_address[1]}/media")

    def close(self) -> None:
        self.shutdown()
        self.server_close()


def test_warm_hook_raises_edge_errors_for_retry() -> None:
    refused = parse_edge(f"http://127.0.0.1:{free_port()}/media")
    with pytest.raises(EdgeUnavailable):
        HttpWarmHook(timeout_s=2).warm(refused, [media_url(refused, VID, RID, "master.m3u8")])
    failing = _Answering(503)
    try:
        with pytest.raises(EdgeUnavailable):
            HttpWarmHook(timeout_s=2).warm(
                failing.edge, [media_url(failing.edge, VID, RID, "master.m3u8")]
            )
        assert failing.paths == [f"/media/{VID}/{RID}/master.m3u8"]
    finally:
        failing.close()


def test_warm_hook_does_not_follow_redirects() -> None:
    elsewhere = _Answering(200)
    redirecting = _Answering(302, f"http://127.0.0.1:{elsewhere.server_address[1]}/secret")
    try:
        edge = redirecting.edge
        results = HttpWarmHook(timeout_s=2).warm(edge, [media_url(edge, VID, RID, "x.m4s")])
        assert [r.status for r in results] == [302]
        assert elsewhere.paths == []
    finally:
        redirecting.close()
        elsewhere.close()


def test_cache_purge_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not there"):
        NginxCachePurge([tmp_path / "nope"]).purge(VID)


# -- the whole flow: the app, its worker, a real nginx edge -----------------------------------
def _clip(directory: Path) -> Path:
    """4 s of 540x960 with audio: two video renditions (540, 360) of two segments each."""
    path = directory / "clip540.mp4"
    if not path.exists():
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=540x960:rate=15:duration=4",
            "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=48000:duration=4",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "23", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
        )  # fmt: skip
    return path


@dataclass
class Stack:
    server: LiveServer
    flow: Flow
    creator: Account
    edge_port: int
    edge_dir: Path
    clip: Path

    @property
    def edge_media_url(self) -> str:
        return f"http://127.0.0.1:{self.edge_port}/media"

    def edge(self) -> NginxEdge:
        """A cold edge (empty cache and log) where the app's settings expect it."""
        shutil.rmtree(self.edge_dir, ignore_errors=True)
        return NginxEdge(self.edge_dir, self.server.url, port=self.edge_port)

    def publish(self, privacy: str = "public") -> dict[str, Any]:
        video_id = self.flow.upload_direct(self.creator, self.clip)
        self.flow.publish(self.creator, video_id, privacy=privacy)
        video = self.flow.wait_status(video_id, self.creator)
        assert video["status"] == "published", video
        return dict(video)

    def names(self, video: dict[str, Any]) -> list[str]:
        render_id = video["hls_url"].rsplit("/", 2)[-2]
        return self.server.ctx.jobs.edge.plan(video["id"], render_id).names  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("prewarm")
    edge_port = free_port()
    edge_dir = root / "edge"
    media = f"http://127.0.0.1:{edge_port}/media"
    with (
        live_server(
            root / "data",
            media_url=media,
            edges=(media,),
            edge_purge="files",
            edge_cache_dirs=(str(edge_dir / "cache"),),
        ) as server,
        Flow(server.url) as flow,
    ):
        yield Stack(server, flow, flow.register(), edge_port, edge_dir, _clip(root))


def _uri(video: dict[str, Any], name: str) -> str:
    """The request path of one of the video's files (`/media/{video}/{render}/{name}`)."""
    return urlsplit(video["hls_url"]).path.rsplit("/", 1)[0] + "/" + name


def _warmed(edge: NginxEdge, video: dict[str, Any], names: list[str]) -> bool:
    fetched = {entry["uri"] for entry in edge.log()}
    return all(_uri(video, name) in fetched for name in names)


def test_publish_prewarms_the_edge_for_the_next_viewer(stack: Stack) -> None:
    with stack.edge() as edge:
        video = stack.publish()
        names = stack.names(video)
        assert "master.m3u8" in names and any(n.endswith("00001.m4s") for n in names)
        assert sum(n.endswith("/index.m3u8") for n in names) == 3  # v360, v540, audio
        wait_for(lambda: _warmed(edge, video, names), 30, "the pre-warm of the edge")
        warm_requests = len(edge.origin_requests())
        assert warm_requests == len(names)  # one origin request per warmed file

        # The next viewer: a player's first requests are all answered from the cache.
        for name in names:
            response = httpx.get(edge.url + _uri(video, name))
            assert response.status_code == 200
            assert response.headers["x-cache-status"] == "HIT", name
        assert len(edge.origin_requests()) == warm_requests
        # Only the start was warmed: the second segment is still cold.
        later = next(n for n in names if n.endswith("00001.m4s")).replace("00001", "00002")
        cold = httpx.get(edge.url + _uri(video, later))
        assert cold.status_code == 200 and cold.headers["x-cache-status"] == "MISS"


def test_publish_succeeds_with_the_edge_down_and_the_retry_warms_it(stack: Stack) -> None:
    # Nothing listens on the edge's port: the pre-warm job fails with connection refused.
    video = stack.publish()
    names = stack.names(video)
    with stack.edge() as edge:
        # Dramatiq retries with backoff (1 s, 2 s, 4 s, ... with jitter).
        wait_for(lambda: _warmed(edge, video, names), 60, "the retried pre-warm")
        master = httpx.get(edge.url + _uri(video, "master.m3u8"))
        assert master.headers["x-cache-status"] == "HIT"


def test_delete_purges_the_video_from_the_edge(stack: Stack) -> None:
    with stack.edge() as edge:
        video = stack.publish()
        names = stack.names(video)
        wait_for(lambda: _warmed(edge, video, names), 30, "the pre-warm of the edge")
        assert httpx.get(edge.url + _uri(video, "master.m3u8")).headers["x-cache-status"] == ("HIT")
        stack.flow.delete_video(stack.creator, video["id"])

        def purged() -> bool:
            return not any(
                f"/{video['id']}/".encode() in path.read_bytes()[:4096]
                for path in edge.cache_dir.rglob("*")
                if path.is_file()
            )

        wait_for(purged, PURGE_DELAY_MS / 1000 + 20, "the purge of the edge's cache")
        for name in ("master.m3u8", names[-1]):
            gone = httpx.get(edge.url + _uri(video, name))
            assert gone.headers["x-cache-status"] == "MISS"
            assert gone.status_code == 404


def test_prewarm_requests_only_for_public_videos_and_configured_edges(stack: Stack) -> None:
    jobs: Any = stack.server.ctx.jobs
    settings = stack.server.settings
    with stack.edge() as edge:
        private = seed_video(settings, stack.creator.id, privacy="private")
        unlisted = seed_video(settings, stack.creator.id, privacy="unlisted")
        assert jobs.edge.prewarm(private, stack.edge_media_url) == []
        assert jobs.edge.prewarm(unlisted, stack.edge_media_url) == []
        assert jobs.edge.prewarm("v_doesnotexist00", stack.edge_media_url) == []
        assert jobs.edge.prewarm(private, "http://169.254.169.254/media") == []
        with pytest.raises(UnsafeTarget):
            jobs.edge.prewarm("v_x@169.254.169.254", stack.edge_media_url)
        assert edge.log() == []


def test_warm_is_enqueued_once_per_video_and_edge(stack: Stack) -> None:
    jobs: Any = stack.server.ctx.jobs
    recorder = record_jobs(stack.server.app)
    video_id = seed_video(stack.server.settings, stack.creator.id)
    assert jobs.warm(video_id) == 1
    assert jobs.warm(video_id) == 0  # the feed may call it on every ranking
    assert recorder.of("prewarm_video") == [(video_id, stack.edge_media_url)]


class _SlowCountingHook:
    """A warm hook (the protocol is pluggable) that takes its time and counts overlaps."""

    def __init__(self) -> None:
        self.running = self.most = 0
        self.lock = threading.Lock()

    def warm(self, edge: Edge, urls: Any) -> list[Any]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.2)
        with self.lock:
            self.running -= 1
        return []


def test_prewarm_concurrency_is_bounded_per_process(stack: Stack) -> None:
    settings = replace(stack.server.settings, prewarm_concurrency=2)
    hook = _SlowCountingHook()
    jobs = EdgeJobs(settings, Runtime(settings), warm_hook=hook)
    video_ids = [seed_video(settings, stack.creator.id) for _ in range(8)]
    threads = [
        threading.Thread(target=jobs.prewarm, args=(video_id, stack.edge_media_url))
        for video_id in video_ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert hook.most == 2
