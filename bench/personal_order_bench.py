"""What a viewer's own order of the for-you snapshot costs per request (issue 17;
api/feed/personal.py), and what loading a model costs.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/personal_order_bench.py

A random model of 10,000 viewers and 100,000 videos, 64 factors, saved as a recsys artifact in a
temporary folder; a snapshot of 1,000 of those videos; `PersonalOrder.order` for 5,000 requests
over the viewers (the model and the snapshot's rows cached, as between swaps), then one load.
"""

from __future__ import annotations

import asyncio
import tempfile
import time

import numpy as np

from api.feed.personal import PersonalOrder
from api.feed.ranking import Candidate
from api.feed.store import Snapshot
from recsys import artifact


async def run(root: str) -> None:
    rng = np.random.default_rng(0)
    artifact.save(
        root,
        users=np.array([f"u{i}" for i in range(10_000)]),
        items=np.array([f"v{i}" for i in range(100_000)]),
        user_factors=rng.normal(size=(10_000, 64)),
        item_factors=rng.normal(size=(100_000, 64)),
        popular=np.arange(1000),
    )
    items = [Candidate(f"v{i * 7}", f"o{i}", 1.0) for i in range(1000)]
    snapshot = Snapshot(sid="s", built_at=0, items=items, cold=[])
    personal = PersonalOrder(root, 30)
    await personal.order("u1", snapshot)
    n = 5000
    started = time.perf_counter()
    for k in range(n):
        await personal.order(f"u{k % 10_000}", snapshot)
    per_call = (time.perf_counter() - started) / n
    started = time.perf_counter()
    artifact.load(root)
    print(f"order: {per_call * 1e6:.0f} µs a request; load: {time.perf_counter() - started:.3f} s")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(folder))
