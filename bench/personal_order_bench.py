"""What a viewer's own for-you list costs to build (issue 17; api/feed/personal.py), step by
step, and what loading a model costs.

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/personal_order_bench.py

A random model of 10,000 viewers and 100,000 videos, 64 factors, saved as a recsys artifact in a
temporary folder; a snapshot of 1,000 of those videos plus 200 cold ones. Per viewer, over 2,000
viewers: the top 300 of the whole catalogue by exact scoring (`RetrievalModel.top_codes`,
kept per viewer and model version in the API), then the scores of the 1,500 candidates
(`item_scores`) and their order (`personal_order`). What it leaves out: the one query for the
rows of the candidates outside the snapshot and the followees' lists (cached reads), and the
shared-cache write of the list.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from api.feed.ranking import Candidate
from api.feed.scoring import personal_order
from recsys import artifact

VIEWERS, VIDEOS, FACTORS, TOP, SNAPSHOT, COLD = 10_000, 100_000, 64, 300, 1000, 200


def run(root: str, n: int = 2000) -> None:
    rng = np.random.default_rng(0)
    artifact.save(
        root,
        users=np.array([f"u{i}" for i in range(VIEWERS)]),
        items=np.array([f"v{i}" for i in range(VIDEOS)]),
        user_factors=rng.normal(size=(VIEWERS, FACTORS)),
        item_factors=rng.normal(size=(VIDEOS, FACTORS)),
        popular=np.arange(1000),
    )
    started = time.perf_counter()
    model = artifact.load(root)
    load_s = time.perf_counter() - started
    items = [Candidate(f"v{i * 7}", f"o{i}", 1.0 / (i + 1)) for i in range(SNAPSHOT + COLD)]
    index = {c.id: i for i, c in enumerate(items)}
    snapshot_codes = model.codes([c.id for c in items])
    top_s = order_s = 0.0
    for k in range(n):
        viewer = f"u{k * 5 % VIEWERS}"
        started = time.perf_counter()
        top = model.top_codes(viewer, TOP)
        assert top is not None
        top_s += time.perf_counter() - started
        started = time.perf_counter()
        extras = [Candidate(v, f"x{v}", 0.01) for v in model.items[top].tolist() if v not in index]
        codes = np.concatenate([snapshot_codes, model.codes([c.id for c in extras])])
        scores = model.item_scores(viewer, codes)
        assert scores is not None
        personal_order(items, extras, scores, [1.0] * len(extras))
        order_s += time.perf_counter() - started
    print(
        f"top {TOP} of {VIDEOS:,} (exact): {top_s / n * 1e6:.0f} µs a viewer; "
        f"scores and order of {len(items)} + ~{TOP} candidates: {order_s / n * 1e6:.0f} µs; "
        f"load: {load_s:.3f} s"
    )


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        run(folder)
