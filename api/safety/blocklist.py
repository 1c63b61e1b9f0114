"""The PDQ blocklist of known-bad content (issue 5, "Known-bad content").

The routing (api/safety/routing.py) rejects an upload with a sampled frame near a blocklisted
hash; `add_video_to_blocklist` is the moderators' way (api/moderation) to turn a rejected
video into known-bad content.
"""

from __future__ import annotations

import json

from sqlalchemy import Connection, insert, select

from api.core import lifecycle
from api.core.db import now_ms
from api.core.domain_errors import Conflict
from api.core.tables import pdq_blocklist, video_safety, videos


class BlocklistError(Conflict, ValueError):
    """The video cannot be blocklisted (not rejected, or nothing usable was hashed): a
    conflict with the video's state, answered 409 by the error table."""


def load_blocklist(conn: Connection) -> list[tuple[int, str]]:
    """(id, hash) of every blocklist entry."""
    rows = conn.execute(select(pdq_blocklist.c.id, pdq_blocklist.c.hash))
    return [(int(row.id), str(row.hash)) for row in rows]


def add_video_to_blocklist(
    conn: Connection, video_id: str, moderator_id: str, *, min_quality: int = 50
) -> int:
    """Add a rejected video's PDQ hashes (those of quality ≥ `min_quality`, each distinct
    within 0 bits) to the blocklist; returns how many rows were added (0 when they are
    already there, or when every sampled frame was too flat to hash usefully).

    Runs inside the caller's transaction (the moderator's decision).
    """
    status = conn.execute(select(videos.c.status).where(videos.c.id == video_id)).scalar()
    if status != lifecycle.REJECTED:
        raise BlocklistError(f"video {video_id} is {status or 'missing'}; only rejected videos")
    raw = conn.execute(
        select(video_safety.c.pdq_hashes).where(video_safety.c.video_id == video_id)
    ).scalar()
    hashes = [
        str(entry["hash"])
        for entry in json.loads(raw or "[]")
        if int(entry.get("quality", 0)) >= min_quality
    ]
    existing = {
        str(h)
        for h in conn.execute(
            select(pdq_blocklist.c.hash).where(pdq_blocklist.c.source_video_id == video_id)
        ).scalars()
    }
    fresh = sorted(set(hashes) - existing)
    if fresh:
        now = now_ms()
        conn.execute(
            insert(pdq_blocklist),
            [
                {
                    "hash": h,
                    "source_video_id": video_id,
                    "added_by": moderator_id,
                    "created_at": now,
                }
                for h in fresh
            ],
        )
    return len(fresh)
