"""The For You offline evaluation (issue 17): metrics on hand-computed cases, the temporal
split, the v1 replay, a synthetic log with planted tastes the learned models must find, and
`reelforge feed-eval --json`'s shape."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import cli
from recsys import v1score
from recsys.baselines import MostPopular, V1Replay
from recsys.data import (
    Interactions,
    InteractionsError,
    from_columns,
    load_csv,
    temporal_split,
    train_set,
)
from recsys.evaluate import evaluate, table
from recsys.metrics import bootstrap_ci, coverage_at_k, ndcg_at_k, recall_at_k
from recsys.models import top_k


def test_ndcg_by_hand() -> None:
    # Relevant {1, 9}; 1 at rank 2: DCG = 1/log2(3); ideal: two hits on top = 1 + 1/log2(3).
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k([5, 1, 7], {1, 9}, 10) == pytest.approx(expected)
    assert expected == pytest.approx(0.38685, abs=1e-5)
    assert ndcg_at_k([1, 9, 7], {1, 9}, 10) == pytest.approx(1.0)
    assert ndcg_at_k([2, 3], {1}, 10) == 0.0
    # Past k does not count; the ideal has min(k, |relevant|) hits.
    assert ndcg_at_k([2, 1], {1}, 1) == 0.0
    assert ndcg_at_k([1], {1, 2, 3}, 1) == pytest.approx(1.0)


def test_recall_and_coverage_by_hand() -> None:
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, 2) == pytest.approx(1 / 3)
    assert recall_at_k([1, 2, 3, 4], {2, 4, 9}, 4) == pytest.approx(2 / 3)
    rankings = np.array([[0, 1], [1, 2]])
    assert coverage_at_k(rankings, 10, 2) == pytest.approx(0.3)
    assert coverage_at_k(rankings, 10, 1) == pytest.approx(0.2)
    assert coverage_at_k(np.array([[3, -1], [-1, -1]]), 10, 2) == pytest.approx(0.1)


def test_bootstrap_interval() -> None:
    assert bootstrap_ci(np.full(50, 0.25)) == pytest.approx((0.25, 0.25))
    values = np.random.default_rng(1).normal(1.0, 1.0, 400)
    low, high = bootstrap_ci(values)
    assert low < values.mean() < high
    # ≈ mean ± 1.96·σ/√n = ± 0.098.
    assert 0.15 < high - low < 0.25


def tiny_log() -> Interactions:
    rows = [
        ("a", "i1", 1, 5), ("a", "i2", 2, 3), ("b", "i2", 3, 4), ("b", "i4", 4, 1),
        ("d", "i3", 5, 4), ("a", "i3", 8, 4), ("a", "i1", 9, 5), ("c", "i5", 9, 5),
        ("d", "i6", 10, 5),
    ]  # fmt: skip
    users, items, times, ratings = (list(col) for col in zip(*rows, strict=True))
    return from_columns(users, items, times, ratings)


def test_temporal_split_by_hand() -> None:
    log = tiny_log()
    split = temporal_split(log, 0.6)  # sorted times 1 2 3 4 5 8 9 9 10: cutoff 8
    assert split.cutoff == 8
    user, item = list(log.users), list(log.items)
    # Training: everything before 8; a strong rating (≥ 4) weighs 2.
    assert split.train.matrix.sum() == 2 + 1 + 2 + 1 + 2
    assert split.train.matrix[user.index("b"), item.index("i4")] == 1
    # a's future: i3 (new to them); i1 again is seen. c is new after the cutoff; d's i6 is
    # outside the training catalogue: neither is a test user.
    assert split.test_users.tolist() == [user.index("a")]
    assert [r.tolist() for r in split.relevant] == [[item.index("i3")]]


def test_top_k_excludes_seen_items_and_ranks_the_whole_catalogue() -> None:
    log = tiny_log()
    train = train_set(log, 8)
    model = MostPopular()
    model.fit(train)
    a = list(log.users).index("a")
    ranked = top_k(model, train, np.array([a]), 50)[0].tolist()
    names = [log.items[i] for i in ranked if i >= 0]
    # Every item a has not seen, most popular first (i3 and i4 tie at 1 user: lower code),
    # then empty places (−1) for the seen ones.
    assert names == ["i3", "i4", "i5", "i6"]
    assert ranked[4:] == [-1, -1]


def test_v1_replay_is_the_served_formula() -> None:
    hour = 3600
    log = from_columns(["u", "v", "v"], ["old", "new", "old"], [0, 9 * hour, 9 * hour], [4, 4, 2])
    train = train_set(log, 10 * hour)
    model = V1Replay(seconds_per_unit=1.0)
    model.fit(train)
    new, old = list(log.items).index("new"), list(log.items).index("old")
    # new: one completion, 1 h old; old: a completion and a skip, 10 h old.
    assert model.item_scores[new] == pytest.approx(
        v1score.quality(4.0, 1) * v1score.decay(hour * 1000)
    )
    assert model.item_scores[old] == pytest.approx(
        v1score.quality(4.0 - 1.0, 2) * v1score.decay(10 * hour * 1000)
    )


def planted(n_users: int = 300, n_items: int = 240, groups: int = 4, seed: int = 0) -> Interactions:
    """Users with a hidden taste (one of `groups` item groups) interact over time with items
    of their taste (75 %) or with globally popular items (25 %); a popularity skew makes the
    global list a fair baseline."""
    rng = np.random.default_rng(seed)
    taste = rng.integers(0, groups, n_users)
    group = np.arange(n_items) % groups
    weight = 1.0 / np.arange(1, n_items + 1) ** 0.8
    users, items, times = [], [], []
    for u in range(n_users):
        start = rng.uniform(0, 100)
        mine = np.flatnonzero(group == taste[u])
        count = int(rng.integers(15, 40))
        picks: set[int] = set()
        while len(picks) < count:
            pool = mine if rng.random() < 0.75 else np.arange(n_items)
            p = weight[pool] / weight[pool].sum()
            picks.add(int(rng.choice(pool, p=p)))
        for step, item in enumerate(sorted(picks, key=lambda _: rng.random())):
            users.append(f"u{u}")
            items.append(f"v{item}")
            times.append(start + step * rng.uniform(0.5, 3.0))
    return from_columns(users, items, times)


def test_learned_models_find_planted_tastes() -> None:
    report = evaluate(planted(), threads=1, rounds=300)
    assert report.n_test_users > 100
    base = report.models["most_popular"]
    for name in ("ials", "ials_lgbm"):
        learned = report.models[name]
        assert learned.ndcg >= 1.5 * base.ndcg, (name, learned.ndcg, base.ndcg)
        assert learned.ndcg_diff_ci[0] > 0
    assert report.models["ials_lgbm"].coverage > base.coverage
    assert "served ials_lgbm: " in table(report)


def test_feed_eval_json_shape(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    log = planted(n_users=120, n_items=80)
    path = tmp_path / "log.csv"
    lines = ["item,user,timestamp"]  # any column order
    lines += [
        f"{log.items[i]},{log.users[u]},{t}"
        for u, i, t in zip(log.user, log.item, log.time, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    assert len(load_csv(path)) == len(lines) - 1
    assert cli.main(["feed-eval", "--interactions", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"served", "models"}
    assert out["served"] in out["models"] and "most_popular" in out["models"]
    assert set(out["models"]) == {
        "most_popular", "most_popular_recent", "v1_score", "item_knn", "ials", "ials_lgbm",
    }  # fmt: skip
    for result in out["models"].values():
        assert set(result) == {"ndcg@10", "recall@50", "coverage", "ndcg@10_ci"}
        low, high = result["ndcg@10_ci"]
        assert low <= result["ndcg@10"] <= high
        assert 0 <= result["recall@50"] <= 1 and 0 < result["coverage"] <= 1


def test_feed_eval_rejects_a_bad_file(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.csv"
    path.write_text("who,what\na,b\n")
    assert cli.main(["feed-eval", "--interactions", str(path)]) == 2
    assert "user,item,timestamp" in capsys.readouterr().err
    path.write_text("user,item,timestamp\na,b,yesterday\n")
    with pytest.raises(InteractionsError, match="line 2"):
        load_csv(path)


def test_a_split_with_no_future_has_no_test_users() -> None:
    """recsys/data.py `temporal_split`: a log whose later part holds nothing a user wanted (only
    skips) has no test users; it used to fail on np.split's one empty piece (found by a
    retrain of a log where every later event was a skip)."""
    from recsys.data import Interactions

    log = Interactions(
        users=np.array(["a", "b"]),
        items=np.array(["x", "y"]),
        user=np.array([0, 0, 1, 1]),
        item=np.array([0, 1, 0, 1]),
        time=np.array([1.0, 2.0, 3.0, 4.0]),
        rating=np.full(4, np.nan),
        weight=np.array([2.0, 2.0, -1.0, -1.0], dtype=np.float32),
    )
    split = temporal_split(log, 0.5)
    assert len(split.test_users) == 0
