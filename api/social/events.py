"""Watch events (issue 3, "Social" and "Feed"): a batch is screened, recorded once per
`(user, event_id)` ever, moves the videos' counters, and marks what the for-you feed must not
show the viewer again.

Screening: an event naming a video the caller cannot see, or with an out-of-range value, is
rejected while the rest of the batch is recorded; a repeat within the batch or of an event
already recorded counts as a duplicate. Counters move only by the events really inserted, in
the same transaction, video by video in id order (no deadlock between concurrent batches).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.context import AppContext
from api.core.db import dialect_insert, insert_ignore, now_ms
from api.core.tables import seen, videos, watch_events
from api.feed.seen import remember_seen
from api.social.access import visible_ids
from api.social.schemas import EventIn, EventsOut, RejectedEvent

# One watch_ms event reports at most an hour of watching (short videos, generous for loops).
MAX_EVENT_VALUE = 3_600_000

# Which video counter each new event bumps by one ("watch_ms" adds its value, "loop" none).
COUNTER_OF: dict[str, str] = {
    "impression": "impression_count",
    "play": "view_count",
    "completed": "completion_count",
    "skip": "skip_count",
    "share": "share_count",
    "not_interested": "not_interested_count",
}
# Events after which the for-you feed never shows the video to this viewer again.
MARKS_SEEN = frozenset({"play", "completed", "skip", "not_interested"})


def _screen(
    events: list[EventIn], visible: set[str]
) -> tuple[list[EventIn], int, list[RejectedEvent]]:
    """Split a batch into events to insert, in-batch repeats and rejections."""
    keep: dict[str, EventIn] = {}
    repeats = 0
    rejected: list[RejectedEvent] = []
    for event in events:
        if event.event_id in keep:
            repeats += 1
        elif event.video_id not in visible:
            rejected.append(RejectedEvent(event.event_id, "unknown_video"))
        elif event.value is not None and not 0 <= event.value <= MAX_EVENT_VALUE:
            rejected.append(RejectedEvent(event.event_id, "invalid_value"))
        elif event.type == "watch_ms" and event.value is None:
            rejected.append(RejectedEvent(event.event_id, "missing_value"))
        else:
            keep[event.event_id] = event
    return list(keep.values()), repeats, rejected


async def _insert_new(
    conn: AsyncConnection, user_id: str, events: list[EventIn], at: int
) -> list[EventIn]:
    """Insert the events; return those that were not already recorded."""
    if not events:
        return []
    rows = [
        {
            "user_id": user_id,
            "event_id": e.event_id,
            "video_id": e.video_id,
            "kind": e.type,
            "value": e.value or 0,
            "at": at,
        }
        for e in events
    ]
    stmt = insert_ignore(conn.dialect.name, watch_events, rows).returning(watch_events.c.event_id)
    inserted = set((await conn.execute(stmt)).scalars().all())
    return [e for e in events if e.event_id in inserted]


def _counter_deltas(events: list[EventIn]) -> dict[str, dict[str, int]]:
    deltas: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in events:
        if e.type == "watch_ms":
            deltas[e.video_id]["watch_ms"] += e.value or 0
        elif e.type in COUNTER_OF:
            deltas[e.video_id][COUNTER_OF[e.type]] += 1
    return deltas


async def _apply_counters(conn: AsyncConnection, events: list[EventIn]) -> None:
    for video_id, changes in sorted(_counter_deltas(events).items()):
        values = {col: videos.c[col] + delta for col, delta in changes.items() if delta}
        if values:
            await conn.execute(update(videos).where(videos.c.id == video_id).values(values))


async def _mark_seen(
    conn: AsyncConnection, user_id: str, events: list[EventIn], at: int
) -> set[str]:
    """Upsert `seen` rows; "not interested" sticks once set. Returns the videos marked."""
    marks: dict[str, bool] = {}
    for e in events:
        if e.type in MARKS_SEEN:
            marks[e.video_id] = marks.get(e.video_id, False) or e.type == "not_interested"
    if not marks:
        return set()
    rows = [
        {"user_id": user_id, "video_id": vid, "not_interested": flag, "at": at}
        for vid, flag in sorted(marks.items())
    ]
    stmt = dialect_insert(conn.dialect.name)(seen).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[seen.c.user_id, seen.c.video_id],
        set_={
            "at": stmt.excluded.at,
            "not_interested": or_(seen.c.not_interested, stmt.excluded.not_interested),
        },
    )
    await conn.execute(stmt)
    return set(marks)


async def record_events(ctx: AppContext, user_id: str, events: list[EventIn]) -> EventsOut:
    """Record a batch of the user's watch events: how many were new, how many repeats, and
    which were rejected (with why)."""
    at = now_ms()
    async with ctx.db.begin() as conn:
        visible = await visible_ids(conn, {e.video_id for e in events}, user_id)
        candidates, repeats, rejected = _screen(events, visible)
        new = await _insert_new(conn, user_id, candidates, at)
        await _apply_counters(conn, new)
        marked = await _mark_seen(conn, user_id, new, at)
    # After the commit: the feed's cached seen set (`api.feed.seen`) only ever grows.
    await remember_seen(ctx, user_id, marked)
    duplicates = repeats + len(candidates) - len(new)
    return EventsOut(accepted=len(new), duplicates=duplicates, rejected=rejected)
