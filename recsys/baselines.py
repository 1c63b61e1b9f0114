"""The baselines of the offline evaluation (issue 17): the same list for everyone by
popularity, all time (`most_popular`) or recent (`most_popular_recent`), today's v1 for-you
score replayed on the log (`v1_score`), and item-item neighbours (`item_knn`, `implicit`'s
cosine ItemKNN)."""

from __future__ import annotations

import warnings

import numpy as np
from implicit.nearest_neighbours import CosineRecommender
from implicit.utils import ParameterWarning
from scipy import sparse

from recsys import v1score
from recsys.data import TrainSet
from recsys.models import Codes, Scores


class _Global:
    """One score per item, the same for every user."""

    name = "global"
    item_scores: Scores = np.zeros(0, dtype=np.float32)

    def scores(self, users: Codes) -> Scores:
        return np.broadcast_to(self.item_scores, (len(users), len(self.item_scores)))


class MostPopular(_Global):
    """Items by how many users interacted with them: over the whole past, or (`recent`) over
    its last `recent_fraction` of interactions."""

    def __init__(self, *, recent: bool = False, recent_fraction: float = 0.1) -> None:
        self.recent, self.recent_fraction = recent, recent_fraction
        self.name = "most_popular_recent" if recent else "most_popular"

    def fit(self, train: TrainSet) -> None:
        log = train.log
        if self.recent and len(log):
            since = np.quantile(log.time, 1.0 - self.recent_fraction)
            log = log.subset(log.time >= since)
        pairs = sparse.csr_matrix(
            (np.ones(len(log), dtype=np.float32), (log.user, log.item)), shape=train.matrix.shape
        )
        counts = np.asarray((pairs > 0).sum(axis=0), dtype=np.float64).ravel()
        # Ties go to the more popular all time (then to the lower code, in `top_k`).
        overall = np.asarray((train.matrix > 0).sum(axis=0), dtype=np.float64).ravel()
        self.item_scores = (counts + overall / (overall.max() + 1.0)).astype(np.float32)


class V1Replay(_Global):
    """Today's for-you score (`recsys.v1score`) at the cutoff, from the log as counters: each
    interaction is an impression; a rating ≥ 4 counts as a completion, 3 as a like, ≤ 2 as a
    skip (without ratings every interaction is a completion); a video is published at its first
    interaction; time units are taken as seconds."""

    name = "v1_score"

    def __init__(self, seconds_per_unit: float = 1.0) -> None:
        self.ms_per_unit = 1000.0 * seconds_per_unit

    def fit(self, train: TrainSet) -> None:
        log, n = train.log, train.n_items
        rated = ~np.isnan(log.rating)
        rating = np.nan_to_num(log.rating)
        completions = np.where(~rated | (rating >= 4), 1.0, 0.0)
        likes = np.where(rated & (rating >= 3) & (rating < 4), 1.0, 0.0)
        skips = np.where(rated & (rating < 3), 1.0, 0.0)
        c = np.bincount(log.item, completions, minlength=n)
        lk = np.bincount(log.item, likes, minlength=n)
        sk = np.bincount(log.item, skips, minlength=n)
        exposure = np.bincount(log.item, minlength=n)
        first = np.full(n, np.inf)
        np.minimum.at(first, log.item, log.time)
        values = np.zeros(n)
        for item in np.flatnonzero(exposure):
            points = v1score.points(v1score.V1, completions=c[item], likes=lk[item], skips=sk[item])
            age_ms = (train.now - first[item]) * self.ms_per_unit
            values[item] = v1score.quality(points, exposure[item]) * v1score.decay(age_ms)
        self.item_scores = values.astype(np.float32)


class ItemKNN:
    """Item-item cosine neighbours (`implicit`): a user's score for an item is the sum of its
    similarities to the items they interacted with (weighted)."""

    name = "item_knn"

    def __init__(self, neighbours: int = 100, threads: int = 1) -> None:
        self.model = CosineRecommender(K=neighbours, num_threads=threads)
        self.user_items: sparse.csr_matrix | None = None

    def fit(self, train: TrainSet) -> None:
        self.user_items = train.matrix
        with warnings.catch_warnings():
            # implicit converts its own normalized copy (COO) to CSR and warns about it.
            warnings.filterwarnings("ignore", "Method expects CSR input", ParameterWarning)
            self.model.fit(train.matrix, show_progress=False)

    def scores(self, users: Codes) -> Scores:
        assert self.user_items is not None
        product = self.user_items[users] @ self.model.similarity
        return np.asarray(product.toarray(), dtype=np.float32)
