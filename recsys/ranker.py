"""The served For You model (issue 17, "Retrieval" and "Ranking"): two stages and a safeguard.

1. Retrieval: each user's candidates are the union of the top `per_source` items of iALS,
   ItemKNN and all-time popularity and the top `deep` of recent popularity (seen items
   excluded).
2. Ranking: a LightGBM LambdaRank model orders the candidates by the features of
   `recsys.features` (scores of the pair, recency and popularity of the item over several
   windows, the user's activity). Items outside the candidates rank below them, by iALS.
3. Safeguard: the ranker is compared on the latest inner window with each first-stage model
   (iALS, ItemKNN, popularity all time and recent); the served order is a rank fusion of the
   ranker and the best of them, with the ranker's weight chosen on that window (1: the ranker
   alone; 0: the rival alone).

Everything is learnt from the training period alone: it is split again in time at each of
`inner_fractions`, the first stage is fitted on the earlier part and the labels are the later
part's interactions (a later window weighs more). The tree shape and the fusion are chosen on
the latest window with a ranker trained on windows of the period before its cutoff (labels
included); then the ranker is trained on all windows and the first stage refitted on the
whole period.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from recsys.data import TrainSet, cutoff_at, temporal_split, train_set
from recsys.features import FEATURES, ONLINE, Bases, Floats, fit_bases, pair_features
from recsys.metrics import per_user
from recsys.mf import TunedIALS
from recsys.models import CHUNK, Codes, Scores, top_k_of

# The ranker's tree shapes, (leaves, least rows a leaf), one chosen per fit on an inner window:
# a few thousand labelled pairs a window on ML-100K-sized logs, millions on the bench's.
SHAPES: tuple[tuple[int, int], ...] = ((7, 100), (15, 50), (31, 20), (63, 20))
RIVALS = ("most_popular", "most_popular_recent", "ials", "item_knn")
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
FUSION_K = 10.0  # reciprocal rank fusion: weight / (FUSION_K + rank)


@dataclass
class Window:
    """One inner window's labelled candidates (`row` indexes `users`)."""

    users: Codes
    relevant: list[npt.NDArray[np.int64]]
    row: Codes
    x: Floats
    label: Floats
    groups: npt.NDArray[np.int64]


def _dataset(
    windows: list[Window], names: tuple[str, ...], reference: lgb.Dataset | None = None
) -> lgb.Dataset:
    # A later window weighs more (1 for the first, 2 for the last): it is most like the future.
    spread = max(len(windows) - 1, 1)
    weight = [np.full(len(w.label), 1.0 + i / spread) for i, w in enumerate(windows)]
    return lgb.Dataset(
        np.vstack([w.x for w in windows]),
        np.concatenate([w.label for w in windows]),
        weight=np.concatenate(weight),
        group=np.concatenate([w.groups for w in windows]),
        feature_name=list(names),
        reference=reference,
        # One dataset serves every shape: LightGBM must not drop features by the first one's
        # `min_data_in_leaf`.
        params={"feature_pre_filter": False},
        free_raw_data=False,
    )


def ranks(scores: Floats) -> Floats:
    """Each row's places (0: the best score; ties to the lower column)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    out = np.empty_like(scores)
    np.put_along_axis(out, order, np.arange(scores.shape[1], dtype=np.float64)[None, :], axis=1)
    return out


def fuse(ranker: Floats, rival: Floats, weight: float) -> Floats:
    """Reciprocal rank fusion of two score blocks; `weight` 1 keeps `ranker`'s order."""
    if weight >= 1.0:
        return ranker
    if weight <= 0.0:
        return rival
    return weight / (FUSION_K + ranks(ranker)) + (1.0 - weight) / (FUSION_K + ranks(rival))


