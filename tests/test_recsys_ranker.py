"""The served For You ranker (issue 17, "Ranking"): its recency features by hand, the rank
fusion of the safeguard, the choice it makes on an inner window, and the ranker online
(`RetrievalModel.rank_scores` from the artifact alone, the same scores as offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys import artifact
from recsys.baselines import V1Replay
from recsys.data import Interactions, from_columns, train_set
from recsys.features import (
    ITEM_FEATURES,
    ONLINE,
    USER_FEATURES,
    bases_around,
    item_table,
    user_table,
)
from recsys.loop import retrain
from recsys.mf import IALS
from recsys.ranker import RIVALS, WEIGHTS, TwoStage, fuse, ranks
from recsys.signals import EventRows, weighted_log


def interleaved(n_users: int = 150, n_items: int = 80, groups: int = 4) -> Interactions:
    """Each user interacts with items of their group (item code % groups), their events spread
    over the whole period (so every inner window has test users)."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(n_users):
        mine = np.flatnonzero(np.arange(n_items) % groups == u % groups)
        for step, item in enumerate(rng.choice(mine, size=12, replace=False)):
            users.append(f"u{u}")
            items.append(f"v{item}")
            times.append(float(step * n_users + u))
    return from_columns(users, items, times)


class Stored(IALS):
    """iALS with a loaded version's embeddings."""

    def __init__(self, model: artifact.RetrievalModel) -> None:
        super().__init__()
        self.stored = model

    @property
    def user_factors(self) -> np.ndarray:
        return self.stored.user_factors

    @property
    def item_factors(self) -> np.ndarray:
        return self.stored.item_factors


def test_recency_features_by_hand() -> None:
    # 20 interactions at times 0..19: a is rated by u0..u9 early, b by u0..u9 late.
    users = [f"u{k}" for k in range(10)] * 2
    items = ["a"] * 10 + ["b"] * 10
    log = from_columns(users, items, [float(t) for t in range(20)])
    train = train_set(log, 20.0)  # everything
    v1 = V1Replay()
    v1.fit(train)
    table = item_table(train, v1)
    col = {name: table[:, at] for at, name in enumerate(ITEM_FEATURES)}
    a, b = list(log.items).index("a"), list(log.items).index("b")
    assert col["pop"][a] == col["pop"][b] == pytest.approx(np.log1p(10))
    # The last 25 % (after the 75 % quantile, 14.25): 5 of b, none of a; the last 10 %
    # (after 17.1): 2 of b.
    assert col["pop_25"][b] == pytest.approx(np.log1p(5)) and col["pop_25"][a] == 0
    assert col["pop_10"][b] == pytest.approx(np.log1p(2))
    assert col["trend"][b] > 0 > col["trend"][a]
    # Time since the last interaction, in units of the last quarter's span (20 − 14.25).
    assert col["item_since_last"][a] == pytest.approx((20 - 9) / 5.75)
    assert col["item_since_last"][b] == pytest.approx((20 - 19) / 5.75)
    assert col["age"][a] == pytest.approx(20 / 5.75)
    people = user_table(train, table)
    ucol = {name: people[:, at] for at, name in enumerate(USER_FEATURES)}
    u0, u9 = list(log.users).index("u0"), list(log.users).index("u9")
    assert ucol["user_since_last"][u0] == pytest.approx((20 - 10) / 5.75)
    assert ucol["user_since_last"][u9] == pytest.approx((20 - 19) / 5.75)
    assert ucol["user_recent"][u9] == pytest.approx(np.log1p(1)) and ucol["user_recent"][u0] == 0
    assert ucol["user_history"][u0] == pytest.approx(np.log1p(2))


def test_fusion_by_hand() -> None:
    ranker = np.array([[3.0, 2.0, 1.0, 0.0]])
    rival = np.array([[0.0, 1.0, 2.0, 3.0]])
    assert ranks(ranker).tolist() == [[0, 1, 2, 3]]
    assert fuse(ranker, rival, 1.0) is ranker and fuse(ranker, rival, 0.0) is rival
    # Weighted towards the ranker: its first beats the rival's first; equal weights tie them.
    leaning = fuse(ranker, rival, 0.75)[0]
    assert leaning[0] > leaning[1] > leaning[3]  # 0.75/10 + 0.25/13 > 0.75/11 + 0.25/12 > …
    even = fuse(ranker, rival, 0.5)[0]
    assert even[0] == pytest.approx(even[3]) and even[1] == pytest.approx(even[2])


