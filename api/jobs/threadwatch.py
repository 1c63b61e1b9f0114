"""Keep an in-process Dramatiq worker's threads alive (embedded mode; issue 16, item 8).

A `dramatiq` worker *process* that dies takes its pool down, and a supervisor (compose's
restart policy, systemd, Kubernetes) starts it again. Embedded mode runs the worker as threads
of the API process, where nothing would notice: Dramatiq's worker thread survives any error an
actor raises, but a `BaseException` that escapes its message loop (a late asynchronous
`TimeLimitExceeded` or `Shutdown`, a `SystemExit` from a middleware) ends the thread
silently, and with it all processing while the API keeps accepting uploads. The watcher
replaces a dead worker or consumer thread within `WATCH_EVERY_S` and says so in the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import dramatiq

log = logging.getLogger("reelforge.worker")

WATCH_EVERY_S = 1.0


def replace_dead_threads(worker: dramatiq.Worker) -> int:
    """Start a new thread for each of `worker`'s dead worker and consumer threads; returns
    how many were replaced. Uses Dramatiq's own `_add_worker`/`_add_consumer` (what
    `Worker.start` calls), so the new threads are exactly the ones it would have made."""
    replaced = 0
    for thread in [t for t in worker.workers if not t.is_alive()]:
        worker.workers.remove(thread)
        worker._add_worker()
        replaced += 1
    for queue_name, consumer in list(worker.consumers.items()):
        if not consumer.is_alive():
            del worker.consumers[queue_name]
            worker._add_consumer(queue_name)
            replaced += 1
    return replaced


def watch(workers: Sequence[dramatiq.Worker], stop: threading.Event) -> threading.Thread:
    """A daemon thread that replaces the dead threads of `workers` until `stop` is set."""

    def run() -> None:
        while not stop.wait(WATCH_EVERY_S):
            for worker in workers:
                if stop.is_set():  # the workers are being stopped: their threads end
                    return
                try:
                    replaced = replace_dead_threads(worker)
                except Exception:
                    log.exception("could not restart the in-process worker's threads")
                    continue
                if replaced:
                    log.error("%d in-process worker thread(s) had died; replaced", replaced)

    thread = threading.Thread(target=run, name="reelforge-worker-watch", daemon=True)
    thread.start()
    return thread
