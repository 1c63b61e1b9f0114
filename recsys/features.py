"""The served ranker's features (issue 17, "Ranking"): what is known of an item, of a user and
of a (user, item) pair at a cutoff, from the log before it alone.

Times are measured in `unit`s: the span of the last quarter of the training interactions, so
that a feature means the same on a short inner window and on the whole training period.

- item: users all time and over the last 1, 5, 10 and 25 % of the interactions (log), the
  trend (the last 10 %'s share against the all-time share), the time since its last and its
  first interaction, its share of strong interactions, and its v1 score (log);
- user: history length (log), time since their last interaction, their interactions in the
  last 10 % (log), and how mainstream their history is (mean log popularity of its items);
- pair: the iALS and ItemKNN scores, raw and relative to the user's best.

`ONLINE` is the subset an API process can compute from the model artifact alone: no ItemKNN
(its similarity matrix is not shipped) and no iALS score relative to the user's best (that is a
pass over the whole catalogue per viewer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsys.baselines import ItemKNN, MostPopular, V1Replay
from recsys.data import TrainSet
from recsys.mf import IALS, TunedIALS
from recsys.models import Codes

Floats = npt.NDArray[np.float64]

WINDOWS = (0.01, 0.05, 0.1, 0.25)
ITEM_FEATURES = (
    "pop",
    "pop_1",
    "pop_5",
    "pop_10",
    "pop_25",
    "trend",
    "item_since_last",
    "age",
    "strong_share",
    "v1",
)
USER_FEATURES = ("user_history", "user_since_last", "user_recent", "user_taste")
PAIR_FEATURES = ("ials", "ials_rel", "knn", "knn_rel")
FEATURES = PAIR_FEATURES + ITEM_FEATURES + USER_FEATURES
ONLINE = ("ials", *ITEM_FEATURES, *USER_FEATURES)


def _since_quantile(time: Floats, fraction: float) -> float:
    return float(np.quantile(time, 1.0 - fraction)) if len(time) else 0.0


def item_table(train: TrainSet, v1: V1Replay) -> Floats:
    """One row per item code, the columns of `ITEM_FEATURES`."""
    log, n, now = train.log, train.n_items, train.now
    unit = max(now - _since_quantile(log.time, 0.25), 1e-9)
    users = np.asarray((train.matrix > 0).sum(axis=0), dtype=np.float64).ravel()
    columns = [np.log1p(users)]
    for fraction in WINDOWS:
        since = _since_quantile(log.time, fraction)
        columns.append(np.log1p(np.bincount(log.item[log.time >= since], minlength=n)))
    recent = np.expm1(columns[3])  # the last 10 %
    share_recent = recent / max(recent.sum(), 1.0)
    share_all = users / max(users.sum(), 1.0)
    columns.append(np.log((share_recent + 1e-4) / (share_all + 1e-4)))
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(first, log.item, log.time)
    np.maximum.at(last, log.item, log.time)
    seen = np.isfinite(first)
    columns.append(np.where(seen, (now - last) / unit, 1e3))
    columns.append(np.where(seen, (now - first) / unit, 0.0))
    count = np.bincount(log.item, minlength=n).astype(np.float64)
    strong = np.bincount(log.item, log.strong.astype(np.float64), minlength=n)
    columns.append(strong / np.maximum(count, 1.0))
    columns.append(np.log(np.asarray(v1.item_scores, np.float64) + 1e-12))
    return np.column_stack(columns)


def user_table(train: TrainSet, items: Floats) -> Floats:
    """One row per user code, the columns of `USER_FEATURES` (`items`: `item_table`)."""
    log, m, now = train.log, train.n_users, train.now
    unit = max(now - _since_quantile(log.time, 0.25), 1e-9)
    history = np.diff(train.matrix.indptr).astype(np.float64)
    last = np.full(m, -np.inf)
    np.maximum.at(last, log.user, log.time)
    since_last = np.where(np.isfinite(last), (now - last) / unit, 1e3)
    since = _since_quantile(log.time, 0.1)
    recent = np.bincount(log.user[log.time >= since], minlength=m).astype(np.float64)
    binary = (train.matrix > 0).astype(np.float64)
    taste = np.asarray(binary @ items[:, 0]).ravel() / np.maximum(history, 1.0)
    return np.column_stack([np.log1p(history), since_last, np.log1p(recent), taste])


@dataclass
class Bases:
    """The first-stage models fitted on one window, and its item and user tables."""

    train: TrainSet
    ials: IALS
    knn: ItemKNN | None
    pop: MostPopular
    recent: MostPopular
    items: Floats
    users: Floats

    def baseline(self, name: str, users: Codes) -> Floats:
        """The scores of one first-stage model by its report name (the safeguard's rivals)."""
        model = {"ials": self.ials, "item_knn": self.knn, "most_popular": self.pop}.get(
            name, self.recent
        )
        assert model is not None
        return np.asarray(model.scores(users), dtype=np.float64)


def fit_bases(
    train: TrainSet,
    *,
    ials_setting: dict[str, float] | None,
    knn: bool,
    threads: int,
    seed: int,
) -> Bases:
    """The first stage on `train`: iALS tuned on it (or with `ials_setting`), ItemKNN (when
    `knn`), popularity all time and recent, and the feature tables."""
    ials: IALS = (
        TunedIALS(threads=threads, seed=seed)
        if ials_setting is None
        else IALS(threads=threads, seed=seed, **ials_setting)  # type: ignore[arg-type]
    )
    ials.fit(train)
    return bases_around(train, ials, knn=knn, threads=threads)


def bases_around(train: TrainSet, ials: IALS, *, knn: bool, threads: int) -> Bases:
    """`fit_bases` with an iALS model already fitted on `train` (the learning loop's)."""
    neighbours = ItemKNN(threads=threads) if knn else None
    pop, recent, v1 = MostPopular(), MostPopular(recent=True), V1Replay()
    for model in (neighbours, pop, recent, v1):
        if model is not None:
            model.fit(train)
    items = item_table(train, v1)
    return Bases(train, ials, neighbours, pop, recent, items, user_table(train, items))


def pair_features(
    s_ials: Floats,
    s_knn: Floats | None,
    best_ials: Floats,
    best_knn: Floats | None,
    items: Floats,
    users: Floats,
) -> Floats:
    """The feature rows of some pairs: their scores, their users' best scores and the rows of
    the item and user tables (all aligned); without ItemKNN the `ONLINE` columns."""
    if s_knn is None or best_knn is None:
        return np.column_stack([s_ials, items, users])
    columns = [s_ials, s_ials / best_ials, s_knn, s_knn / best_knn]
    return np.column_stack([*columns, items, users])
