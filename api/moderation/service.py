"""Human review (issue 5, "Human review and reports"): the moderator role, the review queue,
decisions, and the report thresholds the feeds and reports read.

- A moderator is a user whose `users.role` is "moderator"; `reelforge moderator grant HANDLE`
  is the only way to make one (`set_role`).
- The queue holds the `in_review` videos, oldest in review first (`videos.updated_at` is the
  time of the last lifecycle move, and nothing else touches an in_review row), with what the
  automated checks found (`video_safety`, written by api/safety.py), why the video is there
  (the lifecycle move that put it there: from processing = automated checks, from published =
  reports, from rejected = the owner's appeal), its reports and its appeal.
- A decision moves `in_review → published | rejected` (a compare-and-set in api/lifecycle.py),
  is recorded in `moderation_decisions` (who, when, why) and resolves a pending appeal, all in
  one transaction. "reject" may also add the video's PDQ hashes to the blocklist; on a video
  that automation already rejected, "reject" with `add_to_blocklist` records the decision and
  blocklists it without moving it.
- `users.video_count` counts published videos (api/videos.py uncounts a published video when
  it is deleted): approving counts the video again, pulling it into review uncounts it.
- Reports: over `DEPRIORITIZE_OVER` distinct reporters the for-you ranking multiplies the score
  by `report_penalty`; over `REVIEW_OVER` the video is pulled into review (api/reports.py).
  An approval clears `report_count` (the moderator has judged those reports), so the penalty
  lifts and only new reporters can pull the video in again.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import now_ms
from api.core.domain_errors import Conflict, NotFound, Unprocessable
from api.core.identity import ROLES
from api.core.keys import safety_prefix
from api.core.paging import decode_cursor, encode_cursor
from api.core.tables import (
    appeals,
    moderation_decisions,
    reports,
    users,
    video_history,
    video_safety,
    videos,
)
from cdn.storage import ObjectNotFound

REPORT_REASONS = ("spam", "nudity", "violence", "hate", "copyright", "other")
DEPRIORITIZE_OVER = 10
REVIEW_OVER = 50
PULLED_BY_REPORTS = "reported by many viewers"
# The for-you score of a video over DEPRIORITIZE_OVER reports is multiplied by at most this.
REPORTED_WEIGHT = 0.1

Decision = Literal["approve", "reject"]
# Why a video is in review, from the state it came from.
SOURCE_OF = {
    lifecycle.PROCESSING: "automated",
    lifecycle.PUBLISHED: "reports",
    lifecycle.REJECTED: "appeal",
}


def report_penalty(report_count: int) -> float:
    """The factor the for-you score is multiplied by for a video's reports.

    1.0 up to `DEPRIORITIZE_OVER` distinct reporters; beyond, `REPORTED_WEIGHT` scaled down
    in proportion to the reports (0.091 at 11, 0.02 at 50): positive, so the score keeps its
    sign and the time decay still orders reported videos among themselves.
    """
    if report_count <= DEPRIORITIZE_OVER:
        return 1.0
    return REPORTED_WEIGHT * DEPRIORITIZE_OVER / report_count


# --------------------------------------------------------------------------- the role


def set_role(conn: Connection, handle: str, role: str) -> bool:
    """Give the user `handle` the role (`reelforge moderator grant|revoke`); False if no such
    user."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, not {role!r}")
    result = conn.execute(update(users).where(users.c.handle == handle).values(role=role))
    return bool(result.rowcount)


