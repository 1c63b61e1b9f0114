"""Helpers for review and report tests: many accounts at once, moderators, and videos put in
review the way the pipeline, reports or an appeal would, with their safety rows.

Accounts are written straight into `users` and `tokens` (registering 50 viewers through the API
would hit the per-IP sign-up limit); their tokens are real and go through the real lookup.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy import insert, update

from api.core.caller import token_digest
from api.core.db import create_schema, new_id, now_ms, sync_engine
from api.core.identity import MODERATOR
from api.core.settings import Settings
from api.core.tables import tokens, users, video_history, video_safety, videos
from api.moderation.roles import set_role
from tests.support.api import seed_video

DAY_MS = 24 * 3600 * 1000


def seed_users(settings: Settings, count: int, prefix: str = "viewer") -> list[tuple[str, str]]:
    """`count` accounts with a valid token each: [(user_id, token)]."""
    engine = sync_engine(settings)
    create_schema(engine)
    now = now_ms()
    made: list[tuple[str, str]] = []
    user_rows, token_rows = [], []
    for _ in range(count):
        user_id, token = new_id("u"), secrets.token_urlsafe(32)
        handle = f"{prefix}{secrets.token_hex(5)}"
        user_rows.append(
            {
                "id": user_id,
                "handle": handle,
                "display_name": handle,
                "password_hash": "not a hash: these accounts never log in",
                "role": "user",
                "created_at": now,
            }
        )
        token_rows.append(
            {
                "token_hash": token_digest(token),
                "user_id": user_id,
                "created_at": now,
                "expires_at": now + DAY_MS,
            }
        )
        made.append((user_id, token))
    with engine.begin() as conn:
        conn.execute(insert(users), user_rows)
        conn.execute(insert(tokens), token_rows)
    engine.dispose()
    return made


def make_moderator(settings: Settings, handle: str) -> None:
    engine = sync_engine(settings)
    with engine.begin() as conn:
        assert set_role(conn, handle, MODERATOR)
    engine.dispose()


def seed_review_video(
    settings: Settings,
    owner_id: str,
    *,
    caption: str = "",
    came_from: str = "processing",
    reason: str = "held for review: automated scores",
    status: str = "in_review",
    render_id: str | None = "r_review",
    entered_at: int | None = None,
    published_at: int | None = None,
) -> str:
    """A video that moved `came_from → status` at `entered_at`, with outputs stored under
    `render_id` (as the pipeline leaves a video it holds), uncounted from its author."""
    video_id = seed_video(settings, owner_id, status=status, caption=caption)
    at = entered_at or now_ms()
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            update(videos)
            .where(videos.c.id == video_id)
            .values(
                render_id=render_id,
                updated_at=at,
                status_reason=reason,
                published_at=published_at,
            )
        )
        # seed_video counts every video; only published ones are counted.
        conn.execute(
            update(users).where(users.c.id == owner_id).values(video_count=users.c.video_count - 1)
        )
        conn.execute(
            insert(video_history).values(
                video_id=video_id, at=at, from_status=came_from, to_status=status, reason=reason
            )
        )
    engine.dispose()
    return video_id


def store_safety(
    settings: Settings,
    video_id: str,
    *,
    categories: dict[str, Any] | None = None,
    frames: list[dict[str, Any]] | None = None,
    pdq_hashes: list[dict[str, Any]] | None = None,
    held_by: tuple[str, ...] = ("moderation",),
    decision: str = "in_review",
    reason: str = "Held for review: automated moderation flagged it as possibly nsfw (0.82).",
) -> None:
    """The `video_safety` row api/safety/ `record` writes for a video it routed: scores per
    category with the findings, worst frames `{key, time_s, label, score}`, PDQ hashes
    `{time, hash, quality}`."""
    scores = {
        "categories": categories or {},
        "frames": 12,
        "model": "open_nsfw",
        "error": None,
        "findings": [{"check": check, "outcome": decision} for check in held_by],
        "pdq_matches": [],
        "muted": False,
    }
    engine = sync_engine(settings)
    with engine.begin() as conn:
        conn.execute(
            insert(video_safety).values(
                video_id=video_id,
                scores=json.dumps(scores),
                worst_frames=json.dumps(frames or []),
                pdq_hashes=json.dumps(pdq_hashes or []),
                decision=decision,
                reason=reason,
                created_at=now_ms(),
            )
        )
    engine.dispose()
