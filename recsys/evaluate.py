"""The offline evaluation of the For You models (issue 17, "Offline evaluation on real data"):
one temporal split, every model fitted on its past and asked for each test user's top 50 of the
whole catalogue (seen items excluded), scored by NDCG@10, Recall@50 and coverage@10, with 95 %
bootstrap intervals over the test users (`recsys.metrics`). `reelforge feed-eval` prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from recsys.baselines import ItemKNN, MostPopular, V1Replay
from recsys.data import Interactions, temporal_split
from recsys.metrics import FloatArray, bootstrap_ci, coverage_at_k, per_user
from recsys.mf import TunedIALS
from recsys.models import Recommender, top_k
from recsys.ranker import TwoStage

SERVED = TwoStage.name
BASELINE = "most_popular"
NDCG_K, RECALL_K = 10, 50


@dataclass(frozen=True)
class ModelResult:
    ndcg: float
    recall: float
    coverage: float
    ndcg_ci: tuple[float, float]
    # The paired interval of (this model − most_popular) NDCG@10 over the same users.
    ndcg_diff_ci: tuple[float, float]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        return {
            "ndcg@10": round(self.ndcg, 4),
            "recall@50": round(self.recall, 4),
            "coverage": round(self.coverage, 4),
            "ndcg@10_ci": [round(self.ndcg_ci[0], 4), round(self.ndcg_ci[1], 4)],
        }


@dataclass
class Report:
    served: str
    n_users: int
    n_items: int
    n_interactions: int
    n_test_users: int
    n_test_items: int
    models: dict[str, ModelResult] = field(default_factory=dict)
    # Each model's NDCG@10 per test user (same order), for paired intervals.
    ndcg_by_user: dict[str, FloatArray] = field(default_factory=dict)
    rounds: int = 1000
    seed: int = 0
    # What the served model chose in its fit (its `describe()`), for the text table.
    served_choice: str = ""

    def best_baseline(self) -> str:
        return max(
            (name for name in self.models if name != self.served),
            key=lambda name: self.models[name].ndcg,
        )

    def served_vs_best_ci(self) -> tuple[float, float]:
        """The paired interval of (served − the best baseline) NDCG@10."""
        diff = self.ndcg_by_user[self.served] - self.ndcg_by_user[self.best_baseline()]
        return bootstrap_ci(diff, rounds=self.rounds, seed=self.seed)

    def as_json(self) -> dict[str, Any]:
        """`{"served": NAME, "models": {NAME: {"ndcg@10", "recall@50", "coverage",
        "ndcg@10_ci"}}}`, exactly (the issue's shape)."""
        return {
            "served": self.served,
            "models": {name: result.as_json() for name, result in self.models.items()},
        }


def seconds_per_unit(log: Interactions) -> float:
    """Timestamps in milliseconds (over 1e11, i.e. after 1973 in ms) or else seconds."""
    return 0.001 if len(log) and float(np.median(log.time)) > 1e11 else 1.0


def default_models(log: Interactions, threads: int, seed: int) -> list[Recommender]:
    """The baselines, then the served model (the order of the report)."""
    return [
        MostPopular(),
        MostPopular(recent=True),
        V1Replay(seconds_per_unit(log)),
        ItemKNN(threads=threads),
        TunedIALS(threads=threads, seed=seed),
        TwoStage(threads=threads, seed=seed),
    ]


def evaluate(
    log: Interactions,
    *,
    train_fraction: float = 0.8,
    threads: int = 1,
    seed: int = 0,
    rounds: int = 1000,
    models: Callable[[Interactions, int, int], list[Recommender]] = default_models,
) -> Report:
    """Split `log` in time, fit and score every model; OpenBLAS is held to one thread (the
    solvers run `threads` threads of their own)."""
    split = temporal_split(log, train_fraction)
    report = Report(
        served=SERVED,
        n_users=len(log.users),
        n_items=split.train.n_items,
        n_interactions=len(log),
        n_test_users=len(split.test_users),
        n_test_items=sum(len(r) for r in split.relevant),
        rounds=rounds,
        seed=seed,
    )
    if not len(split.test_users):
        raise ValueError("no user has interactions on both sides of the temporal split")
    baseline: FloatArray | None = None
    with threadpool_limits(1, "blas"):
        for model in models(log, threads, seed):
            started = time.perf_counter()
            model.fit(split.train)
            if model.name == SERVED and hasattr(model, "describe"):
                report.served_choice = model.describe()
            ranked = top_k(model, split.train, split.test_users, RECALL_K)
            ndcg = per_user(ranked, split.relevant, NDCG_K, ndcg=True)
            recall = per_user(ranked, split.relevant, RECALL_K, ndcg=False)
            if model.name == BASELINE:
                baseline = ndcg
            diff = ndcg - baseline if baseline is not None else np.zeros_like(ndcg)
            report.ndcg_by_user[model.name] = ndcg
            report.models[model.name] = ModelResult(
                ndcg=float(ndcg.mean()),
                recall=float(recall.mean()),
                coverage=coverage_at_k(ranked, split.train.n_items, NDCG_K),
                ndcg_ci=bootstrap_ci(ndcg, rounds=rounds, seed=seed),
                ndcg_diff_ci=bootstrap_ci(diff, rounds=rounds, seed=seed),
                seconds=time.perf_counter() - started,
            )
    return report


def table(report: Report) -> str:
    """The report as text: one line per model, then the served model against the target."""
    lines = [
        f"{report.n_interactions} interactions, {report.n_users} users, {report.n_items} items;"
        f" {report.n_test_users} test users, {report.n_test_items} future items",
        f"{'model':<22}{'NDCG@10':>9}  {'95% CI':<17}{'Recall@50':>10}{'coverage':>10}"
        f"  {'Δ vs most_popular (95% CI)':<28}{'s':>6}",
    ]
    for name, r in report.models.items():
        mark = " *" if name == report.served else ""
        lines.append(
            f"{name + mark:<22}{r.ndcg:>9.4f}  [{r.ndcg_ci[0]:.4f}, {r.ndcg_ci[1]:.4f}] "
            f"{r.recall:>10.4f}{r.coverage:>10.4f}  [{r.ndcg_diff_ci[0]:+.4f}, "
            f"{r.ndcg_diff_ci[1]:+.4f}]{'':<10}{r.seconds:>6.1f}"
        )
    served, base = report.models.get(report.served), report.models.get(BASELINE)
    if served and base and base.ndcg > 0 and len(report.models) > 1:
        best = report.best_baseline()
        low, high = report.served_vs_best_ci()
        lines.append(
            f"served {report.served}: {served.ndcg / base.ndcg:.2f}× most_popular's NDCG@10 "
            f"(target ≥ 1.5×, Δ interval above 0: {served.ndcg_diff_ci[0] > 0}); "
            f"− best baseline {best} ({report.models[best].ndcg:.4f}): "
            f"{served.ndcg - report.models[best].ndcg:+.4f} [{low:+.4f}, {high:+.4f}]"
        )
    if report.served_choice:
        lines.append(f"served {report.served} chose: {report.served_choice}")
    return "\n".join(lines)
