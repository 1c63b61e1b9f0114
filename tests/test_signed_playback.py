"""Signed playback end to end (issue 4, "Signed playback"): the API hands out signed URLs for
private and unlisted videos, the origin checks the token on manifests, init segments and
media segments alike, a real Chromium plays a private video with its signed URL and not
without it, keys rotate, and S3 objects stay private (streamed by the origin, or a 307 to a
short-lived presigned GET).

moto stands in for S3 and does not check signatures: these tests show what the origin asks
of the bucket, not that S3 enforces it.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import update

from api.core.db import sync_engine
from api.core.settings import Settings
from api.core.tables import videos
from api.jobs.transcode import Runtime
from api.media.origin import FORBIDDEN_MESSAGE, VISIBILITY_TTL_S
from api.media.playback import playback_keyring
from cdn.origin import IMMUTABLE, MANIFEST
from cdn.signing import Keyring, PlaybackKey, expiry
from tests.support.api import api_client, auth, register, seed_video
from tests.support.jobs import stage_video, video_row
from tests.support.player import PLAYER_DIR, play_url
from tests.support.static_server import StaticServer
from tests.support.uploads import live_server, small_clip

FORBIDDEN = {"error": {"code": "forbidden", "message": FORBIDDEN_MESSAGE}}
RENDER = "r_seed"
SEGMENT = secrets.token_bytes(4096)
FILES = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv360/index.m3u8\n",
    "manifest.mpd": b"<MPD/>",
    "v360/index.m3u8": b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2,\n00001.m4s\n',
    "v360/init.mp4": b"\x00\x00\x00\x18ftypiso6",
    "v360/00001.m4s": SEGMENT,
    "poster.jpg": b"\xff\xd8\xff\xe0poster",
}
OLD_KEY = "old:" + "o" * 32
NEW_KEY = "new:" + "n" * 32


def token_of(url: str) -> str:
    """The token segment's content in a signed media URL."""
    match = re.search(r"/~([^/]+)/", url)
    assert match, f"not a signed URL: {url}"
    return match[1]


def plain(url: str) -> str:
    """A signed media URL without its token segment."""
    return re.sub(r"/~[^/]+/", "/", url)


def moved(url: str, server_url: str) -> str:
    """`url` on another server (each live server gets a port of its own); the token is in
    the path, so it travels unchanged."""
    return server_url + urlsplit(url).path


def store_media(storage: Any, video_id: str) -> None:
    for name, data in FILES.items():
        storage.put_bytes(f"media/{video_id}/{RENDER}/{name}", data)


def set_privacy(settings: Settings, video_id: str, privacy: str) -> None:
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(update(videos).where(videos.c.id == video_id).values(privacy=privacy))
    engine.dispose()


# ============================================================ in-process, seeded media