# ------------------------------------------------------------------- safety results


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
    score}`, api/safety.py `worst_frames`), numbered in their stored order; entries without a
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
    checks), from the findings api/safety.py records in `video_safety.scores`."""
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


async def _safety_rows(conn: AsyncConnection, video_ids: list[str]) -> dict[str, Any]:
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
        rows = await _safety_rows(conn, [video_id])
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


# ----------------------------------------------------------------------------- queue


@dataclass(frozen=True)
class QueueEntry:
    """One in_review video with everything a moderator reads (plain data; the route shapes
    it)."""

    video: Any  # the videos row joined with its author's handle and display name
    source: str  # automated | reports | appeal
    reason: str  # the reason of the move into review
    checks: list[str]  # automated: the checks that held it (api/safety.py findings)
    reports: dict[str, int]
    appeal: Any | None  # the appeals row
    safety: Any | None  # the video_safety row
    frames: list[WorstFrame]


def _queue_query(cursor: str | None, limit: int) -> Any:
    query = (
        select(
            videos.c.id,
            videos.c.owner_id,
            videos.c.caption,
            videos.c.privacy,
            videos.c.created_at,
            videos.c.updated_at,
            videos.c.report_count,
            videos.c.render_id,
            users.c.handle.label("author_handle"),
            users.c.display_name.label("author_display_name"),
        )
        .select_from(videos.join(users, users.c.id == videos.c.owner_id))
        .where(videos.c.status == lifecycle.IN_REVIEW)
    )
    if cursor:
        at, last_id = decode_cursor(cursor)
        query = query.where(
            or_(videos.c.updated_at > at, and_(videos.c.updated_at == at, videos.c.id > last_id))
        )
    return query.order_by(videos.c.updated_at, videos.c.id).limit(limit + 1)


async def _entry_reasons(conn: AsyncConnection, ids: list[str]) -> dict[str, tuple[str, str]]:
    """(source, reason) of the last move into review of each video."""
    query = (
        select(video_history.c.video_id, video_history.c.from_status, video_history.c.reason)
        .where(
            video_history.c.video_id.in_(ids),
            video_history.c.to_status == lifecycle.IN_REVIEW,
        )
        .order_by(video_history.c.id)
    )
    found: dict[str, tuple[str, str]] = {}
    for row in await conn.execute(query):
        found[row.video_id] = (SOURCE_OF.get(row.from_status, row.from_status), row.reason)
    return found


async def _report_reasons(conn: AsyncConnection, ids: list[str]) -> dict[str, dict[str, int]]:
    query = (
        select(reports.c.video_id, reports.c.reason, func.count())
        .where(reports.c.video_id.in_(ids))
        .group_by(reports.c.video_id, reports.c.reason)
    )
    found: dict[str, dict[str, int]] = defaultdict(dict)
    for video_id, reason, count in await conn.execute(query):
        found[video_id][reason] = int(count)
    return found


async def queue_page(
    ctx: AppContext, cursor: str | None, limit: int
) -> tuple[list[QueueEntry], str | None]:
    """A page of the review queue, oldest in review first, and the cursor of the next page."""
    async with ctx.db.connect() as conn:
        rows = list((await conn.execute(_queue_query(cursor, limit))).all())
        page = rows[:limit]
        ids = [row.id for row in page]
        if not ids:
            return [], None
        reasons = await _entry_reasons(conn, ids)
        counts = await _report_reasons(conn, ids)
        safety = await _safety_rows(conn, ids)
        appeal_rows = {
            row.video_id: row
            for row in await conn.execute(
                select(appeals).where(appeals.c.video_id.in_(ids), appeals.c.resolved.is_(False))
            )
        }
    entries = []
    for row in page:
        source, reason = reasons.get(row.id, ("automated", ""))
        safety_row = safety.get(row.id)
        entries.append(
            QueueEntry(
                video=row,
                source=source,
                reason=reason,
                checks=held_by(safety_row) if source == "automated" else [],
                reports=dict(counts.get(row.id, {})),
                appeal=appeal_rows.get(row.id),
                safety=safety_row,
                frames=parse_worst_frames(safety_row.worst_frames) if safety_row else [],
            )
        )
    more = len(rows) > limit
    return entries, encode_cursor(page[-1].updated_at, page[-1].id) if more else None


# ------------------------------------------------------------------------- decisions


@dataclass(frozen=True)
class DecisionResult:
    video_id: str
    status: str
    decision_id: int
    at: int
    blocklisted_hashes: int | None  # new blocklist entries, when the decision asked for it


async def count_published(conn: AsyncConnection, owner_id: str, delta: int) -> None:
    """Move the author's `video_count` (published videos) by `delta`, never below 0."""
    query = update(users).where(users.c.id == owner_id)
    if delta < 0:
        query = query.where(users.c.video_count > 0)
    await conn.execute(query.values(video_count=users.c.video_count + delta))


async def _apply(
    conn: AsyncConnection, row: Any, decision: Decision, reason: str, blocklist: bool
) -> str:
    """Move the video for the decision; returns its new status."""
    if decision == "approve":
        if row.status != lifecycle.IN_REVIEW:
            raise Conflict(f"the video is {row.status}; only a video in review can be approved")
        if not row.render_id:
            raise Conflict("the video has no stored outputs to publish")
        await lifecycle.move(
            conn,
            row.id,
            lifecycle.PUBLISHED,
            "published after review",
            published_at=row.published_at or now_ms(),
            report_count=0,
        )
        await count_published(conn, row.owner_id, 1)
        return lifecycle.PUBLISHED
    if row.status == lifecycle.IN_REVIEW:
        await lifecycle.move(conn, row.id, lifecycle.REJECTED, f"rejected by a moderator: {reason}")
        return lifecycle.REJECTED
    if row.status == lifecycle.REJECTED and blocklist:
        return lifecycle.REJECTED  # already rejected: the decision adds it to the blocklist
    raise Conflict(f"the video is {row.status}; only a video in review can be decided on")


def _blocklist(conn: Connection, video_id: str, moderator_id: str) -> int:
    """The rejected video's PDQ hashes into the blocklist (api/safety.py), inside the
    decision's transaction; how many were new (0: none usable, or all there already)."""
    # Imported here: api.safety brings the classifiers (numpy), which the pure parts of this
    # module (`report_penalty`, read by the ranking) must not.
    from api.safety.routing import BlocklistError, add_video_to_blocklist

    try:
        return add_video_to_blocklist(conn, video_id, moderator_id)
    except BlocklistError as exc:
        raise Conflict(str(exc)) from exc


async def decide(
    ctx: AppContext,
    video_id: str,
    moderator_id: str,
    decision: Decision,
    reason: str,
    add_to_blocklist: bool = False,
) -> DecisionResult:
    """Record a moderator's decision and apply it, in one transaction (see the module doc)."""
    reason = reason.strip()
    if decision == "reject" and not reason:
        raise Unprocessable("reason: a rejection needs a reason (the owner reads it)")
    if add_to_blocklist and decision != "reject":
        raise Unprocessable("add_to_blocklist: only a rejected video's hashes are blocklisted")
    query = select(
        videos.c.id,
        videos.c.owner_id,
        videos.c.status,
        videos.c.render_id,
        videos.c.published_at,
    ).where(videos.c.id == video_id)
    async with ctx.db.begin() as conn:
        row = (await conn.execute(query)).first()
        if row is None or row.status == lifecycle.DELETED:
            raise NotFound("no such video")
        try:
            status = await _apply(conn, row, decision, reason, add_to_blocklist)
        except lifecycle.TransitionError as exc:  # another moderator got there first
            raise Conflict(f"the video is {exc.current}; it was decided meanwhile") from exc
        blocklisted = None
        if add_to_blocklist:
            blocklisted = await conn.run_sync(_blocklist, video_id, moderator_id)
        await conn.execute(
            update(appeals)
            .where(appeals.c.video_id == video_id, appeals.c.resolved.is_(False))
            .values(resolved=True)
        )
        at = now_ms()
        result = await conn.execute(
            insert(moderation_decisions)
            .values(
                video_id=video_id,
                moderator_id=moderator_id,
                decision=decision,
                reason=reason,
                added_to_blocklist=add_to_blocklist,
                at=at,
            )
            .returning(moderation_decisions.c.id)
        )
        decision_id = int(result.scalar_one())
    if status == lifecycle.PUBLISHED:
        # Approved: warm the edges as publication by the job does (never raises).
        await asyncio.to_thread(ctx.jobs.warm, video_id)
    return DecisionResult(video_id, status, decision_id, at, blocklisted)


async def decisions(ctx: AppContext, video_id: str) -> list[Any]:
    """Every decision on the video, oldest first, with the moderator's handle; 404 when the
    video does not exist."""
    query = (
        select(moderation_decisions, users.c.handle.label("moderator_handle"))
        .select_from(
            moderation_decisions.join(users, users.c.id == moderation_decisions.c.moderator_id)
        )
        .where(moderation_decisions.c.video_id == video_id)
        .order_by(moderation_decisions.c.id)
    )
    async with ctx.db.connect() as conn:
        exists = (await conn.execute(select(videos.c.id).where(videos.c.id == video_id))).first()
        if exists is None:
            raise NotFound("no such video")
        return list((await conn.execute(query)).all())