def test_safeguard_chooses_on_the_latest_inner_window() -> None:
    log = interleaved()
    train = train_set(log, float(log.time.max()) + 1.0)
    model = TwoStage(seed=0)
    model.fit(train)
    assert model.rival in RIVALS and model.weight in WEIGHTS
    inner = model.inner_ndcg
    assert set(RIVALS) | {"ranker"} <= set(inner)
    # The rival is the best first-stage model there, and the chosen fusion the best of all.
    assert inner[model.rival] == max(inner[name] for name in RIVALS)
    fused = [inner[f"fused@{w}"] for w in WEIGHTS]
    assert inner[f"fused@{model.weight}"] == max(fused) >= inner[model.rival]
    # On planted groups the personal models beat popularity by far on that window.
    assert inner["ials"] > 2 * inner["most_popular"]
    scores = model.scores(np.arange(4))
    assert scores.shape == (4, train.n_items)


def test_rank_scores_from_the_artifact_match_the_offline_ranker(tmp_path: Path) -> None:
    log = interleaved()
    artifact.train_artifact(log, tmp_path)
    model = artifact.load(tmp_path)
    assert model.meta["ranker"] is True and model.ranker is not None
    assert (tmp_path / model.version / "ranker.txt").is_file()
    assert model.user_features is not None and model.item_features is not None
    assert model.item_features.shape[1] + model.user_features.shape[1] + 1 == len(ONLINE)
    codes = model.codes(["v0", "v1", "v2", "nope", "v3", "v4"])
    scores = model.rank_scores("u0", codes)
    assert scores is not None and scores.dtype == np.float64 and len(scores) == 6
    assert np.isnan(scores[3]) and np.isfinite(np.delete(scores, 3)).all()
    assert model.rank_scores("stranger", codes) is None
    # The same features as offline: the booster on `TwoStage`'s candidate rows of u0 (its
    # first stage around the artifact's embeddings) scores what `rank_scores` scores.
    train = train_set(log, float(log.time.max()) + 1.0)
    bases = bases_around(train, Stored(model), knn=False, threads=1)
    np.testing.assert_allclose(bases.items, model.item_features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bases.users, model.user_features, rtol=1e-5, atol=1e-5)
    u0 = model.user_index["u0"]
    _, item, x = TwoStage(knn=False).candidates(bases, np.array([u0]))
    assert len(item) > 10
    offline = model.ranker.predict(x)
    online = model.rank_scores("u0", item)
    assert online is not None
    np.testing.assert_allclose(online, offline, rtol=1e-4, atol=1e-5)
    # A viewer's own group first: the ranker puts each viewer's 8 unseen items of their group
    # above the 60 others (AUC; chance 0.5). A top-5 count here was too brittle: the same
    # code and seed gave 4 of 5 on one session's machine and 3 of 5 on the next one's.
    every = np.arange(len(model.items))
    aucs = []
    for u in range(8):
        scores_u = model.rank_scores(f"u{u}", every)
        assert scores_u is not None
        seen = set(log.item[log.user == list(log.users).index(f"u{u}")].tolist())
        unseen = np.array([c for c in every.tolist() if c not in seen])
        own = np.array([int(str(model.items[c])[1:]) % 4 == u % 4 for c in unseen])
        assert own.sum() == 8
        mine, others = scores_u[unseen[own]], scores_u[unseen[~own]]
        aucs.append(float((mine[:, None] > others[None, :]).mean()))
    # Measured: 0.91-1.0 per viewer.
    assert np.mean(aucs) >= 0.85 and min(aucs) >= 0.75, aucs


def test_a_version_without_a_ranker_scores_by_ials(tmp_path: Path) -> None:
    rows = EventRows()
    log = interleaved()
    for u, i, t in zip(log.user.tolist(), log.item.tolist(), log.time.tolist(), strict=True):
        rows.add(str(log.users[u]), str(log.items[i]), "completed", 0, int(t))
    done = retrain(weighted_log(rows), tmp_path, source={"n": 1}, ranker=False)
    model = artifact.load(tmp_path, done.version)
    assert model.ranker is None and model.meta["ranker"] is False
    codes = model.codes(["v0", "v5", "nope"])
    by_ials = model.item_scores("u0", codes)
    assert by_ials is not None
    scores = model.rank_scores("u0", codes)
    assert scores is not None
    np.testing.assert_allclose(scores, by_ials.astype(np.float64))
    done = retrain(weighted_log(rows), tmp_path, source={"n": 2})
    assert artifact.load(tmp_path).meta["ranker"] is True
