"""The outbox row of a video's processing job (issue 16, "Jobs never depend on Redis keeping a
message"; tables.video_jobs): how a job is put on record, in the caller's transaction.

The API writes it in the transaction that moves the video to `processing` (publish), so the
state change and the job commit together: a broker that is down, or that loses the message
later, loses nothing, since the relay (api/jobs/relay.py) sends from the row and sends again
what no worker claims. The same statement serves the async API and the sync workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.core.db import dialect_insert, now_ms
from api.core.tables import video_jobs

QUEUED, CLAIMED = "queued", "claimed"
"""A row waits for a delivery to claim it (sent or not yet), or a delivery holds it."""


def queue_job(dialect_name: str, video_id: str, lane: str) -> Any:
    """An upsert that puts the video's job on record as queued and not sent yet; an older
    row of the video (a failed video published again, an embedded restart) is replaced."""
    fresh = {
        "lane": lane,
        "state": QUEUED,
        "sends": 0,
        "sent_at": None,
        "epoch": None,
        "attempt": 0,
        "heartbeat_at": 0,
        "created_at": now_ms(),
    }
    statement = dialect_insert(dialect_name)(video_jobs).values(video_id=video_id, **fresh)
    return statement.on_conflict_do_update(index_elements=[video_jobs.c.video_id], set_=fresh)


@dataclass
class Relayed:
    """What one pass of the relay did: the broker's epoch it sent under (None: not known, so
    nothing sent), whether the pass found the broker's data lost (a fresh epoch), the videos
    whose job it sent and those it put on record (orphans: `processing` with no job and no
    open part, e.g. from before the outbox)."""

    epoch: str | None
    fresh: bool = False
    sent: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
