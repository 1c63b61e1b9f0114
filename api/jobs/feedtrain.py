"""The For You model's retraining job (issue 17, "Learning loop"): the service's own event log
(`watch_events`, `likes`, `comments`, follows and the videos' owners) weighted by the signal
hierarchy (`recsys.signals`), and the videos' captions (the caption map, "Cold start"),
becomes the next version of the model folder
`settings.feed_model_dir` (`recsys.loop.retrain`: skipped when nothing changed, warm-started
between tunings), which every API process picks up without a restart (api/feed/personal.py).

Scheduled like the storage sweep (api/jobs/sweeper.py): every API process runs
`feed_train_loop` when `feed_model_dir` is set and `feed_train_interval_seconds` > 0,
embedded mode included; once per interval one of them (a cache counter is the lock) enqueues
the `train_feed_model` actor on its own queue (`QUEUE`, so a worker pool can be given to it),
and a worker reads the tables and trains; the API's event loop never does.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import dramatiq
from sqlalchemy import Engine, func, select

from api.core.context import AppContext
from api.core.settings import Settings
from api.core.tables import comments, follows, likes, videos, watch_events

if TYPE_CHECKING:
    from recsys.loop import Retrained
    from recsys.signals import EventRows

log = logging.getLogger("reelforge.feedtrain")

QUEUE = "feed_model"
LOCK_KEY = "feedtrain:lock"
TIME_LIMIT_MS = 3_600_000
ROWS_PER_FETCH = 50_000


def source_state(db: Engine) -> dict[str, list[int]]:
    """What the log holds, per table: [rows, newest time] (a version trained on the same
    state is not trained again; a removed like or follow changes the count)."""
    from recsys.signals import READ_KINDS

    tables = {
        "watch_events": (watch_events, watch_events.c.at, watch_events.c.kind.in_(READ_KINDS)),
        "likes": (likes, likes.c.created_at, None),
        "comments": (comments, comments.c.created_at, None),
        "follows": (follows, follows.c.created_at, None),
    }
    state: dict[str, list[int]] = {}
    with db.connect() as conn:
        for name, (table, at, where) in tables.items():
            query = select(func.count(), func.max(at)).select_from(table)
            if where is not None:
                query = query.where(where)
            count, newest = conn.execute(query).one()
            state[name] = [int(count or 0), int(newest or 0)]
    return state


def read_events(db: Engine) -> EventRows:
    """The rows the training weighs (`recsys.signals.EventRows`)."""
    from recsys.signals import READ_KINDS, EventRows

    rows = EventRows()
    with db.connect().execution_options(yield_per=ROWS_PER_FETCH) as conn:
        we = watch_events.c
        query = select(we.user_id, we.video_id, we.kind, we.value, we.at)
        for user, video, kind, value, at in conn.execute(query.where(we.kind.in_(READ_KINDS))):
            rows.add(user, video, kind, int(value or 0), int(at))
        for table, kind in ((likes, "like"), (comments, "comment")):
            query = select(table.c.user_id, table.c.video_id, table.c.created_at)
            for user, video, at in conn.execute(query):
                rows.add(user, video, kind, 0, int(at))
        query = select(follows.c.follower_id, follows.c.followee_id, follows.c.created_at)
        rows.follows = [(str(r[0]), str(r[1]), int(r[2])) for r in conn.execute(query)]
        if rows.follows:
            followed = {b for _, b, _ in rows.follows}
            owned = select(videos.c.id, videos.c.owner_id)
            rows.owner = {v: o for v, o in conn.execute(owned) if o in followed}
    return rows


def read_captions(db: Engine) -> dict[str, str]:
    """Each video's caption (`videos.caption`; empty ones left out), for the caption map that
    places videos newer than the model (issue 17, "Cold start")."""
    with db.connect().execution_options(yield_per=ROWS_PER_FETCH) as conn:
        query = select(videos.c.id, videos.c.caption).where(videos.c.caption != "")
        return {str(video): str(caption) for video, caption in conn.execute(query)}


def train_feed_model(db: Engine, settings: Settings) -> Retrained | None:
    """One step of the loop: the next version under `settings.feed_model_dir`, or none when the
    log has not changed since the current one (or holds nothing to learn from)."""
    from recsys.loop import Retrained, retrain, unchanged
    from recsys.signals import weighted_log

    root = settings.feed_model_dir
    if not root:
        return None
    state = source_state(db)
    same = unchanged(root, state)
    if same is not None:
        log.info("for-you model %s is up to date with the event log", same)
        return Retrained(same, new=False)
    try:
        weighted = weighted_log(read_events(db))
    except ValueError as exc:
        log.info("for-you model not trained: %s", exc)
        return None
    threads = max(1, min(settings.feed_train_threads or (os.cpu_count() or 1), 64))
    done = retrain(weighted, root, source=state, threads=threads, captions=read_captions(db))
    log.info(
        "for-you model %s trained on %d viewer-video pairs in %.1f s (%s)",
        done.version,
        done.interactions,
        done.seconds,
        "tuned" if done.tuned else "warm start",
    )
    return done


def actor(
    broker: dramatiq.Broker, db: Callable[[], Engine], settings: Settings
) -> dramatiq.Actor[Any, Any]:
    """The `train_feed_model` actor (declared by worker.py): no retries, the next interval
    trains again."""
    decorate: Any = dramatiq.actor(
        actor_name="train_feed_model",
        queue_name=QUEUE,
        broker=broker,
        max_retries=0,
        time_limit=TIME_LIMIT_MS,
    )

    def run() -> None:
        train_feed_model(db(), settings)

    declared: dramatiq.Actor[Any, Any] = decorate(run)
    return declared


async def feed_train_loop(ctx: AppContext, interval_s: float) -> None:
    """Enqueue one `train_feed_model` job per interval across all API processes, until
    cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            count, _ = await ctx.cache.incr_window(LOCK_KEY, max(1, int(interval_s)))
            if count == 1:
                await asyncio.to_thread(ctx.jobs.enqueue_feed_train)
        except asyncio.CancelledError:
            raise
        except Exception:  # the loop must outlive a broker or cache hiccup
            log.exception("could not enqueue the for-you training; trying again next interval")
