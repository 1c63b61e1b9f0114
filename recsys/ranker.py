"""The served For You model (issue 17, "Retrieval" and "Ranking"): two stages.

1. Retrieval: each user's candidates are the union of the top `per_source` items of iALS,
   ItemKNN, recent popularity and all-time popularity (seen items excluded).
2. Ranking: a LightGBM LambdaRank model orders the candidates by features of the pair: the
   iALS and ItemKNN scores (raw and relative to the user's best), the item's popularity all
   time and recent, its v1 score, its age and share of strong interactions, and the user's
   history length.

The ranker learns from the past only: the training window is split again in time at each of
`inner_fractions` (more examples than one split gives), the base models are fitted on the
earlier part, and the labels are the later part's interactions; then the base models are
refitted on the whole window and the ranker orders their candidates. Items outside the
candidates rank below them, by iALS.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from recsys.baselines import ItemKNN, MostPopular, V1Replay
from recsys.data import TrainSet, temporal_split
from recsys.mf import IALS, TunedIALS
from recsys.models import CHUNK, Codes, Scores, top_k_of

FEATURES = (
    "ials",
    "ials_rel",
    "knn",
    "knn_rel",
    "pop",
    "pop_recent",
    "v1",
    "age",
    "strong_share",
    "user_history",
)


# The ranker's tree shapes, (leaves, least rows a leaf), one chosen per fit on an inner window:
# a few thousand labelled pairs a window on ML-100K-sized logs, millions on the bench's.
SHAPES: tuple[tuple[int, int], ...] = ((7, 100), (15, 50), (31, 20), (63, 20))


def _dataset(
    xs: list[npt.NDArray[np.float64]],
    labels: list[npt.NDArray[np.float64]],
    groups: list[npt.NDArray[np.int64]],
    reference: lgb.Dataset | None = None,
) -> lgb.Dataset:
    return lgb.Dataset(
        np.vstack(xs),
        np.concatenate(labels),
        group=np.concatenate(groups),
        feature_name=list(FEATURES),
        reference=reference,
        # One dataset serves every shape: LightGBM must not drop features by the first one's
        # `min_data_in_leaf`.
        params={"feature_pre_filter": False},
        free_raw_data=False,
    )


@dataclass
class _Bases:
    """The first-stage models fitted on one window, and the item features of that window."""

    train: TrainSet
    ials: IALS
    knn: ItemKNN
    pop: MostPopular
    recent: MostPopular
    v1: V1Replay
    age: npt.NDArray[np.float64]
    strong_share: npt.NDArray[np.float64]
    history: npt.NDArray[np.float64]


class TwoStage:
    name = "ials_lgbm"

    def __init__(
        self,
        *,
        per_source: int = 100,
        max_users: int = 2000,
        rounds: int = 100,
        inner_fractions: tuple[float, ...] = (0.6, 0.7, 0.8),
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.per_source, self.inner_fractions = per_source, inner_fractions
        self.max_users = max_users
        self.rounds = rounds
        self.threads, self.seed = threads, seed
        self.bases: _Bases | None = None
        self.booster: lgb.Booster | None = None
        self.shape: tuple[int, int] = SHAPES[0]
        self.shape_scores: dict[tuple[int, int], float] = {}

    def _bases(self, train: TrainSet, ials_setting: dict[str, float] | None = None) -> _Bases:
        """The first stage on `train`: iALS tuned on it, or with `ials_setting`."""
        ials: IALS = (
            TunedIALS(threads=self.threads, seed=self.seed)
            if ials_setting is None
            else IALS(threads=self.threads, seed=self.seed, **ials_setting)  # type: ignore[arg-type]
        )
        knn = ItemKNN(threads=self.threads)
        pop, recent, v1 = MostPopular(), MostPopular(recent=True), V1Replay()
        for model in (ials, knn, pop, recent, v1):
            model.fit(train)
        log, n = train.log, train.n_items
        first = np.full(n, np.inf)
        np.minimum.at(first, log.item, log.time)
        age = np.where(np.isfinite(first), train.now - first, 0.0)
        count = np.bincount(log.item, minlength=n).astype(np.float64)
        strong = np.bincount(log.item, log.strong.astype(np.float64), minlength=n)
        share = strong / np.maximum(count, 1.0)
        history = np.diff(train.matrix.indptr).astype(np.float64)
        return _Bases(train, ials, knn, pop, recent, v1, age, share, history)

    def _candidates(self, b: _Bases, users: Codes) -> tuple[Codes, Codes, npt.NDArray[np.float64]]:
        """(row in `users`, item, features) of every candidate pair, `CHUNK` users at a time
        (the scores of a chunk are dense: users × catalogue)."""
        parts = [self._chunk(b, users[at : at + CHUNK]) for at in range(0, len(users), CHUNK)]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(FEATURES)))
        offsets = np.arange(0, len(users), CHUNK)
        row = np.concatenate([p[0] + at for p, at in zip(parts, offsets, strict=True)])
        return row, np.concatenate([p[1] for p in parts]), np.vstack([p[2] for p in parts])

    def _chunk(self, b: _Bases, users: Codes) -> tuple[Codes, Codes, npt.NDArray[np.float64]]:
        s_ials = b.ials.scores(users).astype(np.float64)
        s_knn = b.knn.scores(users).astype(np.float64)
        n = b.train.n_items
        k = min(self.per_source, n)
        mask = np.zeros((len(users), n), dtype=bool)
        rows = np.arange(len(users))[:, None]
        for scores in (s_ials, s_knn):
            mask[rows, top_k_of(scores, b.train, users, k)] = True
        for pop in (b.pop, b.recent):
            mask[rows, top_k_of(np.asarray(pop.scores(users), float), b.train, users, k)] = True
        seen = b.train.matrix[users]
        mask[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = False
        row, item = np.nonzero(mask)
        best_ials = np.abs(s_ials).max(axis=1) + 1e-9
        best_knn = np.abs(s_knn).max(axis=1) + 1e-9
        features = np.column_stack(
            [
                s_ials[row, item],
                s_ials[row, item] / best_ials[row],
                s_knn[row, item],
                s_knn[row, item] / best_knn[row],
                np.log1p(np.floor(b.pop.item_scores[item])),
                np.log1p(np.floor(b.recent.item_scores[item])),
                np.log(b.v1.item_scores[item] + 1e-12),
                b.age[item],
                b.strong_share[item],
                b.history[users[row]],
            ]
        )
        return row, item, features

    def fit(self, train: TrainSet) -> None:
        # The final first stage first: its iALS tuning picks the setting every window reuses.
        final = self._bases(train)
        setting = final.ials.chosen if isinstance(final.ials, TunedIALS) else None
        xs, labels, groups = [], [], []
        rng = np.random.default_rng(self.seed)
        for fraction in self.inner_fractions:
            inner = temporal_split(train.log, fraction)
            if not len(inner.test_users):
                continue
            # At most `max_users` users per window: enough to learn 10 features' effects, and
            # the ranker's cost stays bounded on large logs.
            keep = np.sort(rng.permutation(len(inner.test_users))[: self.max_users])
            users = inner.test_users[keep]
            bases = self._bases(inner.train, setting)
            row, item, x = self._candidates(bases, users)
            n = inner.train.n_items
            wanted = np.concatenate(
                [r * n + inner.relevant[at] for r, at in enumerate(keep.tolist())]
            )
            label = np.isin(row * n + item, wanted).astype(np.float64)
            sizes = np.bincount(row, minlength=len(users))
            xs.append(x)
            labels.append(label)
            groups.append(sizes[sizes > 0])
        if not xs:
            raise ValueError("too little history to train the ranker (no inner test users)")
        self.shape = self._chosen_shape(xs, labels, groups)
        self.booster = lgb.train(
            self._params(self.shape), _dataset(xs, labels, groups), num_boost_round=self.rounds
        )
        self.bases = final

    def _params(self, shape: tuple[int, int]) -> dict[str, object]:
        leaves, min_leaf = shape
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [10],
            "learning_rate": 0.05,
            "num_leaves": leaves,
            "min_data_in_leaf": min_leaf,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambdarank_truncation_level": 20,
            "num_threads": self.threads,
            "seed": self.seed,
            "deterministic": True,
            "verbosity": -1,
        }

    def _chosen_shape(
        self,
        xs: list[npt.NDArray[np.float64]],
        labels: list[npt.NDArray[np.float64]],
        groups: list[npt.NDArray[np.int64]],
    ) -> tuple[int, int]:
        """The tree shape (leaves, least rows a leaf) with the best NDCG@10 on the latest
        inner window when trained on the earlier ones: chosen on the training period only,
        never on the test period. One window: the first shape."""
        if len(xs) < 2:
            return SHAPES[0]
        train = _dataset(xs[:-1], labels[:-1], groups[:-1])
        valid = _dataset(xs[-1:], labels[-1:], groups[-1:], reference=train)
        best, best_ndcg = SHAPES[0], -1.0
        for shape in SHAPES:
            result: dict[str, dict[str, list[float]]] = {}
            lgb.train(
                self._params(shape),
                train,
                num_boost_round=self.rounds,
                valid_sets=[valid],
                valid_names=["inner"],
                callbacks=[lgb.record_evaluation(result)],
            )
            ndcg = result["inner"]["ndcg@10"][-1]
            self.shape_scores[shape] = ndcg
            if ndcg > best_ndcg:
                best, best_ndcg = shape, ndcg
        return best

    def scores(self, users: Codes) -> Scores:
        """Candidates score 1 + their rank score squashed into (0, 1) above every other item,
        which keeps its iALS order below (squashed into (−1, 0))."""
        assert self.bases is not None and self.booster is not None
        s_ials = self.bases.ials.scores(users).astype(np.float64)
        out = -1.0 / (1.0 + np.exp(s_ials))  # in (−1, 0), increasing in the iALS score
        row, item, x = self._candidates(self.bases, users)
        if len(row):
            ranked = np.asarray(self.booster.predict(x, num_threads=self.threads), float)
            out[row, item] = 2.0 - 1.0 / (1.0 + np.exp(ranked))
        return out.astype(np.float32)
