"""tus 1.0 resumable uploads (core + creation + termination), spoken to by the real tuspy
client (`tusclient`) and by raw HTTP against the app on a real socket."""

from __future__ import annotations

import base64
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from tusclient import client as tus_client

from api.uploads.tus import parse_metadata
from cdn.storage import StorageError
from tests.support.uploads import (
    LiveServer,
    live_server,
    small_clip,
    stored_upload,
    video_row,
    wait_for,
)

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
CHUNK = 16 * 1024
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_clip(tmp_path_factory.mktemp("tus-clip"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("tus-server"), max_upload_bytes=MAX_BYTES) as live:
        yield live


@pytest.fixture
def token(server: LiveServer) -> str:
    return _register(server)


def _register(server: LiveServer) -> str:
    handle = "tus" + base64.b32encode(time.time_ns().to_bytes(8, "big")).decode().lower()[:12]
    response = requests.post(
        f"{server.url}/v1/auth/register",
        json={"handle": handle, "password": "correct horse 9"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["token"])


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _create(server: LiveServer, token: str, length: int, **headers: str) -> requests.Response:
    return requests.post(
        f"{server.url}/v1/uploads/tus",
        headers={
            **TUS,
            **_auth(token),
            "Upload-Length": str(length),
            "Upload-Metadata": _metadata(filename="clip.mp4", filetype="video/mp4"),
            **headers,
        },
        timeout=30,
    )


def _new_upload(server: LiveServer, token: str, length: int) -> str:
    response = _create(server, token, length)
    assert response.status_code == 201, response.text
    return str(response.headers["Location"])


def _offset(url: str, token: str) -> int:
    response = requests.head(url, headers={**TUS, **_auth(token)}, timeout=30)
    assert response.status_code == 200, response.status_code
    return int(response.headers["Upload-Offset"])


def _patch(url: str, token: str, offset: int, body: bytes, **headers: str) -> requests.Response:
    return requests.patch(
        url,
        data=body,
        headers={**TUS, **OCTETS, **_auth(token), "Upload-Offset": str(offset), **headers},
        timeout=30,
    )


def _video_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


# ----------------------------------------------------------------- discovery


@pytest.mark.parametrize("path", ["/v1/uploads/tus", "/v1/uploads/tus/v_anything"])
def test_options_says_what_the_server_supports(server: LiveServer, path: str) -> None:
    response = requests.options(server.url + path, timeout=30)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {"creation", "termination"}
    assert int(response.headers["Tus-Max-Size"]) == server.settings.max_upload_bytes


# ------------------------------------------------------------------ creation


def test_creation_answers_an_absolute_location_and_head_reports_the_offset(
    server: LiveServer, token: str
) -> None:
    response = _create(server, token, 1234)
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    location = response.headers["Location"]
    assert location.startswith(f"{server.settings.public_url}/v1/uploads/tus/v_")
    head = requests.head(location, headers={**TUS, **_auth(token)}, timeout=30)
    assert head.status_code == 200
    assert head.headers["Upload-Offset"] == "0"
    assert head.headers["Upload-Length"] == "1234"
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Tus-Resumable"] == "1.0.0"
    assert parse_metadata(head.headers["Upload-Metadata"]) == {
        "filename": "clip.mp4",
        "filetype": "video/mp4",
    }
    row = video_row(server.settings, _video_id(location))
    assert (row.status, row.upload_kind, row.upload_size) == ("awaiting_upload", "tus", 1234)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Upload-Length": str(MAX_BYTES + 1)}, 413),
        ({"Upload-Length": "0"}, 422),
        ({"Upload-Length": "-3"}, 400),
        ({"Upload-Length": "lots"}, 400),
        ({"Upload-Metadata": _metadata(filetype="application/pdf")}, 415),
        ({"Upload-Metadata": "filetype not*base64"}, 400),
    ],
)
def test_creation_refuses_bad_uploads(
    server: LiveServer, token: str, headers: dict[str, str], status: int
) -> None:
    response = _create(server, token, 1000, **headers)
    assert response.status_code == status, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert "Location" not in response.headers


