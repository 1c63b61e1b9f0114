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
