"""iALS, implicit-feedback matrix factorization (`implicit`'s conjugate-gradient solver): a
user's score for an item is the dot product of their embeddings; the weights of the training
matrix (strong interactions weigh more) times `alpha` are the confidences."""

from __future__ import annotations

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares

from recsys.data import TrainSet
from recsys.models import Codes, Scores


class IALS:
    name = "ials"

    def __init__(
        self,
        *,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 10.0,
        iterations: int = 15,
        threads: int = 1,
        seed: int = 0,
    ) -> None:
        self.params = dict(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            num_threads=threads,
            random_state=seed,
        )
        self.model: AlternatingLeastSquares | None = None

    def fit(self, train: TrainSet) -> None:
        self.model = AlternatingLeastSquares(**self.params)  # type: ignore[arg-type]
        self.model.fit(train.matrix, show_progress=False)

    def fit_from(self, train: TrainSet, user_init: np.ndarray, item_init: np.ndarray) -> None:
        """Fit starting from these factors (a warm start: `implicit` keeps factors already set)."""
        self.model = AlternatingLeastSquares(**self.params)  # type: ignore[arg-type]
        self.model.user_factors = np.ascontiguousarray(user_init, dtype=np.float32)
        self.model.item_factors = np.ascontiguousarray(item_init, dtype=np.float32)
        self.model.fit(train.matrix, show_progress=False)

    @property
    def user_factors(self) -> np.ndarray:
        assert self.model is not None
        return np.asarray(self.model.user_factors)

    @property
    def item_factors(self) -> np.ndarray:
        assert self.model is not None
        return np.asarray(self.model.item_factors)

    def scores(self, users: Codes) -> Scores:
        return np.asarray(self.user_factors[users] @ self.item_factors.T, dtype=np.float32)


GRID = tuple(
    {"factors": f, "alpha": a, "regularization": r}
    for f in (4, 16, 64)
    for a in (1.0, 5.0)
    for r in (1.0, 10.0)
)


class TunedIALS(IALS):
    """iALS whose factors and confidence scale are chosen on the past alone: the training
    window is split again in time (`inner_fraction`), each setting of `GRID` is fitted on the
    earlier part and scored by NDCG@10 on the later part, and the best is refitted on the whole
    window (the test period is never looked at)."""

    def __init__(self, *, inner_fraction: float = 0.8, threads: int = 1, seed: int = 0) -> None:
        super().__init__(threads=threads, seed=seed)
        self.inner_fraction, self.threads, self.seed = inner_fraction, threads, seed
        self.chosen: dict[str, float] = dict(GRID[0])

    def fit(self, train: TrainSet) -> None:
        from recsys.data import temporal_split
        from recsys.metrics import per_user
        from recsys.models import top_k

        inner = temporal_split(train.log, self.inner_fraction)
        best = -1.0
        if len(inner.test_users):
            for setting in GRID:
                model = IALS(threads=self.threads, seed=self.seed, **setting)  # type: ignore[arg-type]
                model.fit(inner.train)
                ranked = top_k(model, inner.train, inner.test_users, 10)
                value = float(per_user(ranked, inner.relevant, 10, ndcg=True).mean())
                if value > best:
                    best, self.chosen = value, dict(setting)
        self.params.update(self.chosen)
        super().fit(train)
