"""What every recommender here is, and full-catalogue top-k with seen items excluded."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from recsys.data import TrainSet

Scores = npt.NDArray[np.float32]
Codes = npt.NDArray[np.int64]
CHUNK = 256
NO_ITEM = -1


class Recommender(Protocol):
    """Fit on what is before `train.now`; score the whole catalogue for some users."""

    name: str

    def fit(self, train: TrainSet) -> None: ...

    def scores(self, users: Codes) -> Scores: ...


def top_k(model: Recommender, train: TrainSet, users: Codes, k: int) -> Codes:
    """Each user's `k` best items by `model.scores`, best first, never one the user
    interacted with before `train.now` (the whole catalogue is ranked: no sampled negatives).
    Ties break towards the lower item code; a user with fewer than `k` unseen items gets
    `NO_ITEM` (−1) in the places left."""
    k = min(k, train.n_items)
    out = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), CHUNK):
        batch = users[start : start + CHUNK]
        scores = np.asarray(model.scores(batch), dtype=np.float64)
        out[start : start + len(batch)] = top_k_of(scores, train, batch, k)
    return out


def top_k_of(scores: npt.NDArray[np.float64], train: TrainSet, users: Codes, k: int) -> Codes:
    """`top_k` on a block of already computed scores (rows are `users`)."""
    scores = scores.copy()
    seen = train.matrix[users]
    rows = np.repeat(np.arange(len(users)), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    picked = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -picked), axis=1)
    ranked = np.take_along_axis(part, order, axis=1).astype(np.int64)
    ranked[np.take_along_axis(picked, order, axis=1) == -np.inf] = NO_ITEM
    return ranked
