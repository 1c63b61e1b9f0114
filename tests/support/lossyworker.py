"""`dramatiq tests.support.lossyworker:setup`: the production worker (worker.py `setup`) whose
chunked runs lose messages, as a broker restarted empty would (issue 15, the run reaper).

`LOSE_PARTS="assembly:0,chunk:2"`: the first message this process would send for each listed
part (kind:index) is dropped, and the drop logged; every other message goes out as usual.
"""

from __future__ import annotations

import logging
import os
import threading

import dramatiq

import worker
from api.core.settings import Settings

log = logging.getLogger("reelforge.tests.lossy")


def setup() -> None:
    jobs = worker.build(Settings.from_env())
    lose = {name for name in os.environ.get("LOSE_PARTS", "").split(",") if name}
    lock = threading.Lock()
    send = jobs.enqueue_part

    def lossy(video_id: str, run_id: str, kind: str, index: int) -> None:
        with lock:
            dropped = f"{kind}:{index}" in lose
            lose.discard(f"{kind}:{index}")
        if dropped:
            log.warning(
                "lost the message of video %s %s:%d (run %s)", video_id, kind, index, run_id
            )
            return
        send(video_id, run_id, kind, index)

    jobs.chunking.dispatch = lossy
    dramatiq.set_broker(jobs.broker)
