"""Helpers for the upload and video API tests: a small real clip, the app on a real socket
(for HTTP clients that cannot use Litestar's in-process TestClient, such as tuspy), a record
of the jobs the API enqueued, and the stored upload read back from storage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import uvicorn
from litestar import Litestar
from sqlalchemy import select

from api.app import create_app
from api.core.context import AppContext
from api.core.db import sync_engine
from api.core.settings import Settings
from api.core.tables import videos
from cdn.storage import Storage
from cli.serve import forwarded_options
from tests.support.api import make_settings
from tests.support.clips import ffmpeg


def small_clip(directory: Path, seconds: float = 2.0) -> Path:
    """A 2 s 240x426 H.264/AAC MP4 (about 100 KB): quick to upload and to transcode."""
    path = directory / "small.mp4"
    if not path.exists():
        ffmpeg(
            "-f", "lavfi", "-i", f"testsrc2=size=240x426:rate=15:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "96k", "-shortest", str(path),
        )  # fmt: skip
    assert path.stat().st_size > 32 * 1024, "the test clip is too small to be sent in chunks"
    return path


def context(app: Litestar) -> AppContext:
    ctx: AppContext = app.state.ctx
    return ctx


def stored_upload(storage: Storage, video_id: str) -> bytes:
    """The upload as the processing job sees it: its parts concatenated in key order."""
    parts = storage.list(f"uploads/{video_id}/")
    return b"".join(b"".join(storage.open_range(info.key)) for info in parts)


def video_row(settings: Settings, video_id: str) -> Any:
    engine = sync_engine(settings)
    try:
        with engine.connect() as conn:
            return conn.execute(select(videos).where(videos.c.id == video_id)).first()
    finally:
        engine.dispose()


def wait_for(predicate: Any, timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Enqueued(dramatiq.Middleware):
    """A real Dramatiq middleware that remembers every message the broker was given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, tuple[Any, ...]]] = []

    def after_enqueue(
        self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int
    ) -> None:
        self.messages.append((message.actor_name, tuple(message.args)))

    def of(self, actor_prefix: str) -> list[tuple[Any, ...]]:
        return [args for name, args in self.messages if name.startswith(actor_prefix)]


def record_jobs(app: Litestar) -> Enqueued:
    """Start recording what the running app enqueues."""
    recorder = Enqueued()
    context(app).jobs.broker.add_middleware(recorder)  # type: ignore[attr-defined]
    return recorder


@dataclass
class LiveServer:
    url: str
    app: Litestar
    settings: Settings

    @property
    def ctx(self) -> AppContext:
        return context(self.app)


@contextmanager
def live_server(data_dir: Path, **overrides: Any) -> Iterator[LiveServer]:
    """The embedded app served by uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = make_settings(data_dir, port=port, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
        **forwarded_options(settings),  # as `reelforge serve` runs it
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), 30, "uvicorn to start")
        assert server.started, "uvicorn did not start"
        yield LiveServer(url=settings.public_url, app=app, settings=settings)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
