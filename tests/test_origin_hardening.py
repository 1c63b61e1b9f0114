"""Origin hardening (issue 4, "Origin hardening"): api/media/origin.py never reads outside the
media root, answers every "not here" with one 404, and follows RFC 9110 §14 on ranges.

Every test runs twice: over real HTTP against the app under uvicorn (`live_server`), with
request targets written byte for byte on a socket (an HTTP client library would normalise
``..`` away before sending), and in-process, with the same raw targets handed to the ASGI app
as uvicorn would (``path`` percent-decoded once, ``raw_path`` as sent).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from api.core.db import new_id, now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import users, videos
from api.media.playback import playback_prefix
from cdn.origin import IMMUTABLE, http_date
from cdn.storage import LocalStorage, Storage
from tests.support.api import api_client, seed_video
from tests.support.rawhttp import Reply, Send, asgi_sender, http_sender
from tests.support.uploads import live_server

NOT_FOUND = {"error": {"code": "not_found", "message": "not found"}}
RENDER = "r_seed"
SEGMENT = secrets.token_bytes(1000)
OUTSIDE = b"OUTSIDE-THE-MEDIA-ROOT " + secrets.token_hex(8).encode()
UPLOAD = b"UPLOADED-SOURCE-BYTES " + secrets.token_hex(8).encode()


@dataclass(frozen=True)
class World:
    """One running app with seeded videos, and a way to send it raw request targets."""

    transport: str
    send: Send
    settings: Settings
    storage: Storage
    public: str
    unlisted: str
    private: str
    hidden: dict[str, str]  # case → a video id whose objects exist but must not be served
    secret_key: bytes

    def get(self, target: str, **headers: str) -> Reply:
        return self.send("GET", target, headers)

    def media(self, video_id: str, path: str, render: str = RENDER) -> str:
        return f"/media/{video_id}/{render}/{path}"


# --------------------------------------------------------------------------- seeding


def insert_user(settings: Settings) -> str:
    engine = sync_engine(settings)
    user_id = new_id("u")
    with engine.begin() as conn:
        conn.execute(
            insert(users).values(
                id=user_id,
                handle=user_id.replace("_", ""),
                display_name="hardening",
                password_hash="-",
                role="user",
                created_at=now_ms(),
            )
        )
    engine.dispose()
    return user_id


def store_media(storage: Storage, video_id: str) -> None:
    prefix = f"media/{video_id}/{RENDER}"
    storage.put_bytes(f"{prefix}/master.m3u8", b"#EXTM3U\nv360/index.m3u8\n")
    storage.put_bytes(f"{prefix}/v360/init.mp4", b"\x00\x00\x00\x18ftypiso6")
    storage.put_bytes(f"{prefix}/v360/00001.m4s", SEGMENT)


def seed(settings: Settings, storage: Storage, outside: Path) -> dict[str, Any]:
    owner = insert_user(settings)
    ids: dict[str, Any] = {}
    for name in ("public", "unlisted", "private"):
        ids[name] = seed_video(settings, owner, privacy=name, render_id=RENDER)
        store_media(storage, ids[name])
    storage.put_bytes(f"uploads/{ids['public']}/000000000000", UPLOAD)

    hidden: dict[str, str] = {}
    engine = sync_engine(settings)
    for status in ("processing", "rejected", "deleted"):
        vid = seed_video(settings, owner, status=status, render_id=RENDER)
        with engine.begin() as conn:  # the objects are there, the render id even matches
            conn.execute(update(videos).where(videos.c.id == vid).values(render_id=RENDER))
        store_media(storage, vid)
        hidden[status] = vid
    engine.dispose()
    hidden["unknown"] = new_id("v")
    ids["hidden"] = hidden

    # Links inside the local media root that lead out of it: one file, one directory.
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "escape.m4s").write_bytes(OUTSIDE)
    (outside / "init.mp4").write_bytes(OUTSIDE)
    rendition = settings.origin_dir / "media" / ids["public"] / RENDER
    os.symlink(outside / "escape.m4s", rendition / "v360" / "escape.m4s")
    os.symlink(outside, rendition / "vout", target_is_directory=True)
    return ids


def make_world(
    transport: str, send: Send, settings: Settings, storage: Storage, ids: dict[str, Any]
) -> World:
    return World(
        transport=transport,
        send=send,
        settings=settings,
        storage=storage,
        public=ids["public"],
        unlisted=ids["unlisted"],
        private=ids["private"],
        hidden=ids["hidden"],
        secret_key=(settings.data_dir / "secret.key").read_bytes(),
    )


@contextmanager
def http_world(base: Path) -> Iterator[World]:
    with live_server(base / "data") as server:
        storage = server.ctx.storage
        ids = seed(server.settings, storage, base / "outside")
        yield make_world("http", http_sender(server.url), server.settings, storage, ids)


@contextmanager
def asgi_world(base: Path) -> Iterator[World]:
    with api_client(base / "data") as client:
        ctx = client.app.state.ctx
        ids = seed(ctx.settings, ctx.storage, base / "outside")
        yield make_world("in-process", asgi_sender(client), ctx.settings, ctx.storage, ids)


@pytest.fixture(scope="module", params=["http", "in-process"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    base = tmp_path_factory.mktemp(f"hardening-{request.param}")
    factory = http_world if request.param == "http" else asgi_world
    with factory(base) as built:
        assert isinstance(built.storage, LocalStorage)
        yield built


def assert_nothing_leaked(world: World, reply: Reply) -> None:
    for mark in (OUTSIDE, UPLOAD, world.secret_key):
        assert mark not in reply.body, reply


# ------------------------------------------------------------------------ traversal


def test_the_seeded_media_is_served(world: World) -> None:
    """The control: the same video's files are there and served, so every 404 below is
    the origin refusing, not a broken setup."""
    reply = world.get(world.media(world.public, "v360/00001.m4s"))
    assert reply.status == 200 and reply.body == SEGMENT
    assert reply.headers["cache-control"] == IMMUTABLE


TRAVERSALS = [
    # literal dot segments (sent as is: no client normalised them)
    "../../../../secret.key",
    "v360/../../../../secret.key",
    "../../../uploads/VID/000000000000",
    "./master.m3u8",
    # percent-encoded dots and slashes
    "%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.key",
    "%2E%2E/%2E%2E/%2E%2E/uploads/VID/000000000000",
    "..%2f..%2f..%2f..%2fsecret.key",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2fuploads%2fVID%2f000000000000",
    "v360%2f..%2f..%2f..%2f..%2fsecret.key",
    # double-encoded (decoded once by the server, never twice by us)
    "%252e%252e/%252e%252e/%252e%252e/%252e%252e/secret.key",
    "%252e%252e%252f%252e%252e%252fsecret.key",
    "%25252e%25252e/secret.key",
    # backslashes, raw and encoded
    "..\\..\\..\\..\\secret.key",
    "%5c..%5c..%5c..%5c..%5csecret.key",
    "v360%5Cinit.mp4",
    # absolute paths
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "//etc/passwd",
    # NUL and control characters
    "master.m3u8%00.jpg",
    "%00../../../secret.key",
    "master.m3u8%0d%0aX-Injected:%201",
    # overlong UTF-8 dot (0xC0 0xAE), full-width dots
    "%c0%ae%c0%ae/%c0%ae%c0%ae/secret.key",
    "%ef%bc%8e%ef%bc%8e/secret.key",
    # hidden, temporary and internal files
    ".rf-tmp-0123456789abcdef-master.m3u8",
    "report.json",
    # a token segment is not a way around the path rules
    "~k0.zzzzzz.AAAAAAAAAAAAAAAAAAAAAA/../../../secret.key",
    "~k0.zzzzzz.AAAAAAAAAAAAAAAAAAAAAA/%2e%2e/%2e%2e/secret.key",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_one_404(world: World, path: str) -> None:
    target = world.media(world.public, path.replace("VID", world.public))
    for method in ("GET", "HEAD"):
        reply = world.send(method, target, {})
        assert reply.status == 404, (target, reply)
        if method == "GET":
            assert reply.json() == NOT_FOUND
        assert_nothing_leaked(world, reply)
        assert "x-injected" not in reply.headers


@pytest.mark.parametrize(
    "target",
    [
        "/media/..%2f..%2fsecret.key/r_seed/master.m3u8",
        "/media/%2e%2e/%2e%2e/secret.key",
        "/media/VID/..%2f..%2f..%2fsecret.key/master.m3u8",
        "/media/VID/%2e%2e/v360/00001.m4s",
        "/media/VID/r_seed/..",
        "/media/../secret.key",
    ],
)
def test_traversal_through_the_ids_is_404(world: World, target: str) -> None:
    reply = world.get(target.replace("VID", world.public))
    assert reply.status == 404, reply
    assert reply.json() == NOT_FOUND
    assert_nothing_leaked(world, reply)


@pytest.mark.parametrize(
    "path", ["v360/escape.m4s", "vout/init.mp4", "vout/escape.m4s", "~TOKEN/v360/escape.m4s"]
)
def test_symlinks_out_of_the_root_are_404(world: World, path: str) -> None:
    rendition = world.settings.origin_dir / "media" / world.public / RENDER
    # The links are really there and really lead outside.
    assert (rendition / "v360" / "escape.m4s").is_symlink()
    assert (rendition / "vout").is_symlink()
    assert (rendition / "vout" / "init.mp4").read_bytes() == OUTSIDE
    if path.startswith("~TOKEN"):
        base = playback_prefix(world.settings, world.unlisted, RENDER, "unlisted", "u_x")
        token = base.rsplit("/", 1)[1]
        os.symlink(
            world.settings.origin_dir.parent.parent / "outside" / "escape.m4s",
            world.settings.origin_dir / "media" / world.unlisted / RENDER / "v360" / "escape.m4s",
        )
        target = world.media(world.unlisted, path.replace("~TOKEN", token))
    else:
        target = world.media(world.public, path)
    for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"Range": "bytes=0-9"})):
        reply = world.send(method, target, headers)
        assert reply.status == 404, (target, method, reply)
        if method == "GET":
            assert reply.json() == NOT_FOUND
        assert_nothing_leaked(world, reply)


# ------------------------------------------------------------------------ one 404


@pytest.mark.parametrize(
    "case", ["unknown", "processing", "rejected", "deleted", "wrong-render", "unknown+token"]
)
def test_not_served_is_one_404(world: World, case: str) -> None:
    reference = world.get(world.media(world.hidden["unknown"], "master.m3u8"))
    if case == "wrong-render":
        world.storage.put_bytes(f"media/{world.public}/r_other/master.m3u8", b"#EXTM3U\n")
        target = world.media(world.public, "master.m3u8", render="r_other")
    elif case == "unknown+token":
        vid = world.hidden["unknown"]
        base = playback_prefix(world.settings, vid, RENDER, "unlisted", "u_x")
        target = world.media(vid, base.rsplit("/", 1)[1] + "/master.m3u8")
    else:
        vid = world.hidden[case]
        if case != "unknown":
            assert world.storage.exists(f"media/{vid}/{RENDER}/master.m3u8")
        target = world.media(vid, "master.m3u8")

    reply = world.get(target)

    assert reply.status == 404
    assert reply.body == reference.body and reply.json() == NOT_FOUND
    assert reply.headers.get("content-type") == reference.headers.get("content-type")
    assert world.send("HEAD", target, {}).status == 404


# --------------------------------------------------------------------------- ranges

SIZE = len(SEGMENT)
RANGES = [
    # (Range, status, first, last): 206 serves SEGMENT[first:last + 1]
    ("bytes=0-99", 206, 0, 99),
    ("bytes=-100", 206, SIZE - 100, SIZE - 1),  # suffix
    (f"bytes=-{SIZE + 500}", 206, 0, SIZE - 1),  # suffix longer than the representation
    ("bytes=900-", 206, 900, SIZE - 1),  # open-ended
    (f"bytes={SIZE - 1}-", 206, SIZE - 1, SIZE - 1),
    (f"bytes=100-{SIZE + 50}", 206, 100, SIZE - 1),  # last past the end: clamped
    ("BYTES=10-19", 206, 10, 19),  # the unit is case-insensitive (§14.1)
    (f"bytes={SIZE}-", 416, 0, 0),  # first past the end
    (f"bytes={SIZE + 100}-{SIZE + 200}", 416, 0, 0),
    ("bytes=-0", 416, 0, 0),  # an empty suffix selects nothing
    ("bytes=0-9,20-29", 200, 0, SIZE - 1),  # several ranges: the whole (§14.2 MAY ignore)
    ("bytes=0-9, -5", 200, 0, SIZE - 1),
    ("bytes=50-10", 200, 0, SIZE - 1),  # invalid range-set: ignored
    ("bytes=abc", 200, 0, SIZE - 1),
    ("items=0-9", 200, 0, SIZE - 1),  # unknown unit: ignored
]


@pytest.mark.parametrize(("header", "status", "first", "last"), RANGES)
def test_range(world: World, header: str, status: int, first: int, last: int) -> None:
    reply = world.get(world.media(world.public, "v360/00001.m4s"), Range=header)
    assert reply.status == status, (header, reply.status, reply.headers)
    if status == 206:
        assert reply.body == SEGMENT[first : last + 1]
        assert reply.headers["content-range"] == f"bytes {first}-{last}/{SIZE}"
        assert reply.headers["content-length"] == str(last - first + 1)
    elif status == 416:
        assert reply.headers["content-range"] == f"bytes */{SIZE}"  # RFC 9110 §15.5.17
        assert reply.body == b""
    else:
        assert reply.body == SEGMENT
        assert "content-range" not in reply.headers
        assert not reply.headers["content-type"].startswith("multipart/")
        assert reply.headers["content-length"] == str(SIZE)


def test_head_ignores_range(world: World) -> None:
    reply = world.send("HEAD", world.media(world.public, "v360/00001.m4s"), {"Range": "bytes=0-9"})
    assert reply.status == 200 and reply.body == b""
    assert reply.headers["content-length"] == str(SIZE)


def test_if_range(world: World) -> None:
    """RFC 9110 §13.1.5: Range applies only when If-Range matches (strongly, or the exact
    Last-Modified date); otherwise the whole representation comes back with 200."""
    target = world.media(world.public, "v360/00001.m4s")
    info = world.storage.stat(f"media/{world.public}/{RENDER}/v360/00001.m4s")
    ranged = {"Range": "bytes=0-9"}

    match = world.send("GET", target, {**ranged, "If-Range": info.etag})
    assert match.status == 206 and match.body == SEGMENT[:10]
    by_date = world.send("GET", target, {**ranged, "If-Range": http_date(info.last_modified)})
    assert by_date.status == 206 and by_date.body == SEGMENT[:10]

    for stale in ('"not-the-etag"', "W/" + info.etag, http_date(info.last_modified - 3600)):
        reply = world.send("GET", target, {**ranged, "If-Range": stale})
        assert reply.status == 200, (stale, reply.status)
        assert reply.body == SEGMENT and "content-range" not in reply.headers


def test_signed_media_follow_the_same_range_rules(world: World) -> None:
    base = playback_prefix(world.settings, world.unlisted, RENDER, "unlisted", "u_x")
    target = world.media(world.unlisted, base.rsplit("/", 1)[1] + "/v360/00001.m4s")
    tail = world.get(target, Range="bytes=-10")
    assert tail.status == 206 and tail.body == SEGMENT[-10:]
    assert tail.headers["cache-control"].startswith("private")
    past = world.get(target, Range=f"bytes={SIZE}-")
    assert past.status == 416 and past.headers["content-range"] == f"bytes */{SIZE}"
    several = world.get(target, Range="bytes=0-1,5-6")
    assert several.status == 200 and several.body == SEGMENT
