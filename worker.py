"""Dramatiq actors and the broker, for both ways Reelforge runs.

Production: `dramatiq worker:setup --processes N --threads 1` on any number of machines, with
`REELFORGE_MODE=production` and the same `REELFORGE_*` settings as the API (Redis broker).
Embedded: the API process builds the same actors on an in-memory broker and runs a Dramatiq
`Worker` inside itself; the database is the source of truth, so unfinished videos are
re-enqueued at start.

Actors take ids only, reload the row, skip deleted videos and are idempotent: the processing
job writes its outputs under a fresh immutable prefix and flips the video to published with one
compare-and-set, so a job delivered twice publishes once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import AgeLimit, Callbacks, Pipelines, Retries, ShutdownNotifications, TimeLimit

from api.settings import Settings

log = logging.getLogger("reelforge.worker")

TRANSCODE_QUEUE = "transcode"
# Creators who upload a lot share this lane, so they never starve everyone else.
BULK_QUEUE = "transcode_bulk"
CLEANUP_QUEUE = "cleanup"


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


class Jobs:
    """The actors bound to one broker, and the API's way to enqueue them."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        from api import processing

        self.settings = settings
        self.broker = broker
        self._runtime = processing.Runtime(settings)
        limit_ms = settings.transcode_time_limit_s * 1000
        common: dict[str, Any] = {
            "broker": broker,
            "time_limit": limit_ms,
            # Storage and database hiccups are retried with backoff; rejected input is not
            # (the job records the rejection and returns normally).
            "max_retries": 5,
            "min_backoff": 2_000,
            "max_backoff": 120_000,
            "throws": (processing.InputRejectedError,),
        }
        runtime = self._runtime
        self.transcode = dramatiq.actor(
            lambda video_id: runtime.process(video_id),
            actor_name="transcode_video",
            queue_name=TRANSCODE_QUEUE,
            priority=0,
            **common,
        )
        self.transcode_bulk = dramatiq.actor(
            lambda video_id: runtime.process(video_id),
            actor_name="transcode_video_bulk",
            queue_name=BULK_QUEUE,
            priority=10,
            **common,
        )
        self.cleanup = dramatiq.actor(
            lambda video_id: runtime.cleanup(video_id),
            actor_name="cleanup_video",
            queue_name=CLEANUP_QUEUE,
            broker=broker,
            max_retries=10,
            time_limit=300_000,
            min_backoff=1_000,
        )
        self._worker: dramatiq.Worker | None = None
        self._lock = threading.Lock()

    # -- the API's side -------------------------------------------------------------------
    def enqueue_transcode(self, video_id: str, lane: str) -> None:
        actor = self.transcode_bulk if lane == "bulk" else self.transcode
        actor.send(video_id)

    def enqueue_cleanup(self, video_id: str) -> None:
        self.cleanup.send(video_id)

    def check(self) -> None:
        client = getattr(self.broker, "client", None)
        if client is not None:
            client.ping()

    def requeue_unfinished(self) -> int:
        """Enqueue every video the database says is still to be processed."""
        pending = self._runtime.unfinished()
        for video_id, lane in pending:
            self.enqueue_transcode(video_id, lane)
        return len(pending)

    # -- embedded mode --------------------------------------------------------------------
    def start_embedded_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = dramatiq.Worker(
                    self.broker, worker_threads=max(1, self.settings.embedded_workers)
                )
                self._worker.start()

    def stop(self) -> None:
        with self._lock:
            if self._worker is not None:
                self._worker.stop(timeout=5_000)
                self._worker = None
        self._runtime.close()


def build(settings: Settings) -> Jobs:
    return Jobs(settings, build_broker(settings))


def setup() -> None:
    """Entry point for `dramatiq worker:setup`: settings from the environment, once."""
    settings = Settings.from_env()
    jobs = build(settings)
    dramatiq.set_broker(jobs.broker)
    global JOBS
    JOBS = jobs


JOBS: Jobs | None = None
