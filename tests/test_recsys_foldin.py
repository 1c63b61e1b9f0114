"""iALS fold-in (issue 17, "Cold start"; recsys/foldin.py, `RetrievalModel.fold_in`): the
factor of a viewer the model was not trained on, from their (item, weight) row, with no
retrain. It is `implicit`'s own user solve (negative weights included), it gives back a known
viewer's stored factor when fed their training row, and a few on-topic items point it at the
topic, on a seeded log with planted tastes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import numpy.typing as npt
from implicit.cpu.als import AlternatingLeastSquares
from scipy import sparse

from recsys import artifact
from recsys.data import Interactions, from_columns, train_set

TOPICS = 4
ITEMS = 400
TOP = 50


def planted(n_users: int = 240, seed: int = 0) -> Interactions:
    """Viewers with a hidden topic (item code % `TOPICS`): 20 to 40 items each, 80 % from their
    topic; weighted as the service weighs its events (`recsys.signals`: a completion 4, a
    watch 1, a like on top 5.5, and a quick skip −2 on a tenth of the off-topic ones)."""
    rng = np.random.default_rng(seed)
    topic = np.arange(ITEMS) % TOPICS
    users, items, weights = [], [], []
    for u in range(n_users):
        mine = np.flatnonzero(topic == u % TOPICS)
        picks = set(rng.choice(mine, size=int(rng.integers(16, 32)), replace=False).tolist())
        picks |= set(rng.choice(ITEMS, size=int(rng.integers(4, 8)), replace=False).tolist())
        for item in sorted(picks):
            users.append(f"u{u}")
            items.append(f"v{item}")
            if topic[item] == u % TOPICS:
                weights.append(float(rng.choice([4.0, 1.0, 5.5])))
            else:
                weights.append(-2.0 if rng.random() < 0.5 else 1.0)
    log = from_columns(users, items, [float(n) for n in range(len(users))])
    return dataclasses.replace(log, weight=np.asarray(weights, dtype=np.float32))


def topic_of(item: str) -> int:
    return int(item[1:]) % TOPICS


def top(model: artifact.RetrievalModel, factor: npt.NDArray[np.float32], n: int) -> set[int]:
    return set(model.top_codes_for(factor, n).tolist())


def test_folding_in_a_training_row_gives_back_the_stored_factor(tmp_path: Path) -> None:
    log = planted()
    artifact.train_artifact(log, tmp_path)
    model = artifact.load(tmp_path)
    train = train_set(log, float(np.max(log.time)) + 1.0)
    assert (train.matrix.data < 0).any()  # quick skips among the rows
    jaccards, cosines = [], []
    for user in range(0, len(log.users), 4):
        row = train.matrix[user]
        folded = model.fold_in(row.indices.astype(np.int64), row.data)
        assert folded is not None
        stored = model.vector(str(log.users[user]))
        assert stored is not None
        mine, theirs = top(model, folded, TOP), top(model, stored, TOP)
        jaccards.append(len(mine & theirs) / len(mine | theirs))
        cosines.append(float(folded @ stored / (np.linalg.norm(folded) * np.linalg.norm(stored))))
    print(
        f"fold-in of training rows: Jaccard@{TOP} mean {np.mean(jaccards):.3f} "
        f"min {np.min(jaccards):.3f}; cosine mean {np.mean(cosines):.4f} min {np.min(cosines):.4f}"
    )
    assert np.mean(jaccards) >= 0.95 and np.min(jaccards) >= 0.85, jaccards
    assert np.mean(cosines) >= 0.995, cosines


def test_fold_in_is_implicits_user_solve_negative_weights_included(tmp_path: Path) -> None:
    artifact.train_artifact(planted(), tmp_path)
    model = artifact.load(tmp_path)
    setting = model.meta["ials"]
    ials = AlternatingLeastSquares(
        factors=model.item_factors.shape[1],
        regularization=setting["regularization"],
        alpha=setting["alpha"],
    )
    ials.item_factors = np.ascontiguousarray(model.item_factors)
    rng = np.random.default_rng(3)
    for _ in range(5):
        codes = rng.choice(len(model.items), size=12, replace=False).astype(np.int64)
        weights = rng.choice([4.0, 1.0, 5.5, -2.0, -4.0], size=12).astype(np.float32)
        row = sparse.csr_matrix((weights, (np.zeros(12, int), codes)), shape=(1, len(model.items)))
        expected = np.asarray(ials.recalculate_user(0, row))
        got = model.fold_in(codes, weights)
        assert got is not None
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    # Repeats of an item add up, as in the training matrix.
    twice = model.fold_in(np.array([5, 5, 9]), np.array([1.0, 3.0, 4.0]))
    once = model.fold_in(np.array([5, 9]), np.array([4.0, 4.0]))
    assert twice is not None and once is not None
    np.testing.assert_allclose(twice, once, rtol=1e-5)


def test_a_few_on_topic_items_point_a_new_viewer_at_the_topic(tmp_path: Path) -> None:
    artifact.train_artifact(planted(seed=1), tmp_path)
    model = artifact.load(tmp_path)
    rng = np.random.default_rng(5)
    for topic in range(TOPICS):
        on_topic = [f"v{i}" for i in range(topic, ITEMS, TOPICS)]
        off_topic = [f"v{i}" for i in range(ITEMS) if i % TOPICS != topic]
        # Three completions, and two quick skips elsewhere.
        liked = rng.choice(on_topic, size=3, replace=False).tolist()
        skipped = rng.choice(off_topic, size=2, replace=False).tolist()
        codes = model.codes([*liked, *skipped])
        folded = model.fold_in(codes, np.array([4.0, 4.0, 4.0, -2.0, -2.0]))
        assert folded is not None
        best = [str(model.items[c]) for c in model.top_codes_for(folded, 20).tolist()]
        share = sum(topic_of(item) == topic for item in best) / len(best)
        print(f"topic {topic}: {share:.2f} of the top 20 on topic")
        assert share >= 0.9, (topic, best)
        # Its scores are `item_scores`' for that factor (what a known viewer's would be).
        assert np.allclose(model.scores_for(folded, codes), model.item_factors[codes] @ folded)


def test_a_version_without_its_ials_setting_folds_in_nothing(tmp_path: Path) -> None:
    artifact.save(
        tmp_path,
        users=np.array(["a"]),
        items=np.array(["x", "y"]),
        user_factors=np.ones((1, 2)),
        item_factors=np.eye(2),
        popular=np.arange(2),
    )
    model = artifact.load(tmp_path)
    assert model.fold_in(np.array([0, 1]), np.array([4.0, 4.0])) is None
