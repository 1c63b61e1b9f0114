"""The relay of the job outbox (issue 16, "Jobs never depend on Redis keeping a message").

The database is the record of what must run (tables.video_jobs, api/core/outbox.py): a publish
commits the video's move to `processing` and its job row together, and answers 202 whether or
not the broker is up. The relay hands the rows to Dramatiq; every API process runs
`relay_loop`, and once per `RELAY_INTERVAL_S` one of them (a cache counter is the lock, as for
api/jobs/partreaper.py) makes a pass, which sends:

a. a row not sent yet (the broker was down at publish, or the publish's own send failed);
b. a queued row sent under an older broker epoch: a random token the relay keeps in Redis
   (`Outbox.epoch`); when Redis comes back empty (restarted without persistence, flushed) the
   token is gone, the next pass makes a new one, and every message sent before is sent again;
   the pass then also has the never-started parts of chunked runs sent again (their messages
   were lost too; api/jobs/partreaper.py `broker_lost`);
c. a queued row no delivery claimed `job_ack_seconds` after its send (a message lost alone),
   then after twice that, four times ... up to 32 times, so a backlog is not flooded;
d. a claimed row whose lease lapsed: its worker died (no heartbeat for `job_lease_s`,
   api/jobs/joblease.py).

Each send is a compare-and-set on the row first, so two relays send a row once per turn; a
duplicate message is harmless (a delivery takes the job only with its lease). A pass also drops
the rows of videos that left `processing`, and puts on record the orphans: `processing` videos
with no job row and no open part for twice the lease (from before the outbox).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, or_, select, update

from api.core import lifecycle
from api.core.context import AppContext
from api.core.db import insert_ignore, now_ms
from api.core.outbox import CLAIMED, QUEUED, Relayed, queue_job
from api.core.tables import video_jobs, video_parts, videos
from api.jobs.partreaper import redispatch_lapsed
from api.jobs.partrows import CLAIMED as PART_CLAIMED
from api.jobs.partrows import PENDING

log = logging.getLogger("reelforge.relay")

RELAY_INTERVAL_S = 2.0
LOCK_KEY = "relay:lock"
EPOCH_KEY = "reelforge:outbox-epoch"
MAX_DOUBLINGS = 5
"""A queued row is sent again after `job_ack_seconds`, then 2x, 4x ... at most 32x that."""

Send = Callable[[str, str], Any]
"""(video id, lane) → hands one processing job to the broker; raises when it cannot."""


class Outbox:
    """The relay's side of worker.Jobs: the rows, the broker's epoch and the sends."""

    def __init__(
        self, db: Callable[[], Engine], send: Send, client: Any, ack_s: float, lease_s: float
    ) -> None:
        self._db, self._send, self._client = db, send, client
        self.ack_ms, self.lease_ms = int(ack_s * 1000), int(lease_s * 1000)
        # An in-memory broker lives and dies with this process: its own epoch, so what an
        # earlier process sent is sent again.
        self._local_epoch = secrets.token_hex(8)

    def epoch(self, create: bool) -> tuple[str | None, bool]:
        """The broker's epoch, and whether this call made it (the broker had lost its data,
        or never had one); None when it has none and `create` is off."""
        if self._client is None:
            return self._local_epoch, False
        token = secrets.token_hex(8)
        if create and self._client.set(EPOCH_KEY, token, nx=True):
            return token, True
        value = self._client.get(EPOCH_KEY)
        return (None if value is None else value.decode()), False

    def put(self, video_ids: list[tuple[str, str]]) -> Relayed:
        """Put (video id, lane) jobs on record (replacing what a dead process left) and send
        them: a tool's, a test's or the embedded start's way to enqueue."""
        with self._db().begin() as conn:
            for video_id, lane in video_ids:
                conn.execute(queue_job(conn.dialect.name, video_id, lane))
        return self.relay(create_epoch=True)

    def relay(self, only: str | None = None, create_epoch: bool = True) -> Relayed:
        """One pass (the module doc); `only`: just that video's unsent job (the publish's own
        send, which never makes an epoch: the loop's pass does, and sees the loss)."""
        epoch, fresh = self.epoch(create_epoch)
        done = Relayed(epoch, fresh)
        if epoch is None:
            return done
        db, now = self._db(), now_ms()
        if only is None:
            done.adopted = self._tidy(db, now)
        rows = self._due(db, epoch, now, only)
        for row in rows:
            sent_at = (
                video_jobs.c.sent_at.is_(None) if row.sent_at is None
                else video_jobs.c.sent_at == row.sent_at
            )  # fmt: skip
            mine = and_(
                video_jobs.c.video_id == row.video_id,
                video_jobs.c.state == row.state,
                video_jobs.c.sends == row.sends,
                video_jobs.c.heartbeat_at == row.heartbeat_at,
                sent_at,
            )
            with db.begin() as conn:
                taken = conn.execute(
                    update(video_jobs)
                    .where(mine)
                    .values(state=QUEUED, sends=row.sends + 1, sent_at=now, epoch=epoch,
                            heartbeat_at=0)
                ).rowcount  # fmt: skip
            if taken != 1:
                continue
            try:
                self._send(row.video_id, row.lane)
            except Exception:
                with db.begin() as conn:  # not sent after all: the next pass tries again
                    conn.execute(
                        update(video_jobs)
                        .where(video_jobs.c.video_id == row.video_id,
                               video_jobs.c.sends == row.sends + 1, video_jobs.c.sent_at == now)
                        .values(sent_at=None)
                    )  # fmt: skip
                raise
            done.sent.append(row.video_id)
        if done.sent and only is None:
            log.info("relayed %d job(s): %s", len(done.sent), done.sent)
        return done

    def _due(self, db: Engine, epoch: str, now: int, only: str | None) -> list[Any]:
        jobs = video_jobs.c
        queued = jobs.state == QUEUED
        due = or_(
            and_(queued, or_(jobs.sent_at.is_(None), jobs.epoch.is_(None), jobs.epoch != epoch)),
            and_(queued, jobs.sent_at < now - self.ack_ms),
            and_(jobs.state == CLAIMED, jobs.heartbeat_at < now - self.lease_ms),
        )
        if only is not None:
            due = and_(jobs.video_id == only, queued, jobs.sent_at.is_(None))
        query = (
            select(video_jobs)
            .join(videos, videos.c.id == jobs.video_id)
            .where(videos.c.status == lifecycle.PROCESSING, due)
            .order_by(jobs.created_at)
            .limit(500)
        )
        with db.connect() as conn:
            rows = conn.execute(query).all()
        return [row for row in rows if self._waited(row, epoch, now)]

    def _waited(self, row: Any, epoch: str, now: int) -> bool:
        """A queued row sent under this epoch waits ack x 2^(sends - 1) (at most 32x)."""
        if row.state != QUEUED or row.sent_at is None or row.epoch != epoch:
            return True
        doublings = min(max(row.sends - 1, 0), MAX_DOUBLINGS)
        return bool(now - row.sent_at >= self.ack_ms * 2**doublings)

    def _tidy(self, db: Engine, now: int) -> list[str]:
        """Drop the rows of videos that left `processing`; put the orphans on record."""
        processing = exists().where(
            videos.c.id == video_jobs.c.video_id, videos.c.status == lifecycle.PROCESSING
        )
        has_job = exists().where(video_jobs.c.video_id == videos.c.id)
        open_part = exists().where(
            video_parts.c.video_id == videos.c.id, video_parts.c.state.in_((PENDING, PART_CLAIMED))
        )
        orphans = select(videos.c.id, videos.c.lane).where(
            videos.c.status == lifecycle.PROCESSING,
            videos.c.updated_at < now - 2 * self.lease_ms,
            ~has_job,
            ~open_part,
        )
        with db.begin() as conn:
            conn.execute(delete(video_jobs).where(~processing))
            found = conn.execute(orphans.limit(500)).all()
            for row in found:
                rows = {"video_id": row.id, "lane": row.lane, "state": QUEUED, "created_at": now}
                conn.execute(insert_ignore(conn.dialect.name, video_jobs, rows))
        adopted = [row.id for row in found]
        if adopted:
            log.warning("put %d processing video(s) with no job on record: %s", len(adopted),
                        adopted)  # fmt: skip
        return adopted


async def relay_loop(ctx: AppContext, interval_s: float = RELAY_INTERVAL_S) -> None:
    """A relay pass once per interval across all API processes (the first at start: it makes
    the broker's epoch the publishes' own sends need), until cancelled."""
    first = True
    while True:
        if not first:
            await asyncio.sleep(interval_s)
        first = False
        try:
            count, _ = await ctx.cache.incr_window(LOCK_KEY, max(1, int(interval_s)))
            if count != 1:
                continue
            relayed: Relayed = await asyncio.to_thread(ctx.jobs.relay)
            if relayed.fresh and not ctx.settings.embedded:
                await redispatch_lapsed(ctx, broker_lost=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the loop must outlive a broker, database or cache outage
            log.warning("the job relay could not run (next try in %g s): %r", interval_s, exc)