def test_creation_without_upload_length_or_token(server: LiveServer, token: str) -> None:
    no_length = requests.post(
        f"{server.url}/v1/uploads/tus", headers={**TUS, **_auth(token)}, timeout=30
    )
    assert no_length.status_code == 400
    anonymous = requests.post(
        f"{server.url}/v1/uploads/tus", headers={**TUS, "Upload-Length": "10"}, timeout=30
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["Tus-Resumable"] == "1.0.0"


def test_requests_without_tus_resumable_get_412(server: LiveServer, token: str) -> None:
    url = _new_upload(server, token, 100)
    attempts = [
        requests.post(
            f"{server.url}/v1/uploads/tus",
            headers={**_auth(token), "Upload-Length": "10"},
            timeout=30,
        ),
        requests.head(url, headers=_auth(token), timeout=30),
        requests.patch(
            url, data=b"x", headers={**OCTETS, **_auth(token), "Upload-Offset": "0"}, timeout=30
        ),
        requests.delete(url, headers=_auth(token), timeout=30),
        requests.head(url, headers={**_auth(token), "Tus-Resumable": "0.2.2"}, timeout=30),
    ]
    for response in attempts:
        assert response.status_code == 412, response.request.method
        assert response.headers["Tus-Version"] == "1.0.0"
        assert response.headers["Tus-Resumable"] == "1.0.0"
    assert _offset(url, token) == 0


# ---------------------------------------------------------------------- PATCH


def test_patch_appends_parts_and_completes_the_upload(
    server: LiveServer, token: str, clip: Path
) -> None:
    data = clip.read_bytes()
    url = _new_upload(server, token, len(data))
    first = _patch(url, token, 0, data[:CHUNK])
    assert first.status_code == 204, first.text
    assert first.headers["Upload-Offset"] == str(CHUNK)
    assert first.headers["Tus-Resumable"] == "1.0.0"
    assert _offset(url, token) == CHUNK
    video_id = _video_id(url)
    assert video_row(server.settings, video_id).status == "awaiting_upload"
    rest = _patch(url, token, CHUNK, data[CHUNK:])
    assert rest.status_code == 204
    assert rest.headers["Upload-Offset"] == str(len(data))
    keys = [info.key for info in server.ctx.storage.list(f"uploads/{video_id}/")]
    assert keys == [f"uploads/{video_id}/{0:012d}", f"uploads/{video_id}/{CHUNK:012d}"]
    assert stored_upload(server.ctx.storage, video_id) == data
    assert video_row(server.settings, video_id).status == "uploaded"


def test_patch_at_the_wrong_offset_is_a_conflict(server: LiveServer, token: str) -> None:
    url = _new_upload(server, token, 100)
    assert _patch(url, token, 0, b"a" * 40).status_code == 204
    for wrong in (0, 39, 41, 100):
        response = _patch(url, token, wrong, b"b" * 10)
        assert response.status_code == 409, wrong
        assert response.headers["Tus-Resumable"] == "1.0.0"
    assert _offset(url, token) == 40
    assert stored_upload(server.ctx.storage, _video_id(url)) == b"a" * 40


def test_patch_needs_the_offset_content_type(server: LiveServer, token: str) -> None:
    url = _new_upload(server, token, 100)
    for content_type in ("application/octet-stream", "video/mp4", ""):
        response = _patch(url, token, 0, b"a" * 10, **{"Content-Type": content_type})
        assert response.status_code == 415, content_type
    assert _offset(url, token) == 0
    assert server.ctx.storage.list(f"uploads/{_video_id(url)}/") == []


def test_patch_past_the_upload_length_keeps_nothing(server: LiveServer, token: str) -> None:
    url = _new_upload(server, token, 100)
    assert _patch(url, token, 0, b"a" * 60).status_code == 204
    too_long = _patch(url, token, 60, b"b" * 41)
    assert too_long.status_code == 413
    # the same without Content-Length: the server counts the streamed bytes itself
    chunked = _patch(url, token, 60, iter([b"b" * 30, b"b" * 11]))  # type: ignore[arg-type]
    assert chunked.status_code == 413
    assert _offset(url, token) == 60
    assert stored_upload(server.ctx.storage, _video_id(url)) == b"a" * 60
    assert _patch(url, token, 60, b"c" * 40).status_code == 204
    assert video_row(server.settings, _video_id(url)).status == "uploaded"


def test_a_storage_failure_is_storage_unavailable_on_tus_routes_too(
    server: LiveServer, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tus route answers an object store failure with the code every other route uses
    (`storage_unavailable`), plus the `Tus-Resumable` every tus answer carries."""

    def unavailable(*args: object, **kwargs: object) -> None:
        raise StorageError("the object store is down")

    url = _new_upload(server, token, 100)
    declared = requests.post(
        f"{server.url}/v1/videos/upload-url",
        json={"file_size_bytes": 10, "content_type": "video/mp4"},
        headers=_auth(token),
        timeout=30,
    )
    assert declared.status_code == 201, declared.text
    monkeypatch.setattr(server.ctx.storage, "put_stream", unavailable)
    tus_reply = _patch(url, token, 0, b"a" * 10)
    direct = requests.put(
        f"{server.url}/v1/videos/{declared.json()['video_id']}/file",
        data=b"a" * 10,
        headers=_auth(token),
        timeout=30,
    )
    message = "object storage is unavailable; retry later"
    expected = {"error": {"code": "storage_unavailable", "message": message}}
    assert (tus_reply.status_code, tus_reply.json()) == (503, expected)
    assert tus_reply.headers["Tus-Resumable"] == "1.0.0"
    assert (direct.status_code, direct.json()) == (503, expected)
    monkeypatch.undo()
    assert _offset(url, token) == 0


def test_only_the_owner_reaches_an_upload(server: LiveServer, token: str) -> None:
    url = _new_upload(server, token, 100)
    stranger = _register(server)
    head = requests.head(url, headers={**TUS, **_auth(stranger)}, timeout=30)
    assert head.status_code == 404
    assert _patch(url, stranger, 0, b"x" * 10).status_code == 404
    delete = requests.delete(url, headers={**TUS, **_auth(stranger)}, timeout=30)
    assert delete.status_code == 404
    assert requests.head(url, headers=TUS, timeout=30).status_code == 401
    assert _offset(url, token) == 0
    assert video_row(server.settings, _video_id(url)).status == "awaiting_upload"


# ------------------------------------------------------------------- tuspy


def _tuspy(server: LiveServer, token: str) -> tus_client.TusClient:
    return tus_client.TusClient(f"{server.url}/v1/uploads/tus", headers=_auth(token))


def test_tuspy_uploads_a_clip_byte_for_byte(server: LiveServer, token: str, clip: Path) -> None:
    uploader = _tuspy(server, token).uploader(
        str(clip), chunk_size=CHUNK, metadata={"filename": clip.name, "filetype": "video/mp4"}
    )
    uploader.upload()
    video_id = _video_id(str(uploader.url))
    data = clip.read_bytes()
    assert stored_upload(server.ctx.storage, video_id) == data
    parts = server.ctx.storage.list(f"uploads/{video_id}/")
    assert len(parts) == -(-len(data) // CHUNK)
    row = video_row(server.settings, video_id)
    assert (row.status, row.upload_offset, row.upload_size) == ("uploaded", len(data), len(data))


def test_tuspy_resumes_with_a_new_client(server: LiveServer, token: str, clip: Path) -> None:
    data = clip.read_bytes()
    first = _tuspy(server, token).uploader(
        str(clip), chunk_size=CHUNK, metadata={"filetype": "video/mp4"}
    )
    first.upload(stop_at=2 * CHUNK)  # the client stops after two chunks
    url = str(first.url)
    assert _offset(url, token) == 2 * CHUNK
    assert video_row(server.settings, _video_id(url)).status == "awaiting_upload"
    second = _tuspy(server, token).uploader(str(clip), chunk_size=CHUNK, url=url)
    assert second.offset == 2 * CHUNK  # asked the server (HEAD), not its own memory
    second.upload()
    assert stored_upload(server.ctx.storage, _video_id(url)) == data
    assert video_row(server.settings, _video_id(url)).status == "uploaded"


def _start_patch(url: str, token: str, offset: int, length: int, sent: bytes) -> socket.socket:
    """A PATCH whose headers promise `length` bytes but whose body stops after `sent`."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    conn.putrequest("PATCH", parts.path)
    for name, value in {
        **TUS,
        **OCTETS,
        **_auth(token),
        "Upload-Offset": str(offset),
        "Content-Length": str(length),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(sent)
    assert conn.sock is not None
    return conn.sock


def _lease_free(server: LiveServer, video_id: str) -> bool:
    return video_row(server.settings, video_id).upload_lock is None


def test_an_interrupted_patch_keeps_nothing_and_tuspy_resumes(
    server: LiveServer, token: str, clip: Path
) -> None:
    data = clip.read_bytes()
    url = _new_upload(server, token, len(data))
    video_id = _video_id(url)
    assert _patch(url, token, 0, data[:CHUNK]).status_code == 204
    sock = _start_patch(url, token, CHUNK, CHUNK, data[CHUNK : CHUNK + CHUNK // 2])
    wait_for(lambda: not _lease_free(server, video_id), 10, "the PATCH to take its lease")
    sock.close()  # the phone loses its network mid-chunk
    wait_for(lambda: _lease_free(server, video_id), 10, "the lease to be released")
    assert _offset(url, token) == CHUNK
    keys = [info.key for info in server.ctx.storage.list(f"uploads/{video_id}/")]
    assert keys == [f"uploads/{video_id}/{0:012d}"]
    resumed = _tuspy(server, token).uploader(str(clip), chunk_size=CHUNK, url=url)
    assert resumed.offset == CHUNK
    resumed.upload()
    assert stored_upload(server.ctx.storage, video_id) == data


def test_a_concurrent_patch_at_the_same_offset_loses(
    server: LiveServer, token: str, clip: Path
) -> None:
    data = clip.read_bytes()
    url = _new_upload(server, token, len(data))
    video_id = _video_id(url)
    sock = _start_patch(url, token, 0, CHUNK, data[: CHUNK // 2])
    try:
        wait_for(lambda: not _lease_free(server, video_id), 10, "the first PATCH's lease")
        rival = _patch(url, token, 0, b"z" * CHUNK)
        assert rival.status_code == 409
        assert rival.headers["Tus-Resumable"] == "1.0.0"
        sock.sendall(data[CHUNK // 2 : CHUNK])
        reply = _read_status(sock)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 204"), reply
    assert _offset(url, token) == CHUNK
    assert stored_upload(server.ctx.storage, video_id) == data[:CHUNK]


def _read_status(sock: socket.socket) -> bytes:
    reply = b""
    while b"\r\n" not in reply:
        piece = sock.recv(4096)
        if not piece:
            break
        reply += piece
    return reply


# --------------------------------------------------------------- termination


def test_termination_removes_the_parts_and_the_video(
    server: LiveServer, token: str, clip: Path
) -> None:
    data = clip.read_bytes()
    url = _new_upload(server, token, len(data))
    video_id = _video_id(url)
    assert _patch(url, token, 0, data[:CHUNK]).status_code == 204
    assert server.ctx.storage.list(f"uploads/{video_id}/") != []
    response = requests.delete(url, headers={**TUS, **_auth(token)}, timeout=30)
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert server.ctx.storage.list(f"uploads/{video_id}/") == []
    assert requests.head(url, headers={**TUS, **_auth(token)}, timeout=30).status_code == 404
    assert _patch(url, token, CHUNK, data[CHUNK:]).status_code == 404
    video = requests.get(f"{server.url}/v1/videos/{video_id}", headers=_auth(token), timeout=30)
    assert video.status_code == 404
    assert video_row(server.settings, video_id).status == "deleted"
    again = requests.delete(url, headers={**TUS, **_auth(token)}, timeout=30)
    assert again.status_code == 404


def test_a_tus_upload_can_be_published(server: LiveServer, token: str, clip: Path) -> None:
    uploader = _tuspy(server, token).uploader(str(clip), metadata={"filetype": "video/mp4"})
    uploader.upload()
    video_id = _video_id(str(uploader.url))
    response = requests.post(
        f"{server.url}/v1/videos/{video_id}/publish",
        json={"caption": "resumable", "privacy": "unlisted"},
        headers=_auth(token),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "processing"
    row = video_row(server.settings, video_id)
    assert (row.caption, row.privacy) == ("resumable", "unlisted")
    assert row.status != "awaiting_upload"
