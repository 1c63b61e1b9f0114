"""What folding in a viewer the model does not know costs (issue 17, "Cold start";
api/feed/foldin.py, recsys/foldin.py), the CPU part of it:

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/foldin_bench.py

A random model of 100,000 videos with 64 factors (a recsys artifact in a temporary folder,
with an iALS setting); YᵀY once per version (the first fold-in pays it), then per viewer: their
newest 10 or 200 events weighed by `recsys.signals.weighted_log` and folded in
(`api.feed.foldin.fold`), and the top 300 of the whole catalogue for that factor
(`top_codes_for`, what a known viewer's list costs too). Medians over 200 viewers, ms. What it
leaves out: the two queries reading the events and follows.
"""

from __future__ import annotations

import json
import tempfile
import time

import numpy as np

from api.feed.foldin import fold
from recsys import artifact
from recsys.signals import EventRows

VIDEOS, FACTORS, TOP, VIEWERS = 100_000, 64, 300, 200


def rows_of(rng: np.random.Generator, n: int) -> EventRows:
    rows = EventRows()
    for step, video in enumerate(rng.choice(VIDEOS, size=max(n // 2, 1), replace=False).tolist()):
        ending = "completed" if step < 3 or rng.random() < 0.6 else "skip"
        rows.add("new", f"v{video}", "play", 0, 1000 * step)
        rows.add("new", f"v{video}", ending, 0, 1000 * step + 1)
        rows.owner[f"v{video}"] = f"c{video % 500}"
    return rows


def main() -> None:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        artifact.save(
            root,
            users=np.array(["u0"]),
            items=np.array([f"v{i}" for i in range(VIDEOS)]),
            user_factors=rng.normal(size=(1, FACTORS)),
            item_factors=rng.normal(size=(VIDEOS, FACTORS)) * 0.1,
            popular=np.arange(1000),
            meta={"ials": {"factors": FACTORS, "alpha": 5.0, "regularization": 10.0}},
        )
        model = artifact.load(root)
        started = time.perf_counter()
        model.fold_in(np.array([0]), np.array([4.0]))
        out: dict[str, float] = {"gram_ms": round(1000 * (time.perf_counter() - started), 2)}
        for events in (10, 200):
            folds, tops = [], []
            for _ in range(VIEWERS):
                rows = rows_of(rng, events)
                started = time.perf_counter()
                folded = fold(model, rows)
                folds.append(time.perf_counter() - started)
                assert folded is not None
                started = time.perf_counter()
                model.top_codes_for(folded.factor, TOP)
                tops.append(time.perf_counter() - started)
            out[f"fold_{events}_events_ms"] = round(1000 * float(np.median(folds)), 3)
            out[f"top_{TOP}_ms"] = round(1000 * float(np.median(tops)), 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
