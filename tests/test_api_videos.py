"""One video through the API (issue 3, "Videos" and "Upload"): publish, who sees what,
the owner's history, and delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import update

from api.core.db import sync_engine
from api.core.tables import videos
from tests.support.api import api_client, auth, register, seed_video
from tests.support.uploads import (
    Enqueued,
    context,
    record_jobs,
    small_clip,
    stored_upload,
    video_row,
    wait_for,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return small_clip(tmp_path_factory.mktemp("videos-clip")).read_bytes()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with api_client(tmp_path) as test_client:
        yield test_client


@pytest.fixture
def jobs(client: TestClient[Any]) -> Enqueued:
    return record_jobs(client.app)


def _uploaded(client: TestClient[Any], token: str, data: bytes) -> str:
    """A video whose file was received (direct upload through the API)."""
    declared = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": len(data), "content_type": "video/mp4"},
        headers=auth(token),
    )
    video_id = str(declared.json()["video_id"])
    put = client.put(f"/v1/videos/{video_id}/file", content=data, headers=auth(token))
    assert put.status_code == 200, put.text
    return video_id


def _publish(client: TestClient[Any], token: str, video_id: str, **body: Any) -> Any:
    return client.post(f"/v1/videos/{video_id}/publish", json=body, headers=auth(token))


# --------------------------------------------------------------------- publish


def test_publish_queues_the_video(client: TestClient[Any], jobs: Enqueued, clip: bytes) -> None:
    _, token = register(client)
    video_id = _uploaded(client, token, clip)
    response = _publish(client, token, video_id, caption="first light #tag", privacy="private")
    assert response.status_code == 202, response.text
    assert response.json() == {"video_id": video_id, "status": "processing"}
    assert jobs.of("transcode_video") == [(video_id,)]
    row = video_row(context(client.app).settings, video_id)
    assert (row.caption, row.privacy, row.lane) == ("first light #tag", "private", "normal")
    history = client.get(f"/v1/videos/{video_id}/history", headers=auth(token)).json()["history"]
    assert [(h["from_status"], h["to_status"]) for h in history[:3]] == [
        ("", "awaiting_upload"),
        ("awaiting_upload", "uploaded"),
        ("uploaded", "processing"),
    ]
    assert history[2]["reason"] == "queued for processing"
    assert all(h["reason"] for h in history)


def test_publishing_twice_is_a_conflict(
    client: TestClient[Any], jobs: Enqueued, clip: bytes
) -> None:
    _, token = register(client)
    video_id = _uploaded(client, token, clip)
    assert _publish(client, token, video_id).status_code == 202
    again = _publish(client, token, video_id)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    assert len(jobs.of("transcode_video")) == 1


def test_publish_before_the_upload_is_a_conflict(client: TestClient[Any], jobs: Enqueued) -> None:
    _, token = register(client)
    declared = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": 5000, "content_type": "video/mp4"},
        headers=auth(token),
    ).json()
    response = _publish(client, token, declared["video_id"])
    assert response.status_code == 409
    assert "upload not complete" in response.json()["error"]["message"]
    assert video_row(context(client.app).settings, declared["video_id"]).status == "awaiting_upload"
    assert jobs.of("transcode") == []


def test_only_the_owner_publishes(client: TestClient[Any], jobs: Enqueued, clip: bytes) -> None:
    owner_id, token = register(client)
    _, stranger = register(client)
    video_id = _uploaded(client, token, clip)
    assert client.post(f"/v1/videos/{video_id}/publish", json={}).status_code == 401
    assert _publish(client, stranger, video_id).status_code == 404
    public = seed_video(context(client.app).settings, owner_id)
    assert _publish(client, stranger, public).status_code == 404
    assert video_row(context(client.app).settings, video_id).status == "uploaded"
    assert jobs.of("transcode") == []


@pytest.mark.parametrize(
    "body",
    [{"caption": "x" * 2201}, {"privacy": "friends"}, {"caption": 5}],
    ids=["caption-too-long", "unknown-privacy", "caption-not-text"],
)
def test_publish_validates_its_body(client: TestClient[Any], clip: bytes, body: Any) -> None:
    _, token = register(client)
    video_id = _uploaded(client, token, clip)
    response = _publish(client, token, video_id, **body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    assert video_row(context(client.app).settings, video_id).status == "uploaded"


def test_a_caption_of_exactly_2200_characters_is_accepted(
    client: TestClient[Any], clip: bytes
) -> None:
    _, token = register(client)
    video_id = _uploaded(client, token, clip)
    assert _publish(client, token, video_id, caption="é" * 2200).status_code == 202
    assert video_row(context(client.app).settings, video_id).caption == "é" * 2200


def test_busy_creators_go_to_the_bulk_lane(tmp_path: Path) -> None:
    with api_client(tmp_path, busy_creator_uploads_per_hour=2) as client:
        jobs = record_jobs(client.app)
        _, busy = register(client)
        _, calm = register(client)
        # not media: the processing job rejects these at once, which is all this test needs
        busy_videos = [_uploaded(client, busy, b"not a video %d" % i) for i in range(3)]
        calm_video = _uploaded(client, calm, b"not a video either")
        for video_id in busy_videos:
            assert _publish(client, busy, video_id).status_code == 202
        assert _publish(client, calm, calm_video).status_code == 202
        settings = context(client.app).settings
        lanes = [video_row(settings, v).lane for v in busy_videos]
        assert lanes == ["normal", "normal", "bulk"]
        assert video_row(settings, calm_video).lane == "normal"
        assert jobs.of("transcode_video_bulk") == [(busy_videos[2],)]
        normal = [args for name, args in jobs.messages if name == "transcode_video"]
        assert normal == [(busy_videos[0],), (busy_videos[1],), (calm_video,)]


# ------------------------------------------------------------------ visibility

# (status, privacy) → can a stranger (and an anonymous caller) read it? The owner reads
# every state but deleted.
CASES = [
    ("published", "public", True),
    ("published", "unlisted", True),
    ("published", "private", False),
    ("awaiting_upload", "public", False),
    ("uploaded", "public", False),
    ("processing", "public", False),
    ("rejected", "public", False),
    ("failed", "public", False),
    ("deleted", "public", False),
]


@pytest.mark.parametrize(("status", "privacy", "public"), CASES)
def test_who_sees_a_video(client: TestClient[Any], status: str, privacy: str, public: bool) -> None:
    owner_id, owner = register(client)
    _, stranger = register(client)
    settings = context(client.app).settings
    video_id = seed_video(settings, owner_id, status=status, privacy=privacy, caption="hello")
    path = f"/v1/videos/{video_id}"
    as_owner = client.get(path, headers=auth(owner))
    assert as_owner.status_code == (404 if status == "deleted" else 200)
    for headers in (auth(stranger), {}):
        response = client.get(path, headers=headers)
        assert response.status_code == (200 if public else 404), (headers, response.text)
        if not public:
            assert response.json() == {"error": {"code": "not_found", "message": "no such video"}}
    if as_owner.status_code == 200:
        body = as_owner.json()
        assert (body["id"], body["status"], body["caption"]) == (video_id, status, "hello")
        assert body["author"]["id"] == owner_id
        has_media = status == "published"
        assert (body["hls_url"] is not None) == has_media
        assert (body["mp4_url"] is not None) == has_media
        if has_media:
            assert body["hls_url"].startswith(f"{settings.media_url}/{video_id}/")
            assert body["hls_url"].endswith("/master.m3u8")
            assert body["dash_url"].endswith("/manifest.mpd")
            assert body["poster_url"].endswith("/poster.jpg")
            assert body["mp4_url"] == body["hls_url"].replace("/master.m3u8", "/download.mp4")


def test_only_the_owner_reads_the_status_reason(client: TestClient[Any]) -> None:
    owner_id, owner = register(client)
    _, stranger = register(client)
    settings = context(client.app).settings
    video_id = seed_video(settings, owner_id, status="published")
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            update(videos).where(videos.c.id == video_id).values(status_reason="internal note")
        )
    engine.dispose()
    assert client.get(f"/v1/videos/{video_id}", headers=auth(owner)).json()["status_reason"] == (
        "internal note"
    )
    assert (
        client.get(f"/v1/videos/{video_id}", headers=auth(stranger)).json()["status_reason"] == ""
    )


def test_history_is_the_owners(client: TestClient[Any], clip: bytes) -> None:
    owner_id, owner = register(client)
    _, stranger = register(client)
    video_id = _uploaded(client, owner, clip)
    response = client.get(f"/v1/videos/{video_id}/history", headers=auth(owner))
    assert response.status_code == 200
    body = response.json()
    assert body["video_id"] == video_id
    assert [h["to_status"] for h in body["history"]] == ["awaiting_upload", "uploaded"]
    assert body["history"][0]["at"] <= body["history"][1]["at"]
    assert client.get(f"/v1/videos/{video_id}/history", headers=auth(stranger)).status_code == 404
    assert client.get(f"/v1/videos/{video_id}/history").status_code == 401
    public = seed_video(context(client.app).settings, owner_id)
    assert client.get(f"/v1/videos/{public}/history", headers=auth(stranger)).status_code == 404


def test_unknown_video(client: TestClient[Any]) -> None:
    _, token = register(client)
    assert client.get("/v1/videos/v_doesnotexist000").status_code == 404
    assert client.delete("/v1/videos/v_doesnotexist000", headers=auth(token)).status_code == 404


# ---------------------------------------------------------------------- delete


def _user(client: TestClient[Any], user_id: str) -> Any:
    response = client.get(f"/v1/users/{user_id}")
    assert response.status_code == 200, response.text
    return response.json()


def test_owner_deletes_a_published_video(client: TestClient[Any], jobs: Enqueued) -> None:
    owner_id, owner = register(client)
    settings = context(client.app).settings
    video_id = seed_video(settings, owner_id, status="published")
    before = _user(client, owner_id)["video_count"]
    response = client.delete(f"/v1/videos/{video_id}", headers=auth(owner))
    assert response.status_code == 204
    assert response.content == b""
    assert _user(client, owner_id)["video_count"] == before - 1
    assert client.get(f"/v1/videos/{video_id}", headers=auth(owner)).status_code == 404
    assert client.get(f"/v1/videos/{video_id}").status_code == 404
    row = video_row(settings, video_id)
    assert (row.status, row.status_reason) == ("deleted", "deleted by owner")
    assert jobs.of("cleanup_video") == [(video_id,)]
    again = client.delete(f"/v1/videos/{video_id}", headers=auth(owner))
    assert again.status_code == 404
    assert _user(client, owner_id)["video_count"] == before - 1
    assert jobs.of("cleanup_video") == [(video_id,)]


def test_deleting_an_unpublished_video_leaves_the_count(
    client: TestClient[Any], jobs: Enqueued, clip: bytes
) -> None:
    owner_id, owner = register(client)
    video_id = _uploaded(client, owner, clip)
    storage = context(client.app).storage
    assert stored_upload(storage, video_id) == clip
    before = _user(client, owner_id)["video_count"]
    assert client.delete(f"/v1/videos/{video_id}", headers=auth(owner)).status_code == 204
    assert _user(client, owner_id)["video_count"] == before
    # the cleanup job (run by the in-process worker) removes the upload
    wait_for(lambda: storage.list(f"uploads/{video_id}/") == [], 30, "the cleanup job")
    assert jobs.of("cleanup_video") == [(video_id,)]


def test_others_cannot_delete(client: TestClient[Any], jobs: Enqueued) -> None:
    owner_id, _ = register(client)
    _, stranger = register(client)
    settings = context(client.app).settings
    public = seed_video(settings, owner_id, status="published", privacy="public")
    private = seed_video(settings, owner_id, status="published", privacy="private")
    pending = seed_video(settings, owner_id, status="processing")
    assert client.delete(f"/v1/videos/{public}").status_code == 401
    forbidden = client.delete(f"/v1/videos/{public}", headers=auth(stranger))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"
    assert client.delete(f"/v1/videos/{private}", headers=auth(stranger)).status_code == 404
    assert client.delete(f"/v1/videos/{pending}", headers=auth(stranger)).status_code == 404
    assert [video_row(settings, v).status for v in (public, private, pending)] == [
        "published",
        "published",
        "processing",
    ]
    assert jobs.of("cleanup_video") == []