class Seeded:
    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.settings: Settings = client.app.state.ctx.settings
        self.storage = client.app.state.ctx.storage
        self.owner_id, self.owner = register(client)
        self.stranger_id, self.stranger = register(client)

    def video(self, privacy: str) -> str:
        vid = seed_video(self.settings, self.owner_id, privacy=privacy, render_id=RENDER)
        store_media(self.storage, vid)
        return vid

    def urls(self, vid: str, token: str | None = None) -> dict[str, Any]:
        headers = auth(token) if token else {}
        response = self.client.get(f"/v1/videos/{vid}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def path(self, url: str) -> str:
        return url.removeprefix(self.settings.public_url)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    with api_client(tmp_path_factory.mktemp("signed")) as client:
        yield Seeded(client)


def test_api_signs_private_and_unlisted_urls_only(seeded: Seeded) -> None:
    media = seeded.settings.media_url
    ring = playback_keyring(seeded.settings)
    public, unlisted, private = (seeded.video(p) for p in ("public", "unlisted", "private"))

    body = seeded.urls(public)
    assert body["hls_url"] == f"{media}/{public}/{RENDER}/master.m3u8"
    assert body["dash_url"] == f"{media}/{public}/{RENDER}/manifest.mpd"
    assert body["poster_url"] == f"{media}/{public}/{RENDER}/poster.jpg"
    assert body["mp4_url"] == f"{media}/{public}/{RENDER}/download.mp4"

    ttl = seeded.settings.playback_token_ttl_seconds
    for vid, who, bound in (
        (unlisted, None, None),
        (unlisted, seeded.stranger, seeded.stranger_id),
        (private, seeded.owner, seeded.owner_id),
    ):
        body = seeded.urls(vid, who)
        token = token_of(body["hls_url"])
        prefix = f"{media}/{vid}/{RENDER}/~{token}/"
        assert body["hls_url"] == prefix + "master.m3u8"
        assert body["dash_url"] == prefix + "manifest.mpd"
        assert body["poster_url"] == prefix + "poster.jpg"
        assert body["mp4_url"] == prefix + "download.mp4"
        claims = ring.verify(token, vid)
        assert claims.viewer_id == bound
        assert time.time() + ttl - 5 <= claims.expires_at <= time.time() + ttl + 300


@pytest.mark.parametrize("privacy", ["private", "unlisted"])
def test_signed_urls_serve_every_file_privately(seeded: Seeded, privacy: str) -> None:
    vid = seeded.video(privacy)
    hls_url = seeded.urls(vid, seeded.owner)["hls_url"]
    for name, data in FILES.items():
        url = urljoin(hls_url, name)
        response = seeded.client.get(seeded.path(url))
        assert response.status_code == 200, (name, response.text)
        assert response.content == data
        public_value = MANIFEST if name.endswith((".m3u8", ".mpd")) else IMMUTABLE
        assert response.headers["cache-control"] == "private" + public_value.removeprefix("public")
        assert response.headers["access-control-allow-origin"] == "*"
        revalidated = seeded.client.get(
            seeded.path(url), headers={"If-None-Match": response.headers["etag"]}
        )
        assert revalidated.status_code == 304
        assert revalidated.headers["cache-control"].startswith("private,")
    part = seeded.client.get(
        seeded.path(urljoin(hls_url, "v360/00001.m4s")), headers={"Range": "bytes=-16"}
    )
    assert part.status_code == 206 and part.content == SEGMENT[-16:]


def test_public_media_stay_plain_and_public(seeded: Seeded) -> None:
    vid = seeded.video("public")
    hls_url = seeded.urls(vid)["hls_url"]
    assert "/~" not in hls_url
    for name in FILES:
        response = seeded.client.get(seeded.path(urljoin(hls_url, name)))
        assert response.status_code == 200
        assert response.headers["cache-control"].startswith("public,")
    # A token on a public video's URL (signed while it was unlisted, say) is still checked.
    ring = playback_keyring(seeded.settings)
    good = ring.sign(vid, expiry(time.time(), 60))
    signed = f"/media/{vid}/{RENDER}/~{good}/v360/00001.m4s"
    response = seeded.client.get(signed)
    assert response.status_code == 200 and response.headers["cache-control"].startswith("private,")
    # Change one MAC character in the middle (the last one carries only 2 bits, so a fixed
    # replacement there can spell the same token).
    flipped = "B" if good[-5] != "B" else "C"
    tampered = good[:-5] + flipped + good[-4:]
    assert tampered != good
    bad = seeded.client.get(f"/media/{vid}/{RENDER}/~{tampered}/v360/00001.m4s")
    assert bad.status_code == 403


def bad_tokens(seeded: Seeded, vid: str, privacy: str) -> dict[str, str | None]:
    """case → what goes after '~' (None: no token segment at all)."""
    ring = playback_keyring(seeded.settings)
    later = expiry(time.time(), 3600)
    viewer = seeded.owner_id if privacy == "private" else None
    good = ring.sign(vid, later, viewer)
    kid, exp, *rest = good.split(".")
    cases: dict[str, str | None] = {
        "missing": None,
        "empty": "",
        "garbage": "not-a-token",
        "tampered-mac": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "tampered-expiry": ".".join([kid, format(int(exp, 36) + 300, "x"), *rest]),
        "expired": ring.sign(vid, int(time.time()) - 1, viewer),
        "other-video": ring.sign(seeded.video(privacy), later, viewer),
        "unknown-kid": Keyring([PlaybackKey("zz", ring.signing.secret)]).sign(vid, later, viewer),
        "other-secret": Keyring([PlaybackKey(kid, b"x" * 32)]).sign(vid, later, viewer),
    }
    if privacy == "private":
        cases["private-for-a-stranger"] = ring.sign(vid, later, seeded.stranger_id)
        cases["private-unbound"] = ring.sign(vid, later)
    return cases


@pytest.mark.parametrize("privacy", ["private", "unlisted"])
def test_bad_or_missing_tokens_are_one_403(seeded: Seeded, privacy: str) -> None:
    vid = seeded.video(privacy)
    good = token_of(seeded.urls(vid, seeded.owner)["hls_url"])
    cases = bad_tokens(seeded, vid, privacy)
    for name in ("master.m3u8", "manifest.mpd", "v360/init.mp4", "v360/00001.m4s"):
        ok = seeded.client.get(f"/media/{vid}/{RENDER}/~{good}/{name}")
        assert ok.status_code == 200  # the control: the file is there for a good token
        for case, token in cases.items():
            path = (
                f"/media/{vid}/{RENDER}/{name}"
                if token is None
                else (f"/media/{vid}/{RENDER}/~{token}/{name}")
            )
            for method in ("GET", "HEAD"):
                response = seeded.client.request(method, path, headers={"Range": "bytes=0-3"})
                assert response.status_code == 403, (case, name, method, response.text)
                assert response.headers["cache-control"] == "no-store"
                assert response.headers["access-control-allow-origin"] == "*"
                if method == "GET":
                    assert response.json() == FORBIDDEN, case


def test_unknown_and_unpublished_stay_404_with_or_without_token(seeded: Seeded) -> None:
    ring = playback_keyring(seeded.settings)
    later = expiry(time.time(), 3600)
    processing = seed_video(
        seeded.settings, seeded.owner_id, status="processing", privacy="private"
    )
    store_media(seeded.storage, processing)
    vid = seeded.video("unlisted")
    for target, path in (
        (
            "unknown",
            f"/media/v_unknown000000001/{RENDER}/~{ring.sign('v_unknown000000001', later)}",
        ),
        ("unknown-plain", f"/media/v_unknown000000001/{RENDER}"),
        ("processing", f"/media/{processing}/{RENDER}/~{ring.sign(processing, later)}"),
        ("wrong-render", f"/media/{vid}/r_other/~{ring.sign(vid, later)}"),
    ):
        response = seeded.client.get(f"{path}/master.m3u8")
        assert response.status_code == 404, target
        assert response.json() == {"error": {"code": "not_found", "message": "not found"}}


def test_privacy_change_to_private_revokes_other_viewers_urls(seeded: Seeded) -> None:
    vid = seeded.video("unlisted")
    stranger_url = seeded.urls(vid, seeded.stranger)["hls_url"]
    anonymous_url = seeded.urls(vid)["hls_url"]
    assert seeded.client.get(seeded.path(stranger_url)).status_code == 200
    set_privacy(seeded.settings, vid, "private")
    time.sleep(VISIBILITY_TTL_S + 0.3)
    assert seeded.client.get(seeded.path(stranger_url)).status_code == 403
    assert seeded.client.get(seeded.path(anonymous_url)).status_code == 403
    owner_url = seeded.urls(vid, seeded.owner)["hls_url"]
    assert seeded.client.get(seeded.path(owner_url)).status_code == 200


def test_rotation_in_process(tmp_path: Path) -> None:
    """old → (new, old) → new: tokens of a listed key work, of a removed key fail."""

    def phase(keys: tuple[str, ...], check: Callable[[TestClient[Any], Settings], None]) -> None:
        with api_client(tmp_path, playback_keys=keys) as client:
            check(client, client.app.state.ctx.settings)

    found: dict[str, str] = {}

    def first(client: TestClient[Any], settings: Settings) -> None:
        owner_id, _ = register(client)
        vid = seed_video(settings, owner_id, privacy="unlisted", render_id=RENDER)
        store_media(client.app.state.ctx.storage, vid)
        found["vid"] = vid
        found["old"] = client.get(f"/v1/videos/{vid}").json()["hls_url"]
        assert token_of(found["old"]).startswith("old.")
        assert client.get(found["old"]).status_code == 200

    def during(client: TestClient[Any], settings: Settings) -> None:
        found["new"] = client.get(f"/v1/videos/{found['vid']}").json()["hls_url"]
        assert token_of(found["new"]).startswith("new.")
        assert client.get(found["old"]).status_code == 200
        assert client.get(found["new"]).status_code == 200

    def after(client: TestClient[Any], settings: Settings) -> None:
        assert client.get(found["old"]).status_code == 403
        assert client.get(found["new"]).status_code == 200

    phase((OLD_KEY,), first)
    phase((NEW_KEY, OLD_KEY), during)
    phase((NEW_KEY,), after)


# ========================================= over HTTP, a really transcoded private video


def fetch_everything(hls_url: str) -> dict[str, int]:
    """url → status for what a player fetches: master, media playlists, init, segments."""
    seen: dict[str, int] = {}
    with httpx.Client(timeout=30) as client:
        master = client.get(hls_url)
        seen[hls_url] = master.status_code
        if master.status_code != 200:
            return seen
        playlists = [
            urljoin(hls_url, uri)
            for uri in re.findall(r'URI="([^"]+)"', master.text)
            + [line for line in master.text.splitlines() if line and not line.startswith("#")]
        ]
        assert playlists
        for playlist_url in playlists:
            playlist = client.get(playlist_url)
            seen[playlist_url] = playlist.status_code
            uris = re.findall(r'URI="([^"]+)"', playlist.text) + [
                line for line in playlist.text.splitlines() if line and not line.startswith("#")
            ]
            for uri in uris:
                url = urljoin(playlist_url, uri)
                seen[url] = client.get(url).status_code
    return seen


@pytest.fixture(scope="module")
def player_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The player page on an origin of its own (the media then need CORS, as from a CDN)."""
    with StaticServer(tmp_path_factory.mktemp("page"), {"/_player/": PLAYER_DIR}) as server:
        yield server.url("_player/player.html")


@pytest.mark.browser
def test_private_video_plays_signed_and_not_unsigned_and_keys_rotate(
    tmp_path: Path, player_page: str
) -> None:
    data_dir = tmp_path / "data"
    clip = small_clip(tmp_path, seconds=4.0)
    with live_server(data_dir, playback_keys=(OLD_KEY,)) as server:
        owner = httpx.post(
            f"{server.url}/v1/auth/register",
            json={"handle": "owner" + secrets.token_hex(3), "password": "correct horse 9"},
        ).json()
        engine = sync_engine(server.settings)
        vid = stage_video(engine, server.ctx.storage, owner["user"]["id"], clip, privacy="private")
        runtime = Runtime(server.settings)
        try:
            runtime.process(vid)
        finally:
            runtime.close()
        assert video_row(engine, vid).status == "published"
        engine.dispose()
        video = httpx.get(f"{server.url}/v1/videos/{vid}", headers=auth(owner["token"])).json()
        old_hls, old_dash = video["hls_url"], video["dash_url"]
        assert token_of(old_hls).startswith("old.") and token_of(old_dash) == token_of(old_hls)

        fetched = fetch_everything(old_hls)
        assert len(fetched) > 4 and set(fetched.values()) == {200}, fetched
        assert all(f"/~{token_of(old_hls)}/" in url for url in fetched)
        unsigned = fetch_everything(plain(old_hls))
        assert list(unsigned.values()) == [403], unsigned
        segment = next(url for url in fetched if url.endswith(".m4s"))
        assert httpx.get(plain(segment)).status_code == 403

        for mode, src in (("hlsjs", old_hls), ("dashjs", old_dash)):
            result = play_url(
                server.url, mode, timeout=60, until=2.0, src=src, player_url=player_page
            )
            assert not result.failures(), result.summary()
        refused = play_url(
            server.url, "hlsjs", timeout=30, src=plain(old_hls), player_url=player_page
        )
        assert not refused.played and refused.current_time == 0, refused.summary()
        assert not refused.decoded_frames
        assert any(e.get("responseCode") == 403 for e in refused.errors), refused.summary()

    with live_server(data_dir, playback_keys=(NEW_KEY, OLD_KEY)) as server:
        video = httpx.get(f"{server.url}/v1/videos/{vid}", headers=auth(owner["token"])).json()
        new_hls = video["hls_url"]
        assert token_of(new_hls).startswith("new.")
        old_hls = moved(old_hls, server.url)
        assert set(fetch_everything(old_hls).values()) == {200}  # still listed: still valid
        assert set(fetch_everything(new_hls).values()) == {200}

    with live_server(data_dir, playback_keys=(NEW_KEY,)) as server:
        old_hls, new_hls = moved(old_hls, server.url), moved(new_hls, server.url)
        assert list(fetch_everything(old_hls).values()) == [403]
        assert httpx.get(moved(segment, server.url)).status_code == 403  # segments too
        assert set(fetch_everything(new_hls).values()) == {200}
        gone = play_url(server.url, "hlsjs", timeout=30, src=old_hls, player_url=player_page)
        assert not gone.played and not gone.decoded_frames, gone.summary()
        assert any(e.get("responseCode") == 403 for e in gone.errors), gone.summary()


# ====================================================================== S3 (moto)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    from tests.support.s3 import start_moto

    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


def s3_overrides(endpoint: str, bucket: str, **more: Any) -> dict[str, Any]:
    from tests.support.s3 import ACCESS_KEY, SECRET_KEY

    return {
        "storage": "s3",
        "s3_endpoint": endpoint,
        "s3_access_key": ACCESS_KEY,
        "s3_secret_key": SECRET_KEY,
        "s3_bucket": bucket,
        **more,
    }


def assert_bucket_is_private(endpoint: str, bucket: str, key: str) -> None:
    """No bucket policy and no grant to everyone: nothing in the bucket is public by
    configuration (moto does not enforce it; this checks what we ask of S3)."""
    import boto3
    from botocore.exceptions import ClientError

    from tests.support.s3 import ACCESS_KEY, SECRET_KEY

    s3 = boto3.client(
        "s3",
        endpoint_url=f"http://{endpoint}",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    with pytest.raises(ClientError, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)
    for acl in (s3.get_bucket_acl(Bucket=bucket), s3.get_object_acl(Bucket=bucket, Key=key)):
        uris = {grant["Grantee"].get("URI", "") for grant in acl["Grants"]}
        assert not any(uri.endswith(("/AllUsers", "/AuthenticatedUsers")) for uri in uris), acl


def test_s3_private_media_streamed_by_the_origin(tmp_path: Path, moto_endpoint: str) -> None:
    with api_client(tmp_path, **s3_overrides(moto_endpoint, "signed-stream")) as client:
        ctx = client.app.state.ctx
        assert type(ctx.storage).__name__ == "S3Storage"
        owner_id, owner = register(client)
        vid = seed_video(ctx.settings, owner_id, privacy="private", render_id=RENDER)
        store_media(ctx.storage, vid)
        assert_bucket_is_private(
            moto_endpoint, "signed-stream", f"media/{vid}/{RENDER}/v360/00001.m4s"
        )

        hls_url = client.get(f"/v1/videos/{vid}", headers=auth(owner)).json()["hls_url"]
        segment_url = urljoin(hls_url, "v360/00001.m4s")
        whole = client.get(segment_url)
        assert whole.status_code == 200 and whole.content == SEGMENT
        assert whole.headers["cache-control"].startswith("private,")
        part = client.get(segment_url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == SEGMENT[100:200]
        assert client.get(plain(segment_url)).status_code == 403
        assert client.get(plain(hls_url)).status_code == 403


def test_s3_redirect_private_to_a_short_presigned_get(tmp_path: Path, moto_endpoint: str) -> None:
    overrides = s3_overrides(moto_endpoint, "signed-redirect", s3_redirect_private=True)
    with api_client(tmp_path, **overrides) as client:
        ctx = client.app.state.ctx
        owner_id, owner = register(client)
        vid = seed_video(ctx.settings, owner_id, privacy="private", render_id=RENDER)
        public = seed_video(ctx.settings, owner_id, privacy="public", render_id=RENDER)
        store_media(ctx.storage, vid)
        store_media(ctx.storage, public)

        hls_url = client.get(f"/v1/videos/{vid}", headers=auth(owner)).json()["hls_url"]
        segment_url = urljoin(hls_url, "v360/00001.m4s")
        before = time.time()
        redirect = client.get(segment_url, follow_redirects=False)
        assert redirect.status_code == 307
        assert redirect.headers["cache-control"] == "no-store"
        assert redirect.headers["access-control-allow-origin"] == "*"
        location = redirect.headers["location"]
        parts = urlsplit(location)
        assert parts.netloc == moto_endpoint
        assert parts.path == f"/signed-redirect/media/{vid}/{RENDER}/v360/00001.m4s"
        query = parse_qs(parts.query)
        assert 0 < int(query["X-Amz-Expires"][0]) <= 60
        assert query["X-Amz-Date"][0] >= time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(before - 1))
        assert "X-Amz-Signature" in query
        assert "~" not in location  # the playback token never reaches the bucket

        # What a player then does: the same GET (and the same Range) against the bucket.
        assert httpx.get(location).content == SEGMENT
        ranged = httpx.get(location, headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206 and ranged.content == SEGMENT[10:20]
        via_origin = client.get(
            segment_url, headers={"Range": "bytes=10-19"}, follow_redirects=False
        )
        assert via_origin.status_code == 307  # the range is resent to the bucket (RFC 9110 §15.4.8)

        # No body to send: answered by the origin itself, no redirect.
        head = client.head(segment_url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(SEGMENT))
        etag = head.headers["etag"]
        assert client.get(segment_url, headers={"If-None-Match": etag}).status_code == 304
        assert client.get(segment_url, headers={"Range": "bytes=99999-"}).status_code == 416
        # Still token-checked before any redirect; public media are streamed for the edge.
        assert client.get(plain(segment_url), follow_redirects=False).status_code == 403
        public_segment = client.get(
            f"/media/{public}/{RENDER}/v360/00001.m4s", follow_redirects=False
        )
        assert public_segment.status_code == 200 and public_segment.content == SEGMENT
        assert public_segment.headers["cache-control"] == IMMUTABLE
