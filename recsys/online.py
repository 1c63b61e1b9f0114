"""The ranker online (issue 17, "Ranking"): what the learning loop stores beside the iALS
embeddings so that an API process can score a viewer's candidates with the LightGBM ranker from
the artifact alone, and the scoring itself.

The stored ranker is `recsys.ranker.TwoStage` with the `ONLINE` features (no ItemKNN, no
iALS score relative to the viewer's best), a fixed tree shape and no fusion safeguard; its
item and user tables are those of the whole log at training time (`recsys.features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import numpy.typing as npt

from recsys.data import TrainSet
from recsys.features import ONLINE, bases_around
from recsys.mf import IALS
from recsys.ranker import TwoStage

# The loop's windows and users per window: fewer than the offline evaluation's, so that the
# ranker stays a fraction of the retraining's time on the bench's 1M-event log.
WINDOWS = (0.8, 0.9)
MAX_USERS = 500


@dataclass(frozen=True)
class OnlineRanker:
    """A trained ranker and the tables its features read (rows: the artifact's codes)."""

    booster: lgb.Booster
    item_features: npt.NDArray[np.float32]
    user_features: npt.NDArray[np.float32]

    def model_text(self) -> str:
        return str(self.booster.model_to_string())


def train_online(
    train: TrainSet, ials: IALS, setting: dict[str, float], *, threads: int, seed: int
) -> OnlineRanker:
    """The ranker for `train` around the loop's fitted `ials` (its `setting` for the inner
    windows); raises ValueError when the log is too short for an inner window."""
    ranker = TwoStage(
        knn=False,
        choose=False,
        safeguard=False,
        inner_fractions=WINDOWS,
        max_users=MAX_USERS,
        threads=threads,
        seed=seed,
    )
    final = bases_around(train, ials, knn=False, threads=threads)
    ranker.fit(train, final=final, setting=setting)
    assert ranker.booster is not None
    return OnlineRanker(
        ranker.booster,
        final.items.astype(np.float32),
        final.users.astype(np.float32),
    )


def maybe_train_online(
    train: TrainSet, ials: IALS, setting: dict[str, float], *, threads: int, seed: int
) -> OnlineRanker | None:
    """`train_online`, or None when the log is too short to train a ranker (the version then
    serves iALS scores)."""
    try:
        return train_online(train, ials, setting, threads=threads, seed=seed)
    except ValueError:
        return None


def rank_scores(
    booster: lgb.Booster,
    item_features: npt.NDArray[np.float32],
    user_features: npt.NDArray[np.float32],
    user_factor: npt.NDArray[np.float32],
    item_factors: npt.NDArray[np.float32],
    user_row: int,
    codes: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """The ranker's score of each item code for one viewer (NaN where the code is −1)."""
    out = np.full(len(codes), np.nan)
    known = codes >= 0
    if not known.any():
        return out
    at = codes[known]
    x = np.empty((len(at), len(ONLINE)), dtype=np.float64)
    x[:, 0] = item_factors[at] @ user_factor
    width = item_features.shape[1]
    x[:, 1 : 1 + width] = item_features[at]
    x[:, 1 + width :] = user_features[user_row]
    out[known] = booster.predict(x, num_threads=1)
    return out
