"""The origin route (api/media/origin.py) on a really transcoded and published video.

Issue 3, "Origin serving": right Content-Type, immutable caching for segments and posters,
short caching for manifests, ETag/If-None-Match → 304, Range → 206, CORS; media of
unpublished videos is never served, and nothing tells which 404 is which. Private and
unlisted media need a playback token (issue 4: tests/test_signed_playback.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import Engine, insert, update

from api.core.context import AppContext
from api.core.db import new_id, now_ms, sync_engine
from api.core.tables import users, videos
from api.jobs.transcode import Runtime
from api.media.origin import VISIBILITY_TTL_S, object_key
from api.media.playback import playback_keyring
from cdn.origin import IMMUTABLE, MANIFEST
from cdn.signing import expiry
from engine.sample import make_sample
from tests.support.api import api_client, auth, register, seed_video
from tests.support.jobs import stage_video, video_row

NOT_FOUND = {"error": {"code": "not_found", "message": "not found"}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    with api_client(tmp_path_factory.mktemp("origin")) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def ctx(client: TestClient[Any]) -> AppContext:
    context: AppContext = client.app.state.ctx
    return context


@pytest.fixture(scope="module")
def db(ctx: AppContext) -> Iterator[Engine]:
    engine = sync_engine(ctx.settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def owner(db: Engine) -> str:
    user_id = new_id("u")
    with db.begin() as conn:
        conn.execute(
            insert(users).values(
                id=user_id,
                handle=user_id.replace("_", ""),
                display_name="origin",
                password_hash="-",
                role="user",
                created_at=now_ms(),
            )
        )
    return user_id


@pytest.fixture(scope="module")
def published(
    ctx: AppContext, db: Engine, owner: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """(video id, render id) of a clip transcoded and published by the real job."""
    clip = make_sample(
        tmp_path_factory.mktemp("origin-clip") / "clip.mp4", seconds=3, width=360, height=640
    )
    vid = stage_video(db, ctx.storage, owner, clip)
    runtime = Runtime(ctx.settings)
    try:
        runtime.process(vid)
    finally:
        runtime.close()
    row = video_row(db, vid)
    assert row.status == "published", row.status_reason
    return vid, str(row.render_id)


def stored(ctx: AppContext, key: str) -> bytes:
    return b"".join(ctx.storage.open_range(key))


def url(vid: str, render: str, path: str) -> str:
    return f"/media/{vid}/{render}/{path}"


def first_segment(ctx: AppContext, vid: str, render: str) -> str:
    prefix = f"media/{vid}/{render}/"
    return next(i.key for i in ctx.storage.list(prefix) if i.key.endswith(".m4s"))[len(prefix) :]


# ------------------------------------------------------------------------- serving


@pytest.mark.parametrize(
    ("path", "content_type", "cache_control"),
    [
        ("master.m3u8", "application/vnd.apple.mpegurl", MANIFEST),
        ("manifest.mpd", "application/dash+xml", MANIFEST),
        ("v360/index.m3u8", "application/vnd.apple.mpegurl", MANIFEST),
        ("v360/init.mp4", "video/mp4", IMMUTABLE),
        ("segment", "video/iso.segment", IMMUTABLE),
        ("poster.jpg", "image/jpeg", IMMUTABLE),
        ("storyboard.vtt", "text/vtt", IMMUTABLE),
        ("download.mp4", "video/mp4", IMMUTABLE),
    ],
)
def test_published_files_are_served_with_their_headers(
    client: TestClient[Any],
    ctx: AppContext,
    published: tuple[str, str],
    path: str,
    content_type: str,
    cache_control: str,
) -> None:
    vid, render = published
    if path == "segment":
        path = first_segment(ctx, vid, render)
    key = f"media/{vid}/{render}/{path}"
    info = ctx.storage.stat(key)

    response = client.get(url(vid, render, path), headers={"Origin": "https://player.example"})

    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.headers["cache-control"] == cache_control
    assert response.headers["etag"] == info.etag
    assert response.headers["content-length"] == str(info.size)
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == stored(ctx, key)
    if path == "poster.jpg":
        assert response.content[:3] == b"\xff\xd8\xff"


def test_master_playlist_names_files_the_origin_serves(
    client: TestClient[Any], published: tuple[str, str]
) -> None:
    vid, render = published
    master = client.get(url(vid, render, "master.m3u8")).text
    assert master.startswith("#EXTM3U")
    variants = [line for line in master.splitlines() if line and not line.startswith("#")]
    assert variants
    for variant in variants:
        playlist = client.get(url(vid, render, variant))
        assert playlist.status_code == 200
        folder = variant.rsplit("/", 1)[0]
        for line in playlist.text.splitlines():
            if line.endswith(".m4s"):
                assert client.head(url(vid, render, f"{folder}/{line}")).status_code == 200


def test_if_none_match_gives_304(
    client: TestClient[Any], ctx: AppContext, published: tuple[str, str]
) -> None:
    vid, render = published
    segment = first_segment(ctx, vid, render)
    etag = client.get(url(vid, render, segment)).headers["etag"]

    response = client.get(url(vid, render, segment), headers={"If-None-Match": etag})

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == etag
    assert response.headers["cache-control"] == IMMUTABLE
    stale = client.get(url(vid, render, segment), headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200


def test_range_gives_206_and_416(
    client: TestClient[Any], ctx: AppContext, published: tuple[str, str]
) -> None:
    vid, render = published
    segment = first_segment(ctx, vid, render)
    whole = stored(ctx, f"media/{vid}/{render}/{segment}")
    size = len(whole)

    head = client.get(url(vid, render, segment), headers={"Range": "bytes=0-99"})
    assert head.status_code == 206
    assert head.headers["content-range"] == f"bytes 0-99/{size}"
    assert head.headers["content-length"] == "100"
    assert head.content == whole[:100]

    tail = client.get(url(vid, render, segment), headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]

    middle = client.get(url(vid, render, segment), headers={"Range": f"bytes=100-{size + 50}"})
    assert middle.status_code == 206 and middle.content == whole[100:]

    past = client.get(url(vid, render, segment), headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{size}"
    assert past.content == b""


def test_head_has_the_get_fields_and_no_body(
    client: TestClient[Any], ctx: AppContext, published: tuple[str, str]
) -> None:
    vid, render = published
    info = ctx.storage.stat(f"media/{vid}/{render}/poster.jpg")

    response = client.head(url(vid, render, "poster.jpg"))

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(info.size)
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["etag"] == info.etag


def test_cors_preflight(client: TestClient[Any], published: tuple[str, str]) -> None:
    vid, render = published
    response = client.options(
        url(vid, render, "master.m3u8"),
        headers={
            "Origin": "https://player.example",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "range",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "GET" in response.headers["access-control-allow-methods"]
    assert "Range" in response.headers["access-control-allow-headers"]


def test_mp4_url_is_served_with_ranges_public_and_signed(
    client: TestClient[Any], ctx: AppContext, published: tuple[str, str]
) -> None:
    """`mp4_url` (issue 12, "An MP4 for sharing"): a faststart MP4 a player can seek in with
    Range requests, under a plain URL when public and a signed one when private."""
    vid, render = published
    settings = ctx.settings
    body = client.get(f"/v1/videos/{vid}").json()
    assert body["mp4_url"] == f"{settings.media_url}/{vid}/{render}/download.mp4"
    whole = stored(ctx, f"media/{vid}/{render}/download.mp4")
    assert whole[4:8] == b"ftyp" and b"moov" in whole[:4096]  # moov up front

    def fetch_range(mp4_url: str) -> Any:
        path = mp4_url.removeprefix(settings.public_url)
        response = client.get(path, headers={"Range": "bytes=0-1023"})
        assert response.status_code == 206, response.text
        assert response.headers["content-type"] == "video/mp4"
        assert response.headers["content-range"] == f"bytes 0-1023/{len(whole)}"
        assert response.content == whole[:1024]
        tail = client.get(path, headers={"Range": f"bytes={len(whole) - 100}-"})
        assert tail.status_code == 206 and tail.content == whole[-100:]
        return response

    assert fetch_range(body["mp4_url"]).headers["cache-control"] == IMMUTABLE

    # The same file behind a private video: only under the owner's signed URL.
    owner_id, owner = register(client)
    private = seed_video(settings, owner_id, privacy="private", render_id="r_seed")
    ctx.storage.put_bytes(f"media/{private}/r_seed/download.mp4", whole)
    signed = client.get(f"/v1/videos/{private}", headers=auth(owner)).json()["mp4_url"]
    prefix = f"{settings.media_url}/{private}/r_seed/~"
    assert signed.startswith(prefix) and signed.endswith("/download.mp4")
    assert fetch_range(signed).headers["cache-control"].startswith("private")
    unsigned = url(private, "r_seed", "download.mp4")
    assert client.get(unsigned, headers={"Range": "bytes=0-1023"}).status_code == 403


# ------------------------------------------------------------------- never served


def seed_with_media(ctx: AppContext, owner: str, **row: Any) -> str:
    """A seeded video row with a master playlist stored under its render prefix."""
    vid = seed_video(ctx.settings, owner, render_id="r_seed", **row)
    ctx.storage.put_bytes(f"media/{vid}/r_seed/master.m3u8", b"#EXTM3U\n")
    return vid


def test_unlisted_is_served_with_its_token(
    client: TestClient[Any], ctx: AppContext, owner: str
) -> None:
    vid = seed_with_media(ctx, owner, privacy="unlisted")
    assert client.get(url(vid, "r_seed", "master.m3u8")).status_code == 403
    token = playback_keyring(ctx.settings).sign(vid, expiry(time.time(), 60))
    assert client.get(url(vid, "r_seed", f"~{token}/master.m3u8")).status_code == 200


@pytest.mark.parametrize(
    "case", ["processing", "rejected", "deleted", "wrong-render", "unknown-video"]
)
def test_not_served_is_one_404(
    client: TestClient[Any], ctx: AppContext, db: Engine, owner: str, case: str
) -> None:
    if case in ("processing", "rejected", "deleted"):
        vid, render = seed_with_media(ctx, owner, status=case), "r_seed"
        with db.begin() as conn:  # the objects are there, the render id even matches
            conn.execute(update(videos).where(videos.c.id == vid).values(render_id="r_seed"))
    elif case == "wrong-render":
        vid = seed_with_media(ctx, owner)
        ctx.storage.put_bytes(f"media/{vid}/r_other/master.m3u8", b"#EXTM3U\n")
        render = "r_other"
    else:
        vid, render = new_id("v"), "r_seed"
    assert ctx.storage.exists(f"media/{vid}/{render}/master.m3u8") or case == "unknown-video"

    for method in ("GET", "HEAD"):
        response = client.request(method, url(vid, render, "master.m3u8"))
        assert response.status_code == 404
        if method == "GET":
            assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/%2e%2e/uploads/VID/000000000000",
        "..%2F..%2F..%2Fuploads%2FVID%2F000000000000",
        "v360%2F..%2F..%2F..%2F..%2Fsecret.key",
        "%2e%2e%5c%2e%2e%5cmaster.m3u8",
        "v360%5Cinit.mp4",
        "%2Fetc%2Fpasswd",
        ".%2Fmaster.m3u8",
        "v360/.rf-tmp-abc-init.mp4",
        "report.json",
        "master.m3u8%00.jpg",
        "master.m3u8%0A",
    ],
)
def test_bad_paths_are_404(
    client: TestClient[Any], ctx: AppContext, published: tuple[str, str], path: str
) -> None:
    vid, render = published
    assert ctx.storage.exists(f"uploads/{vid}/000000000000")
    response = client.get(url(vid, render, path.replace("VID", vid)))
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize(
    ("video_id", "render_id", "path", "expected"),
    [
        ("v_abc", "r_def", "/v360/00001.m4s", "media/v_abc/r_def/v360/00001.m4s"),
        ("v_abc", "r_def", "master.m3u8", "media/v_abc/r_def/master.m3u8"),
        ("v_abc", "r_def", "/../x.m3u8", None),
        ("v_abc", "r_def", "/a/./x.m3u8", None),
        ("v_abc", "r_def", "/a//x.m3u8", None),
        ("v_abc", "r_def", "/a\\x.m3u8", None),
        ("v_abc", "r_def", "/report.json", None),
        ("v_abc", "r_def", "/x.m3u8/", None),
        ("../v", "r_def", "/x.m3u8", None),
        ("v_abc", "R_DEF", "/x.m3u8", None),
    ],
)
def test_object_key(video_id: str, render_id: str, path: str, expected: str | None) -> None:
    assert object_key(video_id, render_id, path) == expected


def test_privacy_change_takes_effect_within_the_cache_ttl(
    client: TestClient[Any], ctx: AppContext, db: Engine, owner: str
) -> None:
    vid = seed_with_media(ctx, owner)
    assert client.get(url(vid, "r_seed", "master.m3u8")).status_code == 200
    with db.begin() as conn:
        conn.execute(update(videos).where(videos.c.id == vid).values(privacy="private"))

    time.sleep(VISIBILITY_TTL_S + 0.3)

    # 403: a private video needs a playback token (issue 4, api/media/origin.py).
    assert client.get(url(vid, "r_seed", "master.m3u8")).status_code == 403


def test_video_deleted_and_cleaned_is_gone(
    client: TestClient[Any], ctx: AppContext, db: Engine, owner: str, tmp_path: Path
) -> None:
    vid = seed_with_media(ctx, owner)
    assert client.get(url(vid, "r_seed", "master.m3u8")).status_code == 200
    with db.begin() as conn:
        conn.execute(update(videos).where(videos.c.id == vid).values(status="deleted"))
    runtime = Runtime(ctx.settings)
    try:
        runtime.cleanup(vid)
    finally:
        runtime.close()

    # Even while the visibility entry is cached, the object itself is gone.
    response = client.get(url(vid, "r_seed", "master.m3u8"))
    assert response.status_code == 404 and response.json() == NOT_FOUND


# ------------------------------------------------------------------- S3 protocol


def test_publish_and_serve_over_the_s3_protocol(tmp_path: Path) -> None:
    """The same job and origin on object storage spoken to over S3 (moto's server)."""
    from tests.support.s3 import ACCESS_KEY, SECRET_KEY, start_moto

    server, endpoint = start_moto()
    try:
        overrides = {
            "storage": "s3",
            "s3_endpoint": endpoint,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            "s3_bucket": "origin-test",
        }
        with api_client(tmp_path / "data", **overrides) as s3_client:
            ctx: AppContext = s3_client.app.state.ctx
            assert type(ctx.storage).__name__ == "S3Storage"
            engine = sync_engine(ctx.settings)
            user_id = new_id("u")
            with engine.begin() as conn:
                conn.execute(
                    insert(users).values(
                        id=user_id,
                        handle=user_id.replace("_", ""),
                        display_name="s3",
                        password_hash="-",
                        role="user",
                        created_at=now_ms(),
                    )
                )
            clip = make_sample(tmp_path / "clip.mp4", seconds=2, width=360, height=640)
            vid = stage_video(engine, ctx.storage, user_id, clip)
            runtime = Runtime(ctx.settings)  # builds its own S3 client from the settings
            try:
                runtime.process(vid)
            finally:
                runtime.close()
            row = video_row(engine, vid)
            engine.dispose()
            assert row.status == "published", row.status_reason
            assert not (ctx.settings.origin_dir / "media").exists()

            master = s3_client.get(url(vid, row.render_id, "master.m3u8"))
            assert master.status_code == 200 and master.text.startswith("#EXTM3U")
            segment = first_segment(ctx, vid, row.render_id)
            whole = stored(ctx, f"media/{vid}/{row.render_id}/{segment}")
            part = s3_client.get(url(vid, row.render_id, segment), headers={"Range": "bytes=10-29"})
            assert part.status_code == 206 and part.content == whole[10:30]
            etag = part.headers["etag"]
            again = s3_client.get(url(vid, row.render_id, segment), headers={"If-None-Match": etag})
            assert again.status_code == 304
    finally:
        server.stop()
