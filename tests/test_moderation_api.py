"""Human review on the real app (issue 5, "Human review and reports"): the moderator role, the
queue, worst-frame thumbnails, decisions and appeals.

Videos are put in review the way the pipeline, reports or an appeal leave them (a history row
saying where they came from, outputs stored, a `video_safety` row); the moves out of review go
through the routes. Decisions run on the embedded SQLite database and on a fresh database in
the local PostgreSQL server.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from sqlalchemy import select

from api.core.db import now_ms, sync_engine
from api.core.services import make_storage
from api.core.settings import Settings
from api.core.tables import (
    appeals,
    audio_refs,
    copyright_claims,
    moderation_decisions,
    pdq_blocklist,
    users,
    videos,
)
from api.safety import routing as safety
from classifiers.pdq import hash_frame
from engine.thumbnails import encode_jpeg
from tests.conftest import MEDIA
from tests.support.api import api_client, auth, make_settings, register, seed_video
from tests.support.moderation import (
    make_moderator,
    seed_review_video,
    store_safety,
)
from tests.support.pg import fresh_database

ROOT = Path(__file__).resolve().parent.parent
HOUR_MS = 3600 * 1000
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "postgresql":
        return {"database_url": request.getfixturevalue("pg_url")}
    return {}


class Desk:
    """An app with an owner, a moderator and another user."""

    def __init__(self, client: Any, settings: Settings) -> None:
        self.client, self.settings = client, settings
        self.owner_id, self.owner = register(client)
        self.other_id, self.other = register(client)
        handle = "mod" + self.owner_id[-6:]
        self.moderator_id, self.moderator = register(client, handle)
        make_moderator(settings, handle)  # before the token's first use (tokens are cached)

    def get(self, path: str, token: str) -> Any:
        return self.client.get(path, headers=auth(token))

    def post(self, path: str, token: str, body: Any = None) -> Any:
        return self.client.post(path, json=body, headers=auth(token))

    def decide(self, video_id: str, **body: Any) -> Any:
        return self.post(f"/v1/moderation/{video_id}/decision", self.moderator, body)

    def queue_ids(self) -> list[str]:
        response = self.get("/v1/moderation/queue?limit=50", self.moderator)
        assert response.status_code == 200, response.text
        return [item["video_id"] for item in response.json()["videos"]]

    def column(self, table: Any, column: str, **where: Any) -> Any:
        engine = sync_engine(self.settings)
        try:
            query = select(table.c[column]).where(*(table.c[k] == v for k, v in where.items()))
            with engine.connect() as conn:
                return conn.execute(query).scalar()
        finally:
            engine.dispose()


@pytest.fixture
def desk(tmp_path: Path, backend: dict[str, Any]) -> Iterator[Desk]:
    with api_client(tmp_path, **backend) as client:
        yield Desk(client, make_settings(tmp_path, **backend))


@pytest.fixture
def sqlite_desk(tmp_path: Path) -> Iterator[Desk]:
    with api_client(tmp_path) as client:
        yield Desk(client, make_settings(tmp_path))


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"], response.text
    return error


def real_jpeg(name: str = "cockatoo.mp4") -> bytes:
    """A frame of a real clip from tests/media, as the engine encodes JPEGs."""
    with av.open(str(MEDIA / name)) as container:
        frame = next(container.decode(video=0))
    return encode_jpeg(frame)


# --- the role ------------------------------------------------------------------------------


def test_only_moderators_reach_the_desk(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    vid = seed_review_video(d.settings, d.owner_id)
    routes = [
        ("GET", "/v1/moderation/queue", None),
        ("POST", f"/v1/moderation/{vid}/decision", {"decision": "approve", "reason": ""}),
        ("GET", f"/v1/moderation/{vid}/decisions", None),
        ("GET", f"/v1/moderation/{vid}/frames/0.jpg", None),
    ]
    for method, path, body in routes:
        _error(d.client.request(method, path, json=body), 401, "unauthorized")
        for token in (d.owner, d.other):
            response = d.client.request(method, path, json=body, headers=auth(token))
            _error(response, 403, "forbidden")
    # Nothing moved, and the moderator's own call works.
    assert d.column(videos, "status", id=vid) == "in_review"
    assert d.get("/v1/moderation/queue", d.moderator).status_code == 200


def test_grant_and_revoke_from_the_command_line(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", "moderator", *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )

    with api_client(tmp_path) as client:
        _, token = register(client, "carol_mod")
        granted = cli("grant", "carol_mod")
        assert granted.returncode == 0, granted.stderr
        assert "carol_mod is now a moderator" in granted.stdout
        assert client.get("/v1/moderation/queue", headers=auth(token)).status_code == 200
        missing = cli("grant", "nobody_here")
        assert missing.returncode == 2
        assert missing.stderr.strip() == "reelforge: no such user: nobody_here"
    revoked = cli("revoke", "carol_mod")
    assert revoked.returncode == 0, revoked.stderr
    with api_client(tmp_path) as client:  # a new process: no cached token
        _error(client.get("/v1/moderation/queue", headers=auth(token)), 403, "forbidden")


# --- the queue -----------------------------------------------------------------------------


def test_queue_oldest_first_with_what_flagged_each_video(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    now = now_ms()
    appealed = seed_review_video(
        d.settings,
        d.owner_id,
        caption="appealed one",
        came_from="rejected",
        reason="appealed by the owner: waiting for a moderator",
        entered_at=now - 1 * HOUR_MS,
    )
    flagged = seed_review_video(
        d.settings,
        d.owner_id,
        caption="flagged by the model",
        reason="held for review: nsfw 0.82",
        entered_at=now - 3 * HOUR_MS,
    )
    reported = seed_review_video(
        d.settings,
        d.other_id,
        caption="many reports",
        came_from="published",
        reason="reported by many viewers",
        entered_at=now - 2 * HOUR_MS,
        published_at=now - 5 * HOUR_MS,
    )
    seed_video(d.settings, d.owner_id)  # published: not in the queue
    seed_review_video(d.settings, d.owner_id, status="rejected", entered_at=now - 4 * HOUR_MS)
    store_safety(
        d.settings,
        flagged,
        categories={"nsfw": {"max": 0.82, "p90": 0.61}},
        held_by=("moderation", "words"),
        frames=[
            {"time_s": 4.0, "key": f"safety/{flagged}/0.jpg", "label": "nsfw", "score": 0.82},
            {"time_s": 7.5, "key": f"safety/{flagged}/1.jpg", "label": "nsfw", "score": 0.77},
        ],
    )
    engine = sync_engine(d.settings)
    with engine.begin() as conn:
        conn.execute(
            appeals.insert().values(
                video_id=appealed, user_id=d.owner_id, reason="it is a cooking video", at=now
            )
        )
    engine.dispose()

    first = d.get("/v1/moderation/queue?limit=2", d.moderator)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [v["video_id"] for v in page["videos"]] == [flagged, reported]
    assert page["next_cursor"]
    second = d.get(f"/v1/moderation/queue?limit=2&cursor={page['next_cursor']}", d.moderator)
    assert [v["video_id"] for v in second.json()["videos"]] == [appealed]
    assert second.json()["next_cursor"] is None

    top, by_reports = page["videos"]
    assert top["caption"] == "flagged by the model"
    assert top["author"]["id"] == d.owner_id
    assert top["why"] == {
        "source": "automated",
        "reason": "held for review: nsfw 0.82",
        "checks": ["moderation", "words"],
    }
    assert top["in_review_since"] == now - 3 * HOUR_MS
    assert top["safety"]["scores"]["categories"] == {"nsfw": {"max": 0.82, "p90": 0.61}}
    assert top["safety"]["decision"] == "in_review"
    base = f"{d.settings.public_url}/v1/moderation/{flagged}/frames"
    assert top["safety"]["frames"] == [
        {"n": 0, "url": f"{base}/0.jpg", "time_s": 4.0, "label": "nsfw", "score": 0.82},
        {"n": 1, "url": f"{base}/1.jpg", "time_s": 7.5, "label": "nsfw", "score": 0.77},
    ]
    assert top["appeal"] is None
    assert by_reports["why"]["source"] == "reports" and by_reports["why"]["checks"] == []
    assert by_reports["author"]["id"] == d.other_id
    assert by_reports["safety"] is None
    last = second.json()["videos"][0]
    assert last["why"]["source"] == "appeal"
    assert last["appeal"]["reason"] == "it is a cooking video"

    _error(d.get("/v1/moderation/queue?cursor=not-ours", d.moderator), 400, "bad_request")
    _error(d.get("/v1/moderation/queue?limit=0", d.moderator), 422, "validation_failed")


def test_worst_frame_thumbnails(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    vid = seed_review_video(d.settings, d.owner_id)
    other_vid = seed_review_video(d.settings, d.owner_id)
    jpeg = real_jpeg()
    storage = make_storage(d.settings)
    storage.put_bytes(f"safety/{vid}/0.jpg", jpeg, "image/jpeg")
    storage.put_bytes(f"safety/{other_vid}/0.jpg", b"\xff\xd8 someone else's frame")
    store_safety(
        d.settings,
        vid,
        categories={"nsfw": {"max": 0.9}},
        frames=[
            {"time_s": 1.0, "key": f"safety/{vid}/0.jpg"},
            {"time_s": 2.0, "key": f"safety/{vid}/1.jpg"},  # listed, never stored
            {"time_s": 3.0, "key": f"safety/{other_vid}/0.jpg"},  # not this video's prefix
        ],
    )
    response = d.get(f"/v1/moderation/{vid}/frames/0.jpg", d.moderator)
    assert response.status_code == 200, response.text
    assert response.content == jpeg and jpeg[:2] == b"\xff\xd8"
    assert response.headers["content-type"] == "image/jpeg"
    assert "private" in response.headers["cache-control"]
    for name in ("1.jpg", "2.jpg", "3.jpg", "x.jpg", "0.png", "-1.jpg"):
        _error(d.get(f"/v1/moderation/{vid}/frames/{name}", d.moderator), 404, "not_found")
    # A video with no safety row has no frames.
    _error(d.get(f"/v1/moderation/{other_vid}/frames/0.jpg", d.moderator), 404, "not_found")
    _error(d.get(f"/v1/moderation/{vid}/frames/0.jpg", d.owner), 403, "forbidden")


# --- decisions -----------------------------------------------------------------------------


def test_approve_publishes_and_is_recorded(desk: Desk) -> None:
    d = desk
    vid = seed_review_video(d.settings, d.owner_id, caption="held")
    assert d.column(users, "video_count", id=d.owner_id) == 0
    # Held: the public and other users do not see it; the owner does, without media.
    assert d.client.get(f"/v1/videos/{vid}").status_code == 404
    owner_view = d.get(f"/v1/videos/{vid}", d.owner).json()
    assert owner_view["status"] == "in_review" and owner_view["hls_url"] is None

    response = d.decide(vid, decision="approve", reason="a cooking video, fine")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "published" and body["video_id"] == vid

    public = d.client.get(f"/v1/videos/{vid}")
    assert public.status_code == 200, public.text
    assert public.json()["status"] == "published"
    assert public.json()["hls_url"].endswith(f"/{vid}/r_review/master.m3u8")
    assert public.json()["published_at"] is not None
    assert d.column(users, "video_count", id=d.owner_id) == 1
    assert vid not in d.queue_ids()

    decisions = d.get(f"/v1/moderation/{vid}/decisions", d.moderator).json()["decisions"]
    assert len(decisions) == 1
    entry = decisions[0]
    assert entry["decision"] == "approve" and entry["reason"] == "a cooking video, fine"
    assert entry["moderator"]["id"] == d.moderator_id and entry["at"] == body["at"]
    assert entry["added_to_blocklist"] is False
    history = d.get(f"/v1/videos/{vid}/history", d.owner).json()["history"]
    assert history[-1]["from_status"] == "in_review"
    assert history[-1]["to_status"] == "published"

    # Decided: a second decision is a conflict and records nothing.
    _error(d.decide(vid, decision="reject", reason="changed my mind"), 409, "conflict")
    assert len(d.get(f"/v1/moderation/{vid}/decisions", d.moderator).json()["decisions"]) == 1


def test_reject_tells_the_owner_why(desk: Desk) -> None:
    d = desk
    vid = seed_review_video(d.settings, d.owner_id)
    _error(d.decide(vid, decision="reject", reason="  "), 422, "validation_failed")
    _error(d.decide(vid, decision="approve", add_to_blocklist=True), 422, "validation_failed")
    _error(d.decide(vid, decision="maybe", reason="x"), 422, "validation_failed")
    assert d.column(videos, "status", id=vid) == "in_review"

    response = d.decide(vid, decision="reject", reason="graphic violence at 0:04")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    owner_view = d.get(f"/v1/videos/{vid}", d.owner).json()
    assert owner_view["status"] == "rejected"
    assert owner_view["status_reason"] == "rejected by a moderator: graphic violence at 0:04"
    history = d.get(f"/v1/videos/{vid}/history", d.owner).json()["history"]
    assert history[-1]["reason"] == "rejected by a moderator: graphic violence at 0:04"
    assert d.get(f"/v1/videos/{vid}", d.other).status_code == 404
    assert d.column(users, "video_count", id=d.owner_id) == 0
    assert d.column(moderation_decisions, "moderator_id", video_id=vid) == d.moderator_id

    published = seed_video(d.settings, d.owner_id)
    _error(d.decide(published, decision="approve"), 409, "conflict")
    _error(d.decide("v_doesnotexist", decision="approve"), 404, "not_found")
    _error(d.get("/v1/moderation/v_doesnotexist/decisions", d.moderator), 404, "not_found")


def real_pdq(name: str, count: int = 3) -> list[dict[str, Any]]:
    """PDQ hashes `{time, hash, quality}` of the first frames a second of a real clip, as the
    pipeline's analyzer records them (classifiers/pdq.py)."""
    found: list[dict[str, Any]] = []
    with av.open(str(MEDIA / name)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            time = float(frame.time or 0.0)
            if time < len(found):
                continue
            hashed = hash_frame(frame)
            if hashed is not None:
                found.append({"time": time, "hash": hashed[0], "quality": hashed[1]})
            if len(found) == count:
                break
    return found


def pdq_verdict(settings: Settings, hashes: list[dict[str, Any]]) -> str:
    """What the upload routing (api/safety/) says of an upload with these frame hashes."""
    engine = sync_engine(settings)
    try:
        with engine.begin() as conn:
            return safety.route(conn, "", {"pdq": {"hashes": hashes}}, settings).status
    finally:
        engine.dispose()


def test_reject_into_the_blocklist(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    bad, other = real_pdq("cockatoo.mp4"), real_pdq("video-h265.mp4")
    assert bad and other and all(h["quality"] >= 50 for h in bad + other)
    assert pdq_verdict(d.settings, bad) == "published"  # nothing blocklisted yet

    held = seed_review_video(d.settings, d.owner_id)
    store_safety(d.settings, held, pdq_hashes=bad)
    response = d.decide(held, decision="reject", reason="known abuse", add_to_blocklist=True)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "rejected"
    assert response.json()["blocklisted_hashes"] == len({h["hash"] for h in bad})
    assert d.column(pdq_blocklist, "added_by", source_video_id=held) == d.moderator_id
    decisions = d.get(f"/v1/moderation/{held}/decisions", d.moderator).json()["decisions"]
    assert decisions[-1]["added_to_blocklist"] is True
    # A re-upload of the same frames is now rejected by the routing; other clips are not.
    assert pdq_verdict(d.settings, bad) == "rejected"
    assert pdq_verdict(d.settings, other) == "published"

    # A video automation already rejected: blocklisted without moving; a bare "reject" of it
    # is a conflict (there is nothing to decide).
    auto = seed_review_video(d.settings, d.owner_id, status="rejected", reason="automated")
    store_safety(d.settings, auto, pdq_hashes=other, decision="rejected")
    _error(d.decide(auto, decision="reject", reason="again"), 409, "conflict")
    response = d.decide(auto, decision="reject", reason="blocklist it", add_to_blocklist=True)
    assert response.status_code == 200, response.text
    assert response.json()["blocklisted_hashes"] == len({h["hash"] for h in other})
    assert d.get(f"/v1/videos/{auto}", d.owner).json()["status_reason"] == "automated"
    assert pdq_verdict(d.settings, other) == "rejected"
    # Asked twice: the hashes are there already.
    again = d.decide(auto, decision="reject", reason="once more", add_to_blocklist=True)
    assert again.status_code == 200 and again.json()["blocklisted_hashes"] == 0


# --- appeals -------------------------------------------------------------------------------


def test_appeal_once_back_into_the_queue(desk: Desk) -> None:
    d = desk
    vid = seed_review_video(
        d.settings, d.owner_id, status="rejected", reason="rejected: nsfw 0.97 (automated)"
    )
    path = f"/v1/videos/{vid}/appeal"
    _error(d.post(path, d.other, {"reason": "not mine but still"}), 404, "not_found")
    _error(d.post(path, d.owner, {"reason": "   "}), 422, "validation_failed")
    _error(d.client.post(path, json={"reason": "x"}), 401, "unauthorized")

    response = d.post(path, d.owner, {"reason": "it is a medical video"})
    assert response.status_code == 202, response.text
    assert response.json() == {"video_id": vid, "status": "in_review"}
    assert d.get(f"/v1/videos/{vid}", d.owner).json()["status"] == "in_review"
    queue = d.get("/v1/moderation/queue", d.moderator).json()["videos"]
    item = next(v for v in queue if v["video_id"] == vid)
    assert item["why"]["source"] == "appeal"
    assert item["appeal"]["reason"] == "it is a medical video"

    assert d.decide(vid, decision="reject", reason="still nsfw").status_code == 200
    assert d.column(appeals, "resolved", video_id=vid) in (True, 1)
    owner_view = d.get(f"/v1/videos/{vid}", d.owner).json()
    assert owner_view["status_reason"] == "rejected by a moderator: still nsfw"
    _error(d.post(path, d.owner, {"reason": "please look again"}), 409, "conflict")
    assert d.column(videos, "status", id=vid) == "rejected"


def test_what_cannot_be_appealed(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    published = seed_video(d.settings, d.owner_id)
    _error(d.post(f"/v1/videos/{published}/appeal", d.owner, {"reason": "x"}), 409, "conflict")
    in_review = seed_review_video(d.settings, d.owner_id)
    _error(d.post(f"/v1/videos/{in_review}/appeal", d.owner, {"reason": "x"}), 409, "conflict")
    # Refused by the engine (no outputs kept): nothing a moderator could publish.
    refused = seed_review_video(
        d.settings, d.owner_id, status="rejected", reason="not a media file", render_id=None
    )
    _error(d.post(f"/v1/videos/{refused}/appeal", d.owner, {"reason": "x"}), 409, "conflict")
    assert d.column(videos, "status", id=refused) == "rejected"
    assert d.column(appeals, "video_id", video_id=refused) is None
    # A copyright block applies the rights holder's policy: not a moderator's to overrule.
    blocked = seed_review_video(d.settings, d.owner_id, status="rejected", reason="copyright")
    engine = sync_engine(d.settings)
    with engine.begin() as conn:
        ref_id = conn.execute(
            audio_refs.insert()
            .values(name="track.ogg", owner="Label", policy="block", duration_s=60.0, created_at=1)
            .returning(audio_refs.c.id)
        ).scalar_one()
        conn.execute(
            copyright_claims.insert().values(
                video_id=blocked,
                ref_id=ref_id,
                owner="Label",
                offset_s=12.0,
                score=80,
                action="block",
                created_at=1,
            )
        )
    engine.dispose()
    _error(d.post(f"/v1/videos/{blocked}/appeal", d.owner, {"reason": "x"}), 409, "conflict")
    assert d.column(videos, "status", id=blocked) == "rejected"


def test_approved_after_appeal_keeps_its_first_publication_time(sqlite_desk: Desk) -> None:
    d = sqlite_desk
    first = now_ms() - 10 * HOUR_MS
    vid = seed_review_video(
        d.settings, d.owner_id, status="rejected", published_at=first, reason="rejected"
    )
    assert d.post(f"/v1/videos/{vid}/appeal", d.owner, {"reason": "fine"}).status_code == 202
    assert d.decide(vid, decision="approve").status_code == 200
    assert d.client.get(f"/v1/videos/{vid}").json()["published_at"] == first
    assert d.column(users, "video_count", id=d.owner_id) == 1