class TwoStage:
    name = "ials_lgbm"

    def __init__(
        self,
        *,
        per_source: int = 100,
        deep: int = 200,
        max_users: int = 300,
        rounds: int = 100,
        inner_fractions: tuple[float, ...] = (0.6, 0.7, 0.8, 0.85, 0.9),
        knn: bool = True,
        choose: bool = True,
        safeguard: bool = True,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.per_source, self.deep, self.inner_fractions = per_source, deep, inner_fractions
        self.max_users, self.rounds, self.knn = max_users, rounds, knn
        # `choose`: pick the tree shape (and, with `safeguard`, the fusion) on an inner window;
        # else the second shape and the ranker alone.
        self.choose, self.safeguard = choose, safeguard
        self.threads, self.seed = threads, seed
        self.names = FEATURES if knn else ONLINE
        self.bases: Bases | None = None
        self.booster: lgb.Booster | None = None
        self.shape: tuple[int, int] = SHAPES[0] if choose else SHAPES[1]
        self.shape_scores: dict[tuple[int, int], float] = {}
        # The safeguard's choice, and each contender's NDCG@10 on the latest inner window.
        self.rival, self.weight = "ials", 1.0
        self.inner_ndcg: dict[str, float] = {}

    def _bases(self, train: TrainSet, setting: dict[str, float] | None) -> Bases:
        return fit_bases(
            train, ials_setting=setting, knn=self.knn, threads=self.threads, seed=self.seed
        )

    def candidates(self, b: Bases, users: Codes) -> tuple[Codes, Codes, Floats]:
        """(row in `users`, item, features) of every candidate pair, `CHUNK` users at a time
        (the scores of a chunk are dense: users × catalogue)."""
        parts = [self._chunk(b, users[at : at + CHUNK]) for at in range(0, len(users), CHUNK)]
        if not parts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, len(self.names)))
        offsets = np.arange(0, len(users), CHUNK)
        row = np.concatenate([p[0] + at for p, at in zip(parts, offsets, strict=True)])
        return row, np.concatenate([p[1] for p in parts]), np.vstack([p[2] for p in parts])

    def _chunk(self, b: Bases, users: Codes) -> tuple[Codes, Codes, Floats]:
        s_ials = b.ials.scores(users).astype(np.float64)
        s_knn = b.knn.scores(users).astype(np.float64) if b.knn is not None else None
        n = b.train.n_items
        mask = np.zeros((len(users), n), dtype=bool)
        rows = np.arange(len(users))[:, None]
        pools: list[tuple[Floats, int]] = [(s_ials, self.per_source)]
        if s_knn is not None:
            pools.append((s_knn, self.per_source))
        pools.append((np.asarray(b.pop.scores(users), float), self.per_source))
        pools.append((np.asarray(b.recent.scores(users), float), self.deep))
        for scores, k in pools:
            mask[rows, top_k_of(scores, b.train, users, min(k, n))] = True
        seen = b.train.matrix[users]
        mask[np.repeat(np.arange(len(users)), np.diff(seen.indptr)), seen.indices] = False
        row, item = np.nonzero(mask)
        best_ials = np.abs(s_ials).max(axis=1) + 1e-9
        best_knn = None if s_knn is None else np.abs(s_knn).max(axis=1) + 1e-9
        x = pair_features(
            s_ials[row, item],
            None if s_knn is None else s_knn[row, item],
            best_ials[row],
            None if best_knn is None else best_knn[row],
            b.items[item],
            b.users[users[row]],
        )
        return row, item, x

    def _window(self, train: TrainSet, fraction: float, setting: dict[str, float] | None,
                rng: np.random.Generator) -> tuple[Window, Bases] | None:  # fmt: skip
        inner = temporal_split(train.log, fraction)
        if not len(inner.test_users):
            return None
        # At most `max_users` users per window: enough to learn the features' effects, and
        # the ranker's cost stays bounded on large logs.
        keep = np.sort(rng.permutation(len(inner.test_users))[: self.max_users])
        users = inner.test_users[keep]
        relevant = [inner.relevant[at] for at in keep.tolist()]
        bases = self._bases(inner.train, setting)
        row, item, x = self.candidates(bases, users)
        n = inner.train.n_items
        wanted = np.concatenate([r * n + rel for r, rel in enumerate(relevant)])
        label = np.isin(row * n + item, wanted).astype(np.float64)
        sizes = np.bincount(row, minlength=len(users))
        return Window(users, relevant, row, x, label, sizes[sizes > 0]), bases

    def fit(
        self,
        train: TrainSet,
        final: Bases | None = None,
        setting: dict[str, float] | None = None,
    ) -> None:
        """Fit on `train`; `final` (with its iALS `setting`): a first stage already fitted on
        it (the learning loop's), else one is fitted here."""
        # The final first stage first: its iALS tuning picks the setting every window reuses.
        if final is None:
            final = self._bases(train, None)
        if setting is None and isinstance(final.ials, TunedIALS):
            setting = final.ials.chosen
        rng = np.random.default_rng(self.seed)
        windows, last = self._windows(train, self.inner_fractions, setting, rng)
        if not windows or last is None:
            raise ValueError("too little history to train the ranker (no inner test users)")
        if self.choose and len(windows) >= 2:
            self._choose(train, windows[-1], last, setting, rng)
        self.booster = lgb.train(
            self._params(self.shape), _dataset(windows, self.names), num_boost_round=self.rounds
        )
        self.bases = final

    def _windows(
        self,
        train: TrainSet,
        fractions: tuple[float, ...],
        setting: dict[str, float] | None,
        rng: np.random.Generator,
    ) -> tuple[list[Window], Bases | None]:
        """The labelled windows of `train` at `fractions`, and the latest one's first stage."""
        windows: list[Window] = []
        last: Bases | None = None
        for fraction in fractions:
            made = self._window(train, fraction, setting, rng)
            if made is not None:
                windows.append(made[0])
                last = made[1]
        return windows, last

    def _choose(
        self,
        train: TrainSet,
        latest: Window,
        bases: Bases,
        setting: dict[str, float] | None,
        rng: np.random.Generator,
    ) -> None:
        """The tree shape and the safeguard's fusion, chosen on the latest inner window with a
        ranker trained on windows of the period before its cutoff only (their labels end where
        its period starts: a ranker trained on later labels would have seen its items' future
        and look better there than it is)."""
        top = self.inner_fractions[-1]
        cut = cutoff_at(train.log, top)
        before = train_set(train.log.subset(train.log.time < cut), cut)
        earlier = tuple(f / top for f in self.inner_fractions[:-1])
        windows, _ = self._windows(before, earlier, setting, rng)
        if not windows:
            return
        self.shape = self._chosen_shape(windows, latest)
        if self.safeguard:
            early = lgb.train(self._params(self.shape), _dataset(windows, self.names), self.rounds)
            self._choose_fusion(early, bases, latest)

    def _choose_fusion(self, early: lgb.Booster, bases: Bases, window: Window) -> None:
        """The safeguard: the rival (the first-stage model best on the latest inner window)
        and the ranker's weight in the fusion with it (best NDCG@10 there; ties to the
        ranker)."""
        rivals = [r for r in RIVALS if r != "item_knn" or bases.knn is not None]
        ranked: dict[str, list[Floats]] = {name: [] for name in ("ranker", *rivals)}
        for at in range(0, len(window.users), CHUNK):
            users = window.users[at : at + CHUNK]
            ranked["ranker"].append(self._ranked(bases, early, users))
            for name in rivals:
                ranked[name].append(bases.baseline(name, users))
        blocks = {name: np.vstack(parts) for name, parts in ranked.items()}

        def ndcg(scores: Floats) -> float:
            top = top_k_of(scores, bases.train, window.users, 10)
            return float(per_user(top, window.relevant, 10, ndcg=True).mean())

        self.inner_ndcg = {name: ndcg(block) for name, block in blocks.items()}
        self.rival = max(rivals, key=lambda name: self.inner_ndcg[name])
        best = -1.0
        for weight in sorted(WEIGHTS, reverse=True):
            value = ndcg(fuse(blocks["ranker"], blocks[self.rival], weight))
            self.inner_ndcg[f"fused@{weight}"] = value
            if value > best + 1e-9:
                best, self.weight = value, weight

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

    def _chosen_shape(self, windows: list[Window], latest: Window) -> tuple[int, int]:
        """The tree shape (leaves, least rows a leaf) with the best NDCG@10 on the latest
        inner window when trained on `windows` (before it): chosen on the training period
        only, never on the test period."""
        train = _dataset(windows, self.names)
        valid = _dataset([latest], self.names, reference=train)
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

    def _ranked(self, bases: Bases, booster: lgb.Booster, users: Codes) -> Floats:
        """Candidates score 1 + their rank score squashed into (0, 1) above every other item,
        which keeps its iALS order below (squashed into (−1, 0))."""
        s_ials = bases.ials.scores(users).astype(np.float64)
        out = -1.0 / (1.0 + np.exp(s_ials))  # in (−1, 0), increasing in the iALS score
        row, item, x = self.candidates(bases, users)
        if len(row):
            ranked = np.asarray(booster.predict(x, num_threads=self.threads), float)
            out[row, item] = 2.0 - 1.0 / (1.0 + np.exp(ranked))
        return out

    def describe(self) -> str:
        """What the fit chose on the training period (printed by `recsys.evaluate.table`)."""
        inner = ", ".join(f"{k} {v:.3f}" for k, v in self.inner_ndcg.items())
        return (
            f"tree shape {self.shape}; fused with {self.rival} at ranker weight {self.weight}"
            f" (latest inner window NDCG@10: {inner or 'not measured'})"
        )

    def scores(self, users: Codes) -> Scores:
        """The ranker's order, fused with the safeguard's rival at the chosen weight."""
        assert self.bases is not None and self.booster is not None
        ranker = self._ranked(self.bases, self.booster, users)
        if self.weight >= 1.0:
            return ranker.astype(np.float32)
        return fuse(ranker, self.bases.baseline(self.rival, users), self.weight).astype(np.float32)
