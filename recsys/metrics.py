"""Ranking metrics over users, and bootstrap intervals (issue 17, "Offline evaluation").

Per user, on a ranked list of item codes and the set of relevant (future) items:
- NDCG@k: Σ 1/log2(rank + 1) over the relevant items in the top k (rank from 1), divided by
  the same sum for an ideal list (min(k, |relevant|) hits on top); binary relevance.
- Recall@k: relevant items in the top k / |relevant|.
Over all users:
- coverage@k: distinct items recommended in anyone's top k / the catalogue size.
- a 95 % bootstrap interval of a per-user mean: resample the users with replacement.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def ndcg_at_k(ranked: Sequence[int] | npt.NDArray[np.int64], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return float(sum(gains) / ideal)


def recall_at_k(ranked: Sequence[int] | npt.NDArray[np.int64], relevant: set[int], k: int) -> float:
    if not relevant:
        return 0.0
    hits = sum(1 for item in ranked[:k] if item in relevant)
    return hits / len(relevant)


def coverage_at_k(rankings: npt.NDArray[np.int64], n_items: int, k: int) -> float:
    """Distinct items in the users' top k, as a share of the catalogue (negative codes are
    empty places)."""
    if n_items == 0 or rankings.size == 0:
        return 0.0
    found = np.unique(rankings[:, :k])
    return float(np.count_nonzero(found >= 0) / n_items)


def bootstrap_ci(
    values: FloatArray, *, rounds: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values` (one per user). A paired
    difference is `bootstrap_ci(a - b)` on the same users."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(values), size=(rounds, len(values)))
    means = values[samples].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def per_user(
    rankings: npt.NDArray[np.int64],
    relevant: Sequence[npt.NDArray[np.int64]],
    k: int,
    *,
    ndcg: bool,
) -> FloatArray:
    """NDCG@k (ndcg=True) or Recall@k of each user's ranking (rows of `rankings`)."""
    metric = ndcg_at_k if ndcg else recall_at_k
    return np.asarray(
        [metric(row, set(rel.tolist()), k) for row, rel in zip(rankings, relevant, strict=True)],
        dtype=np.float64,
    )
