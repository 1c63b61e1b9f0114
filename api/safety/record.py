"""What the automated checks found on a video, kept for moderators and appeals (issue 5):
its `video_safety` row (scores, findings, worst frames, PDQ hashes, the decision) and its
copyright claim, written in the transaction that moves the video.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, delete, insert

from api.core.db import now_ms
from api.core.tables import video_safety
from api.safety.config import copyright_module
from api.safety.routing import Routing


def worst_frames(moderation: dict[str, Any] | None, prefix: str) -> list[dict[str, Any]]:
    """`video_safety.worst_frames`: [{key, time_s, label, score}], worst first per label."""
    frames = []
    for label, stats in sorted(((moderation or {}).get("categories") or {}).items()):
        for entry in stats.get("worst", []):
            if entry.get("image"):
                frames.append(
                    {
                        "key": prefix + entry["image"],
                        "time_s": entry.get("time"),
                        "label": label,
                        "score": entry.get("score"),
                    }
                )
    return frames


def record(
    conn: Connection,
    video_id: str,
    routing: Routing,
    analysis: dict[str, Any] | None,
    frames: list[dict[str, Any]],
) -> None:
    """Write (or rewrite) the video's `video_safety` row, and its copyright claim if any,
    inside the caller's transaction (the one that moves the video)."""
    analysis = analysis or {}
    moderation = analysis.get("moderation") or {}
    scores = {
        "categories": {
            label: {k: v for k, v in stats.items() if k != "worst"}
            for label, stats in (moderation.get("categories") or {}).items()
        },
        "frames": moderation.get("frames", 0),
        "model": moderation.get("model"),
        "error": moderation.get("error"),
        "findings": [{"check": f.check, "outcome": f.outcome} for f in routing.findings],
        "pdq_matches": [
            {"time": m.time, "blocklist_id": m.entry_id, "distance": m.distance}
            for m in routing.pdq_matches
        ],
        "muted": routing.mute,
    }
    pdq_hashes = (analysis.get("pdq") or {}).get("hashes", [])
    conn.execute(delete(video_safety).where(video_safety.c.video_id == video_id))
    conn.execute(
        insert(video_safety).values(
            video_id=video_id,
            scores=json.dumps(scores),
            worst_frames=json.dumps(frames),
            pdq_hashes=json.dumps(pdq_hashes),
            decision=routing.status,
            reason=routing.reason,
            created_at=now_ms(),
        )
    )
    if routing.claim:
        copyright_module().record_claim(conn, video_id, routing.claim)
