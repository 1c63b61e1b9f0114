"""A tus upload survives its API process being killed mid-PATCH (issue 16, item 4).

Two real `reelforge serve` processes share one database and one store (embedded: SQLite and
the local origin; production: PostgreSQL, Redis and an S3 server). A PATCH streams through the
first; a rival PATCH through the second gets 409 for as long as the first writer lives, even
when its client is slower than a whole lease; then the first process is SIGKILLed mid-body and
a resume through the second process takes over within `TAKEOVER_BOUND_S`, not after the old
minute-long lease, and the stored upload is byte for byte the file.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.core.services import make_storage
from api.core.settings import Settings
from api.uploads.lease import LEASE_MS
from tests.support.services import (
    ApiProcess,
    free_port,
    mode_env,
)
from tests.support.uploads import small_clip, stored_upload, video_row, wait_for

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
CHUNK = 32 * 1024
TAKEOVER_BOUND_S = LEASE_MS / 1000 + 2.0
"""A resume must succeed this soon after the writer's process died: one lease, plus slack."""


@contextmanager
def two_servers(tmp_path: Path, mode: str) -> Iterator[tuple[ApiProcess, ApiProcess, Settings]]:
    """Two API processes over the same database and store, both ready."""
    with ExitStack() as stack:
        env = mode_env(stack, mode, tmp_path / "data")
        first = stack.enter_context(ApiProcess(env, free_port(), tmp_path / "api-1.log"))
        first.start()
        second = stack.enter_context(ApiProcess(env, free_port(), tmp_path / "api-2.log"))
        second.start()
        yield first, second, Settings.from_env(env)


def _register(client: httpx.Client) -> dict[str, str]:
    handle = f"crash{time.time_ns() % 10**12}"
    response = client.post(
        "/v1/auth/register", json={"handle": handle, "password": "correct horse 9"}
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def _patch(client: httpx.Client, auth: dict[str, str], path: str, offset: int, body: bytes) -> int:
    headers = {**TUS, **OCTETS, **auth, "Upload-Offset": str(offset)}
    return client.patch(path, content=body, headers=headers).status_code


def _start_patch(
    url: str, path: str, auth: dict[str, str], offset: int, length: int, sent: bytes
) -> socket.socket:
    """A PATCH whose headers promise `length` bytes but whose body stops after `sent`."""
    conn = http.client.HTTPConnection(urlsplit(url).netloc, timeout=30)
    conn.putrequest("PATCH", path)
    headers = {**TUS, **OCTETS, **auth, "Upload-Offset": str(offset), "Content-Length": str(length)}
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(sent)
    assert conn.sock is not None
    return conn.sock


@pytest.mark.parametrize("mode", ["embedded", "production"])
def test_a_resume_takes_over_seconds_after_the_writer_was_killed(tmp_path: Path, mode: str) -> None:
    data = small_clip(tmp_path).read_bytes()
    with (
        two_servers(tmp_path, mode) as (first, second, settings),
        httpx.Client(base_url=first.url, timeout=30) as one,
        httpx.Client(base_url=second.url, timeout=30) as two,
    ):
        auth = _register(one)
        created = one.post(
            "/v1/uploads/tus", headers={**TUS, **auth, "Upload-Length": str(len(data))}
        )
        assert created.status_code == 201, created.text
        path = urlsplit(created.headers["Location"]).path
        video_id = path.rsplit("/", 1)[-1]
        assert _patch(one, auth, path, 0, data[:CHUNK]) == 204

        # A slow client: half a chunk, then nothing for longer than a whole lease.
        sock = _start_patch(first.url, path, auth, CHUNK, CHUNK, data[CHUNK : CHUNK + CHUNK // 2])
        wait_for(
            lambda: video_row(settings, video_id).upload_lock is not None, 10, "the PATCH's lease"
        )
        rival = two.patch(
            path,
            content=b"z" * CHUNK,
            headers={**TUS, **OCTETS, **auth, "Upload-Offset": str(CHUNK)},
        )
        assert rival.status_code == 409, rival.text
        assert rival.headers["Tus-Resumable"] == "1.0.0"
        assert int(rival.headers["Retry-After"]) >= 1
        time.sleep(LEASE_MS / 1000 + 2)
        assert _patch(two, auth, path, CHUNK, b"z" * CHUNK) == 409, "a live writer lost its lease"

        first.kill()  # SIGKILL mid-body: no handler runs, the lease is never released
        killed = time.monotonic()
        sock.close()
        attempts: list[int] = []
        while True:
            head = two.head(path, headers={**TUS, **auth})
            assert head.status_code == 200
            offset = int(head.headers["Upload-Offset"])
            assert offset == CHUNK  # the half-written part was never committed
            attempts.append(_patch(two, auth, path, offset, data[offset:]))
            if attempts[-1] != 409 or time.monotonic() - killed > 30:
                break
            time.sleep(0.25)
        took = time.monotonic() - killed
        print(f"\n[{mode}] resume took over {took:.2f} s after SIGKILL ({len(attempts)} tries)")
        assert attempts[-1] == 204, (attempts, second.log_tail())
        assert set(attempts[:-1]) <= {409}
        assert took <= TAKEOVER_BOUND_S, f"the resume waited {took:.1f} s"

        row = video_row(settings, video_id)
        assert (row.status, row.upload_offset, row.upload_lock) == ("uploaded", len(data), None)
        assert stored_upload(make_storage(settings), video_id) == data
