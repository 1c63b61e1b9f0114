"""Helpers for processing-job tests: a video row with its upload already in storage.

The upload routes are tested elsewhere; these helpers write what they leave behind (parts
under `uploads/{vid}/` named by their 12-digit byte offset, and a row in `processing`), so
the job and the origin can be tested on their own, against the real database and storage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select

from api.core.db import new_id, now_ms
from api.core.tables import users, video_history, videos
from cdn.storage import Storage


def insert_user(db: Engine, display_name: str = "tester") -> str:
    """A user row (no password, role user) to own the videos a job test stages."""
    user_id = new_id("u")
    with db.begin() as conn:
        conn.execute(
            insert(users).values(
                id=user_id,
                handle=user_id.replace("_", ""),
                display_name=display_name,
                password_hash="-",
                role="user",
                created_at=now_ms(),
            )
        )
    return user_id


def put_upload(storage: Storage, video_id: str, data: bytes, parts: int = 1) -> None:
    """Store `data` as `parts` pieces, each named by its byte offset (`000000000000`, ...)."""
    size = max(1, -(-len(data) // parts))
    for offset in range(0, len(data), size):
        storage.put_bytes(f"uploads/{video_id}/{offset:012d}", data[offset : offset + size])


def insert_processing_video(
    db: Engine,
    owner_id: str,
    upload_size: int,
    *,
    status: str = "processing",
    privacy: str = "public",
    lane: str = "normal",
    attempts: int = 0,
) -> str:
    """A video row as the publish route leaves it (moved to `processing`, with history)."""
    video_id = new_id("v")
    now = now_ms()
    with db.begin() as conn:
        conn.execute(
            insert(videos).values(
                id=video_id,
                owner_id=owner_id,
                status=status,
                status_reason="",
                caption="test",
                privacy=privacy,
                created_at=now,
                updated_at=now,
                upload_kind="direct",
                upload_size=upload_size,
                upload_content_type="video/mp4",
                upload_offset=upload_size,
                upload_expires_at=now + 3_600_000,
                upload_metadata="",
                lane=lane,
                attempts=attempts,
                renditions="[]",
            )
        )
        conn.execute(
            insert(video_history).values(
                video_id=video_id, at=now, from_status="uploaded", to_status=status, reason="test"
            )
        )
    return video_id


def stage_video(db: Engine, storage: Storage, owner_id: str, source: Path, **row: Any) -> str:
    """A `processing` video whose upload is `source`'s bytes (in two parts)."""
    data = source.read_bytes()
    video_id = insert_processing_video(db, owner_id, len(data), **row)
    put_upload(storage, video_id, data, parts=2)
    return video_id


def video_row(db: Engine, video_id: str) -> Any:
    with db.connect() as conn:
        return conn.execute(select(videos).where(videos.c.id == video_id)).one()


def history(db: Engine, video_id: str) -> list[tuple[str, str, str]]:
    """(from, to, reason) of every recorded move of the video, oldest first."""
    query = (
        select(video_history.c.from_status, video_history.c.to_status, video_history.c.reason)
        .where(video_history.c.video_id == video_id)
        .order_by(video_history.c.id)
    )
    with db.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds; fail (never skip) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
