"""Moderators play what they review (issue 5, "Human review and reports"; cdn/signing.py
review tokens; the origin in api/media/origin.py).

A video in review keeps its outputs in storage; the moderation queue hands each moderator
media URLs signed for them (a review token), and the origin serves a video in review under
such a token only, to a user who is a moderator when the request comes. Everyone else, the
creator included, gets the 404 of an unpublished video. Once approved, the normal rules of
published media apply again and review tokens open nothing.

The first test runs the whole path over real HTTP (uvicorn on a socket, the embedded worker
transcoding a real clip that the caption watch list holds for review); the others run the
real app in-process over seeded rows and stored files.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import update

from api.core.db import sync_engine
from api.core.identity import MODERATOR, USER
from api.core.settings import Settings, SettingsError
from api.core.tables import videos
from api.media.playback import playback_keyring, playback_prefix, review_prefix
from api.moderation.roles import set_role
from api.moderation.thresholds import REVIEW_OVER
from cdn.signing import EXPIRY_STEP_S, PLAYBACK, REVIEW, InvalidToken, expiry
from tests.support.api import api_client, auth, make_settings, register
from tests.support.e2e import Flow
from tests.support.moderation import make_moderator, seed_review_video, seed_users
from tests.support.uploads import live_server, small_clip, video_row, wait_for

WATCHED = "reviewme"
RENDER = "r_review"  # tests.support.moderation.seed_review_video's render id
FILES = {
    "master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv360/index.m3u8\n",
    "manifest.mpd": b"<MPD/>",
    "v360/index.m3u8": b'#EXTM3U\n#EXT-X-MAP:URI="init.mp4"\n#EXTINF:2,\n00001.m4s\n',
    "v360/init.mp4": b"\x00\x00\x00\x18ftypiso6",
    "v360/00001.m4s": secrets.token_bytes(4096),
    "poster.jpg": b"\xff\xd8\xff\xe0poster",
}


def token_of(url: str) -> str:
    match = re.search(r"/~([^/]+)/", url)
    assert match, f"not a signed URL: {url}"
    return match[1]


def set_moderator(settings: Settings, handle: str, on: bool) -> None:
    engine = sync_engine(settings)
    with engine.begin() as conn:
        assert set_role(conn, handle, MODERATOR if on else USER)
    engine.dispose()


# ================================================================ over real HTTP, real clip


def test_a_moderator_plays_a_held_video_and_no_one_else_does(tmp_path: Path) -> None:
    clip = small_clip(tmp_path)
    data = tmp_path / "data"
    with (
        live_server(data, watched_words=(WATCHED,)) as server,
        Flow(server.url) as flow,
        httpx.Client(timeout=60) as player,
    ):
        settings = server.settings
        creator, stranger, moderator = flow.register(), flow.register(), flow.register()
        make_moderator(settings, moderator.handle)  # before the token's first use (cached)

        vid = flow.upload_direct(creator, clip)
        flow.publish(creator, vid, caption=f"please {WATCHED} this")
        held = flow.wait_status(vid, creator)  # in_review counts as settled
        assert held["status"] == "in_review", held["status_reason"]
        assert "watched term" in held["status_reason"]
        assert held["hls_url"] is None and held["poster_url"] is None
        # The outputs are stored under the render id, served to no one yet.
        render = video_row(settings, vid).render_id
        assert render
        media = f"{settings.media_url}/{vid}/{render}"
        server.ctx.storage.stat(f"media/{vid}/{render}/master.m3u8")
        assert player.get(f"{media}/master.m3u8").status_code == 404

        asked = time.time()
        queue = flow.review_queue(moderator)["videos"]
        item = next(v for v in queue if v["video_id"] == vid)
        assert item["hls_url"].startswith(f"{media}/~")
        assert item["hls_url"].endswith("/master.m3u8")
        assert item["dash_url"].endswith("/manifest.mpd")
        assert item["poster_url"].endswith("/poster.jpg")
        claims = playback_keyring(settings).verify(token_of(item["hls_url"]), vid, scope=REVIEW)
        assert claims.viewer_id == moderator.id
        ttl = settings.review_token_ttl_seconds
        assert asked + ttl <= claims.expires_at <= time.time() + ttl + EXPIRY_STEP_S

        # The moderator's player: master, variant, init and first segment, all through the
        # token the relative URIs carry; never kept by a shared cache.
        playback = flow.play(item)
        assert playback.init_section[4:8] == b"ftyp"
        assert playback.segment[4:8] in (b"styp", b"moof"), playback.segment[:16]
        segment_url = urljoin(playback.variant_uri, playback.media.segments[0].uri)
        assert "/~" in segment_url
        segment = player.get(segment_url)
        assert segment.status_code == 200
        assert segment.headers["cache-control"].startswith("private")
        poster = player.get(item["poster_url"])
        assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"
        dash = player.get(item["dash_url"])
        assert dash.status_code == 200 and "<MPD" in dash.text

        # Nobody else: the creator's and anyone's playback tokens, a review token of a
        # non-moderator or of another video, the plain URLs: the 404 of an unpublished video.
        ring, later = playback_keyring(settings), expiry(time.time(), 600)
        segment_path = segment_url.split("/~", 1)[1].split("/", 1)[1]
        refused = {
            "plain master": f"{media}/master.m3u8",
            "plain segment": f"{media}/{segment_path}",
            "creator's playback token": f"{media}/~{ring.sign(vid, later, creator.id)}/master.m3u8",
            "unbound playback token": f"{media}/~{ring.sign(vid, later)}/master.m3u8",
            "review token of a non-moderator": (
                f"{review_prefix(settings, vid, render, stranger.id)}/master.m3u8"
            ),
            "review token of another video": (
                f"{media}/~{ring.sign('v_another0000001', later, moderator.id, scope=REVIEW)}"
                f"/{segment_path}"
            ),
        }
        for what, url in refused.items():
            response = player.get(url, headers=creator.headers)
            assert response.status_code == 404, (what, response.status_code, response.text)
            assert response.json()["error"]["code"] == "not_found", what
        assert flow.http.get("/v1/moderation/queue", headers=stranger.headers).status_code == 403
        assert flow.http.get(f"/v1/videos/{vid}", headers=stranger.headers).status_code == 404

        # The role is checked where the media is served: revoked, the URL stops working.
        set_moderator(settings, moderator.handle, on=False)
        wait_for(lambda: player.get(item["hls_url"]).status_code == 404, 60, "the revocation")
        set_moderator(settings, moderator.handle, on=True)
        wait_for(lambda: player.get(item["hls_url"]).status_code == 200, 60, "the new grant")

        # Approved: published under the normal rules, for everyone, with plain URLs.
        decided = flow.decide(moderator, vid, "approve", "a test pattern")
        assert decided["status"] == "published"
        public = flow.video(vid)
        assert public["status"] == "published"
        assert public["hls_url"] == f"{media}/master.m3u8"
        replay = flow.play(public)
        assert replay.segment == playback.segment
        segment = player.get(f"{media}/{segment_path}")
        assert segment.status_code == 200
        assert segment.headers["cache-control"].startswith("public")
        # The review token was for the review: on a published video it is a bad token.
        assert player.get(item["hls_url"]).status_code == 403
        assert vid not in {v["video_id"] for v in flow.review_queue(moderator)["videos"]}


# ================================================================ in-process, seeded media


class Desk:
    """The real app with an owner, a moderator and a stranger; videos in review with stored
    files (as the pipeline leaves a video it holds)."""

    def __init__(self, client: TestClient[Any]) -> None:
        self.client = client
        self.settings: Settings = client.app.state.ctx.settings
        self.storage = client.app.state.ctx.storage
        self.owner_id, self.owner = register(client)
        self.stranger_id, self.stranger = register(client)
        handle = "mod" + secrets.token_hex(4)
        self.moderator_id, self.moderator = register(client, handle)
        make_moderator(self.settings, handle)

    def held(self, privacy: str = "public", **kwargs: Any) -> str:
        vid = seed_review_video(self.settings, self.owner_id, **kwargs)
        engine = sync_engine(self.settings)
        with engine.begin() as conn:
            conn.execute(update(videos).where(videos.c.id == vid).values(privacy=privacy))
        engine.dispose()
        for name, data in FILES.items():
            self.storage.put_bytes(f"media/{vid}/{RENDER}/{name}", data)
        return vid

    def item(self, vid: str) -> dict[str, Any]:
        response = self.client.get("/v1/moderation/queue?limit=50", headers=auth(self.moderator))
        assert response.status_code == 200, response.text
        found: dict[str, Any] = next(v for v in response.json()["videos"] if v["video_id"] == vid)
        return found

    def fetch(self, url: str) -> Any:
        return self.client.get(url.removeprefix(self.settings.public_url))

    def plays(self, base: str) -> None:
        """Every file of the video answers 200 under `base`, with private caching."""
        for name, data in FILES.items():
            response = self.fetch(f"{base}/{name}")
            assert response.status_code == 200, (name, response.text)
            assert response.content == data, name
            assert response.headers["cache-control"].startswith("private"), name

    def decide(self, vid: str, decision: str, reason: str = "checked") -> None:
        body = {"decision": decision, "reason": reason}
        response = self.client.post(
            f"/v1/moderation/{vid}/decision", json=body, headers=auth(self.moderator)
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    with api_client(tmp_path_factory.mktemp("review")) as client:
        yield Desk(client)


@pytest.mark.parametrize("privacy", ["public", "unlisted", "private"])
def test_review_urls_whatever_the_privacy_then_the_normal_rules(desk: Desk, privacy: str) -> None:
    d = desk
    vid = d.held(privacy)
    item = d.item(vid)
    review_base = item["hls_url"].removesuffix("/master.m3u8")
    d.plays(review_base)
    # The owner's own playback link (as handed out for a published private or unlisted
    # video) does not open it while it is in review.
    own = playback_prefix(d.settings, vid, RENDER, "private", d.owner_id)
    assert d.fetch(f"{own}/master.m3u8").status_code == 404

    d.decide(vid, "approve")
    plain = f"{d.settings.media_url}/{vid}/{RENDER}/master.m3u8"
    expected_plain = 200 if privacy == "public" else 403
    assert d.fetch(plain).status_code == expected_plain
    view = d.client.get(f"/v1/videos/{vid}", headers=auth(d.owner)).json()
    assert d.fetch(view["hls_url"]).status_code == 200  # the owner's own URL, as for any video
    assert d.fetch(item["hls_url"]).status_code == 403  # review tokens are no playback tokens
    assert d.fetch(item["poster_url"]).status_code == 403


def test_an_appealed_rejection_plays_for_the_moderator(desk: Desk) -> None:
    d = desk
    vid = d.held(status="rejected", reason="rejected by automated moderation")
    # Rejected and not appealed: not in review, no review URL opens it.
    signed = review_prefix(d.settings, vid, RENDER, d.moderator_id)
    assert d.fetch(f"{signed}/master.m3u8").status_code == 404
    appeal = d.client.post(
        f"/v1/videos/{vid}/appeal", json={"reason": "it is a cooking video"}, headers=auth(d.owner)
    )
    assert appeal.status_code == 202, appeal.text
    item = d.item(vid)
    assert item["why"]["source"] == "appeal"
    # The origin saw it rejected a moment ago; the appeal evicted that: served at once.
    master = item["hls_url"]
    assert d.fetch(master).status_code == 200
    d.plays(master.removesuffix("/master.m3u8"))
    d.decide(vid, "reject", "still not allowed")
    # The decision evicted this process's origin cache: refused at once.
    assert d.fetch(master).status_code == 404


def test_a_video_pulled_by_reports_stops_playing_at_once(desk: Desk) -> None:
    d = desk
    vid = d.held()
    d.decide(vid, "approve")
    plain = f"{d.settings.media_url}/{vid}/{RENDER}/master.m3u8"
    viewers = seed_users(d.settings, REVIEW_OVER + 1)
    for _, token in viewers[:REVIEW_OVER]:
        reported = d.client.post(
            f"/v1/videos/{vid}/report", json={"reason": "spam"}, headers=auth(token)
        )
        assert reported.status_code == 201, reported.text
    # Still published (50 is not over 50); the origin has just cached that.
    assert d.fetch(plain).status_code == 200
    last = d.client.post(
        f"/v1/videos/{vid}/report", json={"reason": "spam"}, headers=auth(viewers[-1][1])
    )
    assert last.status_code == 201, last.text
    # The report that pulled it evicted this process's origin cache: refused at once, not
    # after the cache's TTL.
    assert d.fetch(plain).status_code == 404
    assert d.item(vid)["why"]["source"] == "reports"


def test_expired_or_foreign_review_tokens_get_the_unpublished_404(desk: Desk) -> None:
    d = desk
    vid = d.held()
    media = f"{d.settings.media_url}/{vid}/{RENDER}"
    ring = playback_keyring(d.settings)
    now = int(time.time())
    tokens = {
        "expired": ring.sign(vid, now - 1, d.moderator_id, scope=REVIEW),
        "for the owner": ring.sign(vid, now + 600, d.owner_id, scope=REVIEW),
        "a playback token of the moderator": ring.sign(vid, now + 600, d.moderator_id),
        "for an unknown user": ring.sign(vid, now + 600, "u_nobody00000001", scope=REVIEW),
    }
    for what, token in tokens.items():
        response = d.fetch(f"{media}/~{token}/v360/00001.m4s")
        assert response.status_code == 404, (what, response.text)
        assert response.json()["error"]["code"] == "not_found", what
    good = ring.sign(vid, now + 600, d.moderator_id, scope=REVIEW)
    assert d.fetch(f"{media}/~{good}/v360/00001.m4s").status_code == 200
    # Not a media file name, or another render: the same 404 as for any video.
    assert d.fetch(f"{media}/~{good}/report.json").status_code == 404
    assert d.fetch(f"{d.settings.media_url}/{vid}/r_other/~{good}/master.m3u8").status_code == 404


def test_a_video_without_outputs_has_no_review_urls(desk: Desk) -> None:
    d = desk
    vid = seed_review_video(d.settings, d.owner_id, render_id=None)
    item = d.item(vid)
    assert (item["hls_url"], item["dash_url"], item["poster_url"]) == (None, None, None)


# ================================================================ tokens and settings


def test_review_and_playback_tokens_do_not_stand_in_for_each_other(tmp_path: Path) -> None:
    ring = playback_keyring(make_settings(tmp_path))
    vid, viewer, later = "v_0000000000001", "u_0000000000001", int(time.time()) + 600
    review = ring.sign(vid, later, viewer, scope=REVIEW)
    playback = ring.sign(vid, later, viewer, scope=PLAYBACK)
    assert review != playback  # same claims, another MAC
    assert ring.verify(review, vid, scope=REVIEW).viewer_id == viewer
    assert ring.verify(playback, vid).viewer_id == viewer
    with pytest.raises(InvalidToken):
        ring.verify(review, vid)
    with pytest.raises(InvalidToken):
        ring.verify(playback, vid, scope=REVIEW)
    with pytest.raises(ValueError, match="bound to the moderator"):
        ring.sign(vid, later, scope=REVIEW)
    with pytest.raises(ValueError, match="scope"):
        ring.sign(vid, later, viewer, scope="admin")  # type: ignore[arg-type]


def test_review_token_ttl_setting(tmp_path: Path) -> None:
    env = {"REELFORGE_DATA_DIR": str(tmp_path), "REELFORGE_REVIEW_TOKEN_TTL_SECONDS": "600"}
    assert Settings.from_env(env).review_token_ttl_seconds == 600
    for bad in ("0", "-5", "soon"):
        env["REELFORGE_REVIEW_TOKEN_TTL_SECONDS"] = bad
        with pytest.raises(SettingsError, match="REELFORGE_REVIEW_TOKEN_TTL_SECONDS"):
            Settings.from_env(env)
