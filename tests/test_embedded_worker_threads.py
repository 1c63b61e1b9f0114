"""Embedded mode: a dead in-process worker thread is replaced, so processing goes on
(issue 16, item 8).

Dramatiq's worker thread survives anything an actor raises, but a `BaseException` that
escapes its message loop (here a `SystemExit` from a middleware's `after_process_message`,
standing in for a late asynchronous `TimeLimitExceeded`) ends the thread. The embedded server
runs one worker thread by default: without a watcher the next job would wait forever while the
API kept accepting work.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import dramatiq
import pytest

from api.jobs.threadwatch import WATCH_EVERY_S
from tests.support.uploads import live_server, wait_for


class KillsItsThread(dramatiq.Middleware):
    """Records the messages processed; the first one's thread gets a `SystemExit` that
    escapes Dramatiq's loop (raised after the message and again from its error path)."""

    def __init__(self) -> None:
        self.processed: list[str] = []
        self.victims: list[threading.Thread] = []
        self._lock = threading.Lock()

    def after_process_message(
        self, broker: dramatiq.Broker, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        with self._lock:
            if message.message_id not in self.processed:
                self.processed.append(message.message_id)
            if len(self.processed) == 1:
                if threading.current_thread() not in self.victims:
                    self.victims.append(threading.current_thread())
                raise SystemExit("a BaseException escapes the worker thread's loop")


# The thread's death is the point: pytest would report it as an unhandled thread exception.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_dead_worker_thread_is_replaced_and_the_next_job_runs(tmp_path: Path) -> None:
    with live_server(tmp_path / "data") as server:
        jobs: Any = server.ctx.jobs
        killer = KillsItsThread()
        jobs.broker.add_middleware(killer)
        jobs.enqueue_sweep()
        wait_for(lambda: killer.victims, 15, "the first job to run")
        victim = killer.victims[0]
        wait_for(lambda: not victim.is_alive(), 10, "the worker thread to die")
        died = time.monotonic()
        jobs.enqueue_sweep()
        wait_for(lambda: len(killer.processed) >= 2, 10 + WATCH_EVERY_S, "the second job to run")
        print(f"\nthe next job ran {time.monotonic() - died:.2f} s after its thread died")
        assert killer.victims == [victim], "the replacement thread was killed too"
