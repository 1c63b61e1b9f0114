"""What the automated checks left for a moderator to look at (issue 5, "Human review and
reports"): the checks that held a video (`video_safety.scores`) and its worst frames (JPEGs
under `safety/{video_id}/`, listed in `video_safety.worst_frames`), both written by
api/safety/routing.py."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core import lifecycle
from api.core.context import AppContext
from api.core.domain_errors import NotFound
from api.core.keys import safety_prefix
from api.core.tables import video_safety
from cdn.storage import ObjectNotFound


@dataclass(frozen=True)
class WorstFrame:
    """One worst-frame JPEG the automated checks stored (`video_safety.worst_frames`)."""

    key: str
    time_s: float | None
    label: str | None
    score: float | None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def parse_worst_frames(raw: str | None) -> list[WorstFrame]:
    """The frames of `video_safety.worst_frames` (a JSON list of `{key, time_s, label,
    score}`, api/safety `worst_frames`), numbered in their stored order; entries without a
    storage key are skipped."""
    try:
        data = json.loads(raw or "[]")
    except ValueError:
        return []
    frames = []
    for entry in data if isinstance(data, list) else []:
        key = entry.get("key") if isinstance(entry, dict) else None
        if not isinstance(key, str) or not key:
            continue
        label = entry.get("label")
        frames.append(
            WorstFrame(
                key=key,
                time_s=_number(entry.get("time_s")),
                label=label if isinstance(label, str) else None,
                score=_number(entry.get("score")),
            )
        )
    return frames


def held_by(safety_row: Any | None) -> list[str]:
    """Which automated checks held the video for review (moderation, words, pdq, copyright,
    checks), from the findings api/safety records in `video_safety.scores`."""
    if safety_row is None:
        return []
    try:
        findings = json.loads(safety_row.scores or "{}").get("findings") or []
    except (ValueError, AttributeError):
        return []
    checks = [
        f.get("check")
        for f in findings
        if isinstance(f, dict) and f.get("outcome") == lifecycle.IN_REVIEW
    ]
    return sorted({c for c in checks if isinstance(c, str)})


async def safety_rows(conn: AsyncConnection, video_ids: list[str]) -> dict[str, Any]:
    """The `video_safety` rows of the videos, by video id (none for a video not checked)."""
    if not video_ids:
        return {}
    query = select(video_safety).where(video_safety.c.video_id.in_(video_ids))
    rows = await conn.execute(query)
    return {row.video_id: row for row in rows}


async def frame_key(ctx: AppContext, video_id: str, n: int) -> str:
    """The storage key of the video's worst frame number `n`; 404 when there is none.

    Only keys under the video's own `safety/{video_id}/` prefix are served, whatever the row
    says.
    """
    async with ctx.db.connect() as conn:
        rows = await safety_rows(conn, [video_id])
    row = rows.get(video_id)
    frames = parse_worst_frames(row.worst_frames) if row is not None else []
    if not 0 <= n < len(frames) or not frames[n].key.startswith(safety_prefix(video_id)):
        raise NotFound("no such frame")
    return frames[n].key


async def read_frame(ctx: AppContext, video_id: str, n: int) -> bytes:
    """The bytes of worst frame `n` (a JPEG of a few tens of kB); 404 when it is not stored."""
    key = await frame_key(ctx, video_id, n)

    def read() -> bytes:
        return b"".join(ctx.storage.open_range(key))

    try:
        return await asyncio.to_thread(read)
    except ObjectNotFound:
        raise NotFound("no such frame") from None
