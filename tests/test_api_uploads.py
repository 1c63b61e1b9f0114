"""Uploads through the API (issue 3, "Upload"): declared limits, the signed upload URL of
local storage, direct uploads, and presigned URLs against a real S3-protocol server (moto)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from api.core.db import now_ms, sync_engine
from api.core.tables import videos
from api.uploads.declare import signed_upload_url
from tests.support import s3
from tests.support.api import api_client, auth, register, seed_video
from tests.support.uploads import (
    LiveServer,
    context,
    live_server,
    small_clip,
    stored_upload,
    video_row,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return small_clip(tmp_path_factory.mktemp("upload-clip")).read_bytes()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Any]]:
    with api_client(tmp_path, max_upload_bytes=1_000_000) as test_client:
        yield test_client


def _declare(
    client: TestClient[Any], token: str, size: int, content_type: str = "video/mp4"
) -> Any:
    return client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": size, "content_type": content_type},
        headers=auth(token),
    )


def _video_count(client: TestClient[Any]) -> int:
    engine = sync_engine(context(client.app).settings)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(videos)).scalar() or 0)
    finally:
        engine.dispose()


def _chunks(data: bytes, size: int = 16 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (chunked): the server can only count what arrives."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


# ---------------------------------------------------------------------- limits


@pytest.mark.parametrize(
    ("size", "content_type", "status", "code"),
    [
        (1_000_001, "video/mp4", 413, "payload_too_large"),
        (0, "video/mp4", 422, "validation_failed"),
        (-5, "video/mp4", 422, "validation_failed"),
        (1000, "text/plain", 415, "unsupported_media_type"),
        (1000, "image/png", 415, "unsupported_media_type"),
    ],
)
def test_upload_url_limits(
    client: TestClient[Any], size: int, content_type: str, status: int, code: str
) -> None:
    _, token = register(client)
    response = _declare(client, token, size, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert _video_count(client) == 0


def test_upload_url_needs_a_token_and_a_well_formed_body(client: TestClient[Any]) -> None:
    anonymous = client.post(
        "/v1/videos/upload-url", json={"file_size_bytes": 10, "content_type": "video/mp4"}
    )
    assert anonymous.status_code == 401
    _, token = register(client)
    missing = client.post(
        "/v1/videos/upload-url", json={"file_size_bytes": 10}, headers=auth(token)
    )
    assert missing.status_code in (400, 422) and "error" in missing.json()
    wrong_type = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": "ten", "content_type": "video/mp4"},
        headers=auth(token),
    )
    assert wrong_type.status_code in (400, 422)
    assert _video_count(client) == 0


def test_upload_url_at_the_limit_and_with_media_type_parameters(client: TestClient[Any]) -> None:
    _, token = register(client)
    response = _declare(client, token, 1_000_000, "Video/MP4; codecs=avc1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["method"] == "PUT"
    assert body["headers"] == {"Content-Type": "video/mp4"}
    assert body["expires_at"] > now_ms()
    row = video_row(context(client.app).settings, body["video_id"])
    assert (row.status, row.upload_kind, row.upload_size) == (
        "awaiting_upload",
        "presigned",
        1_000_000,
    )


# ------------------------------------------------------------ signed upload URL


def test_signed_put_stores_the_file_byte_for_byte(client: TestClient[Any], clip: bytes) -> None:
    _, token = register(client)
    body = _declare(client, token, len(clip)).json()
    url = body["upload_url"]
    settings = context(client.app).settings
    assert url.startswith(f"{settings.public_url}/v1/uploads/{body['video_id']}?")
    response = client.put(url, content=clip, headers=body["headers"])
    assert response.status_code == 200, response.text
    assert response.json() == {
        "video_id": body["video_id"],
        "status": "uploaded",
        "size": len(clip),
    }
    assert stored_upload(context(client.app).storage, body["video_id"]) == clip
    video = client.get(f"/v1/videos/{body['video_id']}", headers=auth(token)).json()
    assert video["status"] == "uploaded"
    again = client.put(url, content=clip, headers=body["headers"])
    assert again.status_code == 409


def test_signed_put_streams_a_body_without_content_length(
    client: TestClient[Any], clip: bytes
) -> None:
    _, token = register(client)
    body = _declare(client, token, len(clip)).json()
    response = client.put(body["upload_url"], content=_chunks(clip))
    assert response.status_code == 200, response.text
    assert stored_upload(context(client.app).storage, body["video_id"]) == clip


def _tampered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts._replace(query=urlencode(query)).geturl()


def test_signed_put_refuses_tampered_or_expired_urls(client: TestClient[Any], clip: bytes) -> None:
    _, token = register(client)
    body = _declare(client, token, len(clip)).json()
    other = _declare(client, token, len(clip)).json()
    url = body["upload_url"]
    signature = parse_qs(urlsplit(url).query)["signature"][0]
    expires = parse_qs(urlsplit(url).query)["expires"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    settings = context(client.app).settings
    bad_urls = [
        _tampered(url, signature=flipped),
        _tampered(url, expires=str(int(expires) + 60_000)),
        url.split("?")[0],
        # another video's valid signature does not open this one
        other["upload_url"].replace(other["video_id"], body["video_id"]),
        # correctly signed by the server's own key, but already expired
        signed_upload_url(settings, body["video_id"], now_ms() - 1),
    ]
    for bad in bad_urls:
        response = client.put(bad, content=clip)
        assert response.status_code == 403, (bad, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    assert context(client.app).storage.list(f"uploads/{body['video_id']}/") == []
    assert video_row(settings, body["video_id"]).status == "awaiting_upload"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_signed_put_with_the_wrong_size_keeps_nothing(
    client: TestClient[Any], clip: bytes, chunked: bool
) -> None:
    _, token = register(client)
    body = _declare(client, token, len(clip)).json()
    storage = context(client.app).storage
    prefix = f"uploads/{body['video_id']}/"
    for payload, status in ((clip + b"x", 413), (clip[:-1], 400)):
        content = _chunks(payload) if chunked else payload
        response = client.put(body["upload_url"], content=content)
        assert response.status_code == status, response.text
        assert storage.list(prefix) == []
    assert "incomplete" in response.json()["error"]["message"]
    row = video_row(context(client.app).settings, body["video_id"])
    assert (row.status, row.upload_offset, row.upload_lock) == ("awaiting_upload", 0, None)
    # the right file afterwards is accepted: a refused body leaves no lease or state behind
    assert client.put(body["upload_url"], content=clip).status_code == 200
    assert stored_upload(storage, body["video_id"]) == clip


def test_signed_put_refuses_a_media_type_not_accepted(client: TestClient[Any], clip: bytes) -> None:
    _, token = register(client)
    body = _declare(client, token, len(clip)).json()
    response = client.put(body["upload_url"], content=clip, headers={"Content-Type": "text/html"})
    assert response.status_code == 415
    assert context(client.app).storage.list(f"uploads/{body['video_id']}/") == []


# ------------------------------------------------------------------ direct PUT


def test_direct_put_by_the_owner(client: TestClient[Any], clip: bytes) -> None:
    _, token = register(client)
    video_id = _declare(client, token, len(clip)).json()["video_id"]
    response = client.put(f"/v1/videos/{video_id}/file", content=clip, headers=auth(token))
    assert response.status_code == 200, response.text
    assert stored_upload(context(client.app).storage, video_id) == clip
    row = video_row(context(client.app).settings, video_id)
    assert (row.status, row.upload_kind, row.upload_offset) == ("uploaded", "direct", len(clip))


def test_direct_put_by_anyone_else_is_refused(client: TestClient[Any], clip: bytes) -> None:
    owner_id, owner = register(client)
    _, stranger = register(client)
    video_id = _declare(client, owner, len(clip)).json()["video_id"]
    path = f"/v1/videos/{video_id}/file"
    assert client.put(path, content=clip).status_code == 401
    assert client.put(path, content=clip, headers=auth(stranger)).status_code == 404
    assert (
        client.put(
            "/v1/videos/v_nosuchvideo0000/file", content=clip, headers=auth(owner)
        ).status_code
        == 404
    )
    # a video the stranger can see, but not change
    public = seed_video(context(client.app).settings, owner_id)
    forbidden = client.put(f"/v1/videos/{public}/file", content=clip, headers=auth(stranger))
    assert forbidden.status_code == 403
    assert context(client.app).storage.list(f"uploads/{video_id}/") == []
    assert context(client.app).storage.list(f"uploads/{public}/") == []


def test_direct_put_wrong_size_and_second_upload(client: TestClient[Any], clip: bytes) -> None:
    _, token = register(client)
    video_id = _declare(client, token, len(clip)).json()["video_id"]
    path = f"/v1/videos/{video_id}/file"
    assert client.put(path, content=clip[:100], headers=auth(token)).status_code == 400
    assert client.put(path, content=_chunks(clip * 2), headers=auth(token)).status_code == 413
    assert context(client.app).storage.list(f"uploads/{video_id}/") == []
    assert client.put(path, content=clip, headers=auth(token)).status_code == 200
    assert client.put(path, content=clip, headers=auth(token)).status_code == 409
    assert stored_upload(context(client.app).storage, video_id) == clip


# ------------------------------------------------------------ presigned (S3)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server, endpoint = s3.start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture
def s3_client(tmp_path: Path, moto_endpoint: str) -> Iterator[TestClient[Any]]:
    bucket = "uploads-" + tmp_path.name.lower().replace("_", "-")[-40:]
    with api_client(
        tmp_path,
        storage="s3",
        s3_endpoint=moto_endpoint,
        s3_access_key=s3.ACCESS_KEY,
        s3_secret_key=s3.SECRET_KEY,
        s3_bucket=bucket,
    ) as test_client:
        yield test_client


def test_presigned_upload_goes_straight_to_object_storage(
    s3_client: TestClient[Any], moto_endpoint: str, clip: bytes
) -> None:
    _, token = register(s3_client)
    body = _declare(s3_client, token, len(clip)).json()
    url = body["upload_url"]
    # the URL is the object store's, not the API's: the API never carries these bytes
    assert urlsplit(url).netloc == moto_endpoint
    assert "X-Amz-Signature" in url
    video_id = body["video_id"]
    early = s3_client.post(f"/v1/videos/{video_id}/publish", json={}, headers=auth(token))
    assert early.status_code == 409
    assert "upload not complete" in early.json()["error"]["message"]
    put = httpx.put(url, content=clip, headers=body["headers"], timeout=30)
    assert put.status_code == 200, put.text
    storage = context(s3_client.app).storage
    assert stored_upload(storage, video_id) == clip
    published = s3_client.post(
        f"/v1/videos/{video_id}/publish", json={"caption": "from s3"}, headers=auth(token)
    )
    assert published.status_code == 202, published.text
    assert published.json()["status"] == "processing"
    history = s3_client.get(f"/v1/videos/{video_id}/history", headers=auth(token)).json()
    moves = [(h["from_status"], h["to_status"]) for h in history["history"]]
    assert moves[:3] == [
        ("", "awaiting_upload"),
        ("awaiting_upload", "uploaded"),
        ("uploaded", "processing"),
    ]


def test_presigned_upload_of_the_wrong_size_cannot_be_published(
    s3_client: TestClient[Any], clip: bytes
) -> None:
    _, token = register(s3_client)
    body = _declare(s3_client, token, len(clip)).json()
    put = httpx.put(body["upload_url"], content=clip[: len(clip) // 2], timeout=30)
    assert put.status_code == 200
    response = s3_client.post(
        f"/v1/videos/{body['video_id']}/publish", json={}, headers=auth(token)
    )
    assert response.status_code == 409
    assert video_row(context(s3_client.app).settings, body["video_id"]).status == "awaiting_upload"


def test_direct_put_streams_into_object_storage(s3_client: TestClient[Any], clip: bytes) -> None:
    _, token = register(s3_client)
    video_id = _declare(s3_client, token, len(clip)).json()["video_id"]
    path = f"/v1/videos/{video_id}/file"
    short = s3_client.put(path, content=_chunks(clip[:-10]), headers=auth(token))
    assert short.status_code == 400
    storage = context(s3_client.app).storage
    assert storage.list(f"uploads/{video_id}/") == []
    response = s3_client.put(path, content=_chunks(clip), headers=auth(token))
    assert response.status_code == 200, response.text
    assert stored_upload(storage, video_id) == clip


# ------------------------------------------------------------------- memory


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing from /proc/self/status")


def test_a_large_upload_streams_without_holding_the_file(tmp_path: Path) -> None:
    """128 MiB through a real socket: the process's peak memory barely moves."""
    size = 128 * 1024 * 1024
    piece = bytes(range(256)) * 4096  # 1 MiB

    def body() -> Iterator[bytes]:
        for _ in range(size // len(piece)):
            yield piece

    with live_server(tmp_path) as server:
        headers = {"Authorization": f"Bearer {_register_live(server)}"}
        declared = httpx.post(
            f"{server.url}/v1/videos/upload-url",
            json={"file_size_bytes": size, "content_type": "video/mp4"},
            headers=headers,
            timeout=30,
        ).json()
        video_id = declared["video_id"]
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        before = _rss_kib("VmRSS")
        response = httpx.put(
            f"{server.url}/v1/videos/{video_id}/file", content=body(), headers=headers, timeout=120
        )
        peak = _rss_kib("VmHWM")
        assert response.status_code == 200, response.text
        info = server.ctx.storage.stat(f"uploads/{video_id}/{0:012d}")
        assert info.size == size
        assert (peak - before) * 1024 < 48 * 1024 * 1024, (before, peak)


def _register_live(server: LiveServer) -> str:
    response = httpx.post(
        f"{server.url}/v1/auth/register",
        json={"handle": "big" + secrets.token_hex(4), "password": "correct horse 9"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])
