"""Only plain media paths are served (issue 16, item 7; README "origin").

A media URL is `/media/{video_id}/{render_id}/{path}` written exactly so: the router used to
fold `v360//init.mp4`, `master.m3u8/` or `v360%2Finit.mp4` into the plain path and serve the
file. Anything that is not the plain path as sent (an empty segment, a trailing slash, a
percent-encoded character of any kind) gets the one 404 of a missing file. Run on both
storage modes the origin has (a local directory, and S3 spoken to moto's server), each over
real HTTP (uvicorn, targets written byte for byte) and in-process.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import insert

from api.core.db import new_id, now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import users
from cdn.storage import Storage
from tests.support.api import api_client, seed_video
from tests.support.rawhttp import Reply, Send, asgi_sender, http_sender
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, start_moto
from tests.support.uploads import live_server

NOT_FOUND = {"error": {"code": "not_found", "message": "not found"}}
RENDER = "r_seed"
SEGMENT = secrets.token_bytes(700)
INIT = b"\x00\x00\x00\x18ftypiso6" + secrets.token_bytes(16)
MASTER = b"#EXTM3U\nv360/index.m3u8\n"


@dataclass(frozen=True)
class Origin:
    send: Send
    video: str

    def get(self, path: str, method: str = "GET") -> Reply:
        return self.send(method, f"/media/{self.video}/{RENDER}/{path}", {})


def seed(settings: Settings, storage: Storage) -> str:
    engine = sync_engine(settings)
    owner = new_id("u")
    with engine.begin() as conn:
        conn.execute(
            insert(users).values(
                id=owner,
                handle=owner.replace("_", ""),
                display_name="plain",
                password_hash="-",
                role="user",
                created_at=now_ms(),
            )
        )
    engine.dispose()
    video = seed_video(settings, owner, render_id=RENDER)
    prefix = f"media/{video}/{RENDER}"
    storage.put_bytes(f"{prefix}/master.m3u8", MASTER)
    storage.put_bytes(f"{prefix}/v360/init.mp4", INIT)
    storage.put_bytes(f"{prefix}/v360/00001.m4s", SEGMENT)
    return video


@contextmanager
def s3_overrides(stack: ExitStack) -> Iterator[dict[str, Any]]:
    server, endpoint = start_moto()
    stack.callback(server.stop)
    yield {
        "storage": "s3",
        "s3_endpoint": endpoint,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
        "s3_bucket": "plain-" + secrets.token_hex(4),
    }


@pytest.fixture(
    scope="module",
    params=[("local", "http"), ("local", "in-process"), ("s3", "http"), ("s3", "in-process")],
    ids=lambda p: "-".join(p),
)
def origin(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Origin]:
    storage, transport = request.param
    data_dir = tmp_path_factory.mktemp(f"plain-{storage}-{transport}") / "data"
    with ExitStack() as stack:
        overrides = stack.enter_context(s3_overrides(stack)) if storage == "s3" else {}
        if transport == "http":
            server = stack.enter_context(live_server(data_dir, **overrides))
            ctx, send = server.ctx, http_sender(server.url)
        else:
            client = stack.enter_context(api_client(data_dir, **overrides))
            ctx, send = client.app.state.ctx, asgi_sender(client)
        assert type(ctx.storage).__name__ == ("S3Storage" if storage == "s3" else "LocalStorage")
        yield Origin(send, seed(ctx.settings, ctx.storage))


@pytest.mark.parametrize(
    ("path", "body"),
    [("master.m3u8", MASTER), ("v360/init.mp4", INIT), ("v360/00001.m4s", SEGMENT)],
    ids=["master", "init", "segment"],
)
def test_plain_paths_are_served(origin: Origin, path: str, body: bytes) -> None:
    """The control: the files are there and served under their plain paths (a query
    string is not part of the path)."""
    for target in (path, f"{path}?v=1"):
        reply = origin.get(target)
        assert reply.status == 200 and reply.body == body, (target, reply)


NOT_PLAIN = [
    "v360//init.mp4",  # an empty segment
    "v360///init.mp4",
    "/master.m3u8",  # an empty first segment
    "master.m3u8/",  # a trailing slash
    "v360/init.mp4//",
    "v360/00001.m4s/",
    "v360/./init.mp4",  # a dot segment
    "v360/../master.m3u8",
    "v360%2finit.mp4",  # an encoded slash
    "v360%2Finit.mp4",
    "master.m3u8%2f",
    "%6daster.m3u8",  # an encoded letter: the plain path is written plainly
    "master%2em3u8",
]


@pytest.mark.parametrize("path", NOT_PLAIN)
def test_a_path_that_is_not_plain_is_the_404_of_a_missing_file(origin: Origin, path: str) -> None:
    missing = origin.get("v360/missing.m4s")
    assert missing.status == 404 and missing.json() == NOT_FOUND
    for method in ("GET", "HEAD"):
        reply = origin.get(path, method)
        assert reply.status == 404, (path, method, reply)
        assert reply.headers.get("content-type") == missing.headers.get("content-type")
        if method == "GET":
            assert reply.body == missing.body
        assert INIT not in reply.body and SEGMENT not in reply.body and MASTER not in reply.body


@pytest.mark.parametrize(
    "target",
    [
        "/media/{vid}//r_seed/master.m3u8",
        "/media//{vid}/r_seed/master.m3u8",
        "//media/{vid}/r_seed/master.m3u8",
        "/media/{vid}/r_seed//master.m3u8",
        "/media/{vid}%2fr_seed/master.m3u8",
        "/media/%76{tail}/r_seed/master.m3u8",  # %76 is the id's own "v"
        "/media/{vid}/r%5fseed/master.m3u8",
    ],
)
def test_the_ids_must_be_plain_too(origin: Origin, target: str) -> None:
    assert origin.video.startswith("v")
    reply = origin.send("GET", target.format(vid=origin.video, tail=origin.video[1:]), {})
    assert reply.status == 404, (target, reply)
    assert reply.json() == NOT_FOUND
