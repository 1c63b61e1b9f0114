"""Helpers for API tests: an embedded app in-process, accounts, and seeded videos.

`api_client(tmp_path)` runs the real Litestar app (its lifespan included: schema, storage,
the in-process Dramatiq worker) through Litestar's TestClient. Seeding writes rows straight
into the database for tests that need many published videos without transcoding each one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import insert, update

from api.app import create_app
from api.core.db import create_schema, new_id, now_ms, sync_engine
from api.core.settings import Settings
from api.core.tables import users, videos


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    base = Settings(data_dir=data_dir)
    return replace(base, **overrides).resolved()


@contextmanager
def api_client(data_dir: Path, **overrides: Any) -> Iterator[TestClient[Any]]:
    settings = make_settings(data_dir, **overrides)
    app = create_app(settings)
    with TestClient(app=app, base_url=settings.public_url) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(
    client: TestClient[Any], handle: str | None = None, password: str = "correct horse 9"
) -> tuple[str, str]:
    """Register a new account and return (user_id, token)."""
    handle = handle or "user" + secrets.token_hex(4)
    response = client.post("/v1/auth/register", json={"handle": handle, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user"]["id"], body["token"]


def seed_video(
    settings: Settings,
    owner_id: str,
    *,
    status: str = "published",
    privacy: str = "public",
    caption: str = "",
    published_at: int | None = None,
    render_id: str = "r_seed",
    **counters: int,
) -> str:
    """Insert a video row directly (no media behind it): for feed and social tests."""
    engine = sync_engine(settings)
    create_schema(engine)
    now = now_ms()
    video_id = new_id("v")
    with engine.begin() as conn:
        conn.execute(
            insert(videos).values(
                id=video_id,
                owner_id=owner_id,
                status=status,
                status_reason="",
                caption=caption,
                privacy=privacy,
                created_at=published_at or now,
                updated_at=now,
                published_at=(published_at or now) if status == "published" else None,
                upload_kind="direct",
                upload_size=1,
                upload_content_type="video/mp4",
                upload_offset=1,
                upload_expires_at=now,
                upload_metadata="",
                render_id=render_id if status == "published" else None,
                duration_s=10.0,
                width=1080,
                height=1920,
                renditions=json.dumps([]),
                **counters,
            )
        )
        conn.execute(
            update(users).where(users.c.id == owner_id).values(video_count=users.c.video_count + 1)
        )
    engine.dispose()
    return video_id


def upload_and_publish(client: TestClient[Any], token: str, data: bytes, caption: str = "") -> str:
    """Declare, upload in one PUT and publish a video as its owner; its id."""
    declared = client.post(
        "/v1/videos/upload-url",
        json={"file_size_bytes": len(data), "content_type": "video/mp4"},
        headers=auth(token),
    )
    video_id = str(declared.json()["video_id"])
    put = client.put(f"/v1/videos/{video_id}/file", content=data, headers=auth(token))
    assert put.status_code == 200, put.text
    published = client.post(
        f"/v1/videos/{video_id}/publish", json={"caption": caption}, headers=auth(token)
    )
    assert published.status_code == 202, published.text
    return video_id
