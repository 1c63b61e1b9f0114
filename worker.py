"""Dramatiq actors and the broker, for both ways Reelforge runs.

Production: `dramatiq worker:setup --processes N --threads 1` on any number of machines, with
`REELFORGE_MODE=production` and the same `REELFORGE_*` settings as the API (Redis broker).
Embedded: the API process builds the same actors on an in-memory broker and runs a Dramatiq
`Worker` inside itself, and re-enqueues unfinished videos at start.

The database, not the broker, is the record of what must run: a processing job is put on
record (the outbox, api/jobs/relay.py) and the relay sends it, again if no worker claims it.
Actors take ids only, reload the row, skip deleted videos and are idempotent: a job is taken
only with its lease (api/jobs/joblease.py; a chunked run's part: api/jobs/partrows.py), its
outputs go under a fresh immutable prefix and one compare-and-set publishes, so a job
delivered twice publishes once. A dead worker's job or part is sent again once its lease
lapsed, by the relay or the run reaper (api/jobs/partreaper.py, through `enqueue_part`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import q_name
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from api.core.outbox import Relayed
from api.core.settings import Settings
from api.jobs import threadwatch
from cdn.hooks import UnsafeTarget

log = logging.getLogger("reelforge.worker")

TRANSCODE_QUEUE = "transcode"
# Creators who upload a lot share this lane, so they never starve everyone else.
BULK_QUEUE = "transcode_bulk"
CLEANUP_QUEUE = "cleanup"
# Pre-warm and purge at the CDN edges: short HTTP and file work, on a queue of its own so it
# never waits behind a transcode (embedded mode runs a separate worker for it).
EDGE_QUEUE = "edge"
# Split and stitch (api/jobs/chunking.py): the chunk, audio and assembly jobs of videos already
# started, on a queue of their own so that any worker of the pool takes them.
PARTS_QUEUE = "transcode_parts"
# The video parts (preview, chunks) of runs whose planner chose a GPU encoder: only GPU workers
# take them (a run's chunks all come out of its one encoder; tables.video_runs).
PARTS_GPU_QUEUE = "transcode_parts_gpu"
PART_GAVE_UP_ACTOR = "transcode_part_gave_up"
# A purge waits until every API process has stopped serving the video (the origin's
# visibility cache lives 2 s): an edge refilled in between would keep the video for a year.
PURGE_DELAY_MS = 5_000
# The feed may ask to warm a video on every ranking: one pre-warm per video per this long.
WARM_AGAIN_AFTER_S = 60.0
# How often an idle in-process worker thread wakes to look for a stop (dramatiq's default is
# 1 s): the in-memory queue answers at once, and a server (or a test) then stops in ~0.1 s.
EMBEDDED_POLL_MS = 100


def _middleware() -> list[Any]:
    return [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines(), Retries()]


def build_broker(settings: Settings) -> dramatiq.Broker:
    if settings.embedded or not settings.redis_url:
        return StubBroker(middleware=_middleware())
    from dramatiq.brokers.redis import RedisBroker

    return RedisBroker(
        url=settings.redis_url,
        namespace="reelforge",
        middleware=_middleware(),
        heartbeat_timeout=settings.broker_heartbeat_ms,
        # Check for dead workers' messages often: a killed worker's job comes back within
        # about one heartbeat timeout.
        maintenance_chance=50_000,
    )


# Room in an actor's time limit beyond the engine's own deadline: joining the upload,
# storing the outputs and publishing.
TRANSFER_ALLOWANCE_S = 300
GAVE_UP_ACTOR = "transcode_gave_up"


def _actor(fn: Callable[..., Any], **options: Any) -> dramatiq.Actor[Any, Any]:
    """`dramatiq.actor` for a function made at run time (bound to one Runtime)."""
    decorate: Any = dramatiq.actor(**options)
    actor: dramatiq.Actor[Any, Any] = decorate(fn)
    return actor


class Jobs:
    """The actors bound to one broker, and the API's way to enqueue them.

    The wiring is here and flows down: the job runtime (api/jobs/transcode.py) is handed the
    edge pre-warm (`warm`) as its after-publication hook, and the edge jobs
    (api/jobs/edge.py) share the runtime's database and storage; nothing in api/jobs knows
    this module.
    """

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        from api.jobs import edge as edgejobs
        from api.jobs import feedtrain, relay, sweeper
        from api.jobs import partrows as chunks
        from api.jobs import transcode as processing

        self.settings = settings
        self.broker = broker
        # Before the runtime: `warm` (its hook) reads them.
        self._warmed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._runtime = processing.Runtime(
            settings, on_published=self.warm, dispatch=self.enqueue_part
        )
        runtime = self._runtime
        chunking = self.chunking = runtime.chunking
        # Set on purpose (Dramatiq's defaults are a 10-minute limit and 20 retries over a
        # week): the engine stops itself at transcode_time_limit_s and rejects the input; the
        # actor's limit is the backstop, with room for the transfers around the transcode.
        common: dict[str, Any] = {
            "broker": broker,
            "time_limit": (settings.transcode_time_limit_s + TRANSFER_ALLOWANCE_S) * 1000,
            # Storage and database hiccups are retried with backoff; rejected input is not
            # (the job records the rejection and returns normally; `throws` is the backstop).
            # process() counts deliveries too and marks the video failed on the last one.
            "max_retries": processing.MAX_ATTEMPTS - 1,
            "min_backoff": 2_000,
            "max_backoff": 120_000,
            "throws": (processing.InputRejectedError,),
            # Retries exhausted by something process() could not catch (a time limit, a
            # database that never answered): the video still ends failed, not processing.
            "on_retry_exhausted": GAVE_UP_ACTOR,
        }
        self.transcode = _actor(
            lambda video_id: runtime.process(video_id),
            actor_name="transcode_video",
            queue_name=TRANSCODE_QUEUE,
            priority=0,
            **common,
        )
        self.transcode_bulk = _actor(
            lambda video_id: runtime.process(video_id),
            actor_name="transcode_video_bulk",
            queue_name=BULK_QUEUE,
            priority=10,
            **common,
        )
        # A part gets the single pass's time limit (its child has the same deadline), fewer
        # deliveries (partrows.PART_ATTEMPTS: a short part that failed thrice is broken) and
        # shorter backoffs (the rest of its video waits for it).
        parts: dict[str, Any] = {
            **common,
            "queue_name": PARTS_QUEUE,
            "max_retries": chunks.PART_ATTEMPTS - 1,
            "min_backoff": 1_000,
            "max_backoff": 30_000,
            "on_retry_exhausted": PART_GAVE_UP_ACTOR,
        }
        self.part = _actor(
            lambda video_id, run_id, kind, index: chunking.run_part(video_id, run_id, kind, index),
            actor_name="transcode_part",
            **parts,
        )
        self.part_gpu = _actor(
            lambda video_id, run_id, kind, index: chunking.run_part(video_id, run_id, kind, index),
            actor_name="transcode_part_gpu",
            **{**parts, "queue_name": PARTS_GPU_QUEUE},
        )
        self.assemble = _actor(
            lambda video_id, run_id: chunking.assemble(video_id, run_id),
            actor_name="assemble_video",
            **parts,
        )
        # The actors that mark a video failed once Dramatiq gave up on its job or part.
        janitor: dict[str, Any] = {
            "queue_name": CLEANUP_QUEUE, "broker": broker, "max_retries": 10,
            "time_limit": 60_000, "min_backoff": 1_000, "max_backoff": 60_000,
        }  # fmt: skip
        self.part_gave_up = _actor(
            lambda message, retry_info: chunking.gave_up(
                *[*message["args"], chunks.ASSEMBLY, 0][:4]
            ),
            actor_name=PART_GAVE_UP_ACTOR,
            **janitor,
        )
        self.gave_up = _actor(
            lambda message, retry_info: runtime.give_up(message["args"][0]),
            actor_name=GAVE_UP_ACTOR,
            **janitor,
        )
        self.cleanup = _actor(
            lambda video_id: runtime.cleanup(video_id),
            actor_name="cleanup_video", queue_name=CLEANUP_QUEUE, broker=broker,
            max_retries=10, time_limit=300_000, min_backoff=1_000, max_backoff=300_000,
        )  # fmt: skip
        # The storage sweeper (api/jobs/sweeper.py): no retries, the next interval sweeps again.
        self.sweep = _actor(
            lambda: sweeper.sweep(runtime.db, runtime.storage, settings.storage_grace_seconds),
            actor_name="sweep_storage", queue_name=CLEANUP_QUEUE, broker=broker,
            max_retries=0, time_limit=1_800_000,
        )  # fmt: skip
        # The For You retraining (api/jobs/feedtrain.py), on a queue of its own.
        self.feed_train = feedtrain.actor(broker, lambda: runtime.db, settings)
        self.edge = edgejobs.EdgeJobs(settings, runtime)
        edge = self.edge
        # Edge errors (5xx, refused connections) are retried with backoff; ids or URLs that
        # are not ours are refused for good.
        edge_options: dict[str, Any] = {
            "broker": broker,
            "queue_name": EDGE_QUEUE,
            "max_retries": 6,
            "min_backoff": 1_000,
            "max_backoff": 60_000,
            "time_limit": 120_000,
            "throws": (UnsafeTarget,),
        }
        self.prewarm = _actor(
            lambda video_id, edge_url: edge.prewarm(video_id, edge_url),
            actor_name="prewarm_video",
            **edge_options,
        )
        self.purge = _actor(
            lambda video_id: edge.purge(video_id),
            actor_name="purge_video",
            **edge_options,
        )
        self.outbox = relay.Outbox(
            lambda: runtime.db, self.send_transcode, getattr(broker, "client", None),
            settings.job_ack_seconds, settings.job_lease_s,
        )  # fmt: skip
        self._worker: dramatiq.Worker | None = None
        self._edge_worker: dramatiq.Worker | None = None
        self._booted = False
        self._watch_stop = threading.Event()

    # -- the API's side -------------------------------------------------------------------
    def send_transcode(self, video_id: str, lane: str) -> None:
        """The relay's send (api/jobs/relay.py): jobs go on record first, never straight here."""
        (self.transcode_bulk if lane == "bulk" else self.transcode).send(video_id)

    def enqueue_transcode(self, video_id: str, lane: str) -> None:
        """Put a processing video's job on record and send it (tools, tests)."""
        self.outbox.put([(video_id, lane)])

    def send_queued(self, video_id: str) -> None:
        """Send the video's job now if the broker answers (the publish's own send)."""
        self.outbox.relay(only=video_id, create_epoch=False)

    def relay(self) -> Relayed:  # one pass of the outbox's relay (api/jobs/relay.py)
        return self.outbox.relay()

    def enqueue_part(self, video_id: str, run_id: str, kind: str, index: int) -> None:
        """Enqueue a chunked run's part, its assembly or its early publish: the runtime's
        dispatch, and the run reaper's (api/jobs/partreaper.py)."""
        from api.jobs.partrows import ASSEMBLY

        if kind == ASSEMBLY:
            self.assemble.send(video_id, run_id)
        else:
            self.part_actor(video_id, run_id, kind).send(video_id, run_id, kind, index)

    def part_actor(self, video_id: str, run_id: str, kind: str) -> dramatiq.Actor[Any, Any]:
        """Where a part goes: the GPU pool's queue for the video parts of a run whose encoder
        needs a GPU, the shared parts queue for everything else (the audio, every part of a
        libx264 run: GPU workers take those too)."""
        from api.jobs.partrows import CHUNK, PREVIEW, run_encoder
        from engine.encoders import ENCODERS

        if kind in (CHUNK, PREVIEW):
            encoder = run_encoder(self._runtime.db, video_id, run_id)
            profile = ENCODERS.get(encoder) if encoder else None
            if profile is not None and profile.gpu:
                return self.part_gpu
        return self.part

    def enqueue_cleanup(self, video_id: str) -> None:
        self.cleanup.send(video_id)

    def enqueue_sweep(self) -> None:
        self.sweep.send()

    def enqueue_feed_train(self) -> None:
        self.feed_train.send()

    def warm(self, video_id: str) -> int:
        """Pre-warm a video at every configured edge (after publication, or when the feed
        ranks it into many screens): one `prewarm_video` job per edge, at most once per
        video every `WARM_AGAIN_AFTER_S` in this process. Never raises (a missed warm only
        costs the first viewers a cache miss); returns the jobs enqueued."""
        edges = list(self.edge.edges)
        now = time.monotonic()
        with self._lock:
            if not edges or now - self._warmed.get(video_id, -WARM_AGAIN_AFTER_S) < (
                WARM_AGAIN_AFTER_S
            ):
                return 0
            if len(self._warmed) > 10_000:
                self._warmed = {k: t for k, t in self._warmed.items() if now - t < 60}
            self._warmed[video_id] = now
        sent = 0
        for edge_url in edges:
            try:
                self.prewarm.send(video_id, edge_url)
                sent += 1
            except Exception:
                log.exception("could not enqueue the pre-warm of %s at %s", video_id, edge_url)
        return sent

    def enqueue_purge(self, video_id: str) -> None:
        """Purge a deleted or taken-down video from the edges, `PURGE_DELAY_MS` from now."""
        if self.edge.purging:
            self.purge.send_with_options(args=(video_id,), delay=PURGE_DELAY_MS)

    def check(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()

    def requeue_unfinished(self) -> int:
        """Embedded start: every video the database says is still to be processed gets its
        job on record again (what a dead process held included) and sent."""
        pending = self._runtime.unfinished()
        self.outbox.put(pending)
        return len(pending)

    # -- embedded mode --------------------------------------------------------------------
    def start_embedded_worker(self) -> None:
        with self._lock:
            if not self._booted:
                # What `dramatiq` does in a worker process: starts the time-limit watchdog.
                self.broker.emit_after("process_boot")
                self._booted = True
            if self._worker is None:
                # One process owns the data dir: whatever a killed run left is garbage.
                self._runtime.sweep_work(older_than_s=0)
                declared = self.broker.get_declared_queues()
                queues = {q_name(queue) for queue in declared} - {EDGE_QUEUE}
                self._worker = dramatiq.Worker(
                    self.broker,
                    queues=queues,
                    worker_threads=max(1, self.settings.embedded_workers),
                    worker_timeout=EMBEDDED_POLL_MS,
                )
                self._worker.start()
            if self._edge_worker is None:
                self._edge_worker = dramatiq.Worker(
                    self.broker,
                    queues={EDGE_QUEUE},
                    worker_threads=max(1, self.settings.prewarm_concurrency),
                    worker_timeout=EMBEDDED_POLL_MS,
                )
                self._edge_worker.start()
                # Nothing supervises threads: a dead one is replaced here (issue 16 item 8).
                self._watch_stop = threading.Event()  # a fresh one: an old watcher stays stopped
                threadwatch.watch([self._worker, self._edge_worker], self._watch_stop)

    def stop(self) -> None:
        self._watch_stop.set()
        with self._lock:
            if self._worker is not None:
                self._worker.stop(timeout=5_000)
                self._worker = None
            if self._edge_worker is not None:
                self._edge_worker.stop(timeout=5_000)
                self._edge_worker = None
        self._runtime.close()


def build(settings: Settings) -> Jobs:
    from api.safety.startup import check_catalog, check_startup

    # A worker that cannot run the safety checks must not start (issue 5: a missing or
    # malformed moderation model fails start-up, naming its path; so does a catalog whose
    # references no upload could match).
    check_startup(settings)
    check_catalog(settings)
    return Jobs(settings, build_broker(settings))


def setup() -> None:
    """Entry point for `dramatiq worker:setup`: settings from the environment, once.

    The global broker holds the actors, and they hold the runtime and the edge jobs they
    call, so nothing else needs to keep the `Jobs` alive in a worker process.
    """
    settings = Settings.from_env()
    dramatiq.set_broker(build(settings).broker)
