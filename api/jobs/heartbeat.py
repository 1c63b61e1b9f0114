"""A lease's heartbeat: a thread that runs one UPDATE (which touches the lease row's time) every
so often while a block runs. Parts (api/jobs/partrows.py) and single-pass jobs
(api/jobs/joblease.py) keep their leases with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

log = logging.getLogger("reelforge.lease")


@contextmanager
def beating(db: Engine, touch: Callable[[], Any], every_s: float, label: str) -> Iterator[None]:
    """Execute `touch()` (a fresh statement each time) every `every_s` until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                with db.begin() as conn:
                    conn.execute(touch())
            except Exception:  # a missed beat or two only risks a duplicate delivery
                log.warning("%s: heartbeat failed", label, exc_info=True)

    beating_thread = threading.Thread(target=beat, name=f"lease-{label}", daemon=True)
    beating_thread.start()
    try:
        yield
    finally:
        stop.set()
        beating_thread.join()
