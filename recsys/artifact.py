"""The For You retrieval model as a versioned artifact (issue 17, "Learning loop"): a training
function writes a new version, the serving side loads the current one and asks it for a
viewer's candidates.

Layout under a root folder::

    v000001/model.npz     users, items (ids as strings), user and item factors (iALS), the
                          items by recent popularity (for viewers the model does not know),
                          and, when the loop fitted one, the caption map (`recsys.captions`:
                          `caption_map`, `caption_prior`) that places videos it does not know
    v000001/meta.json     version, created_at, interactions, trained_until, the iALS setting
    v000001/ranker.txt    optional: the LightGBM ranker (`recsys.online`), whose item and user
                          feature tables are then in model.npz too
    CURRENT               the name of the version to serve

A version is written into a temporary folder and renamed into place, then `CURRENT` is replaced
(`os.replace`): a reader sees the old version or the new one, never half of one. The last
`keep` versions stay for `rollback`. Arrays are loaded with `allow_pickle=False`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from recsys import captions as caption_text
from recsys import foldin, online
from recsys.baselines import MostPopular
from recsys.data import Interactions, train_set
from recsys.mf import TunedIALS

CURRENT = "CURRENT"
VERSION = re.compile(r"^v(\d{6})$")


class ArtifactError(RuntimeError):
    """No usable version under the root (the caller serves its fallback)."""


def versions(root: Path) -> list[str]:
    """The complete versions under `root`, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and VERSION.match(p.name))


def train_artifact(
    log: Interactions, root: str | Path, *, threads: int = 1, seed: int = 0, keep: int = 3
) -> str:
    """Fit the retrieval model (and the ranker, `recsys.online`, when the log allows one) on
    all of `log`, write it as the next version, make it current and drop versions older than
    the last `keep`; returns the version's name."""
    train = train_set(log, float(np.max(log.time)) + 1.0)
    with threadpool_limits(1, "blas"):
        ials = TunedIALS(threads=threads, seed=seed)
        ials.fit(train)
        ranker = online.maybe_train_online(train, ials, ials.chosen, threads=threads, seed=seed)
    recent = MostPopular(recent=True)
    recent.fit(train)
    popular = np.argsort(-recent.item_scores, kind="stable")[:1000]
    meta = {"interactions": len(log), "trained_until": float(np.max(log.time))}
    return save(
        root,
        users=log.users,
        items=log.items,
        user_factors=ials.user_factors,
        item_factors=ials.item_factors,
        popular=popular,
        meta={**meta, "ials": ials.chosen, "ranker": ranker is not None},
        keep=keep,
        ranker=ranker,
    )


def save(
    root: str | Path,
    *,
    users: npt.NDArray[np.str_],
    items: npt.NDArray[np.str_],
    user_factors: npt.NDArray[np.floating[Any]],
    item_factors: npt.NDArray[np.floating[Any]],
    popular: npt.NDArray[np.integer[Any]],
    meta: dict[str, Any] | None = None,
    keep: int = 3,
    ranker: online.OnlineRanker | None = None,
    caption_map: caption_text.CaptionMap | None = None,
) -> str:
    """Write a model as the next version under `root` (with `ranker`, the ranker and its
    feature tables; with `caption_map`, the caption map), make it current, keep the last `keep`
    versions; returns the version's name."""
    extra: dict[str, npt.NDArray[np.float32]] = {}
    if caption_map is not None:
        extra = {"caption_map": caption_map.weights, "caption_prior": caption_map.prior}
        meta = {**(meta or {}), "captions": caption_map.meta()}
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = versions(root)
    number = int(existing[-1][1:]) + 1 if existing else 1
    name = f"v{number:06d}"
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        if ranker is not None:
            (staging / "ranker.txt").write_text(ranker.model_text())
            extra |= {"item_features": ranker.item_features, "user_features": ranker.user_features}
        arrays: dict[str, Any] = {
            "users": np.asarray(users).astype(str),
            "items": np.asarray(items).astype(str),
            "user_factors": np.asarray(user_factors, dtype=np.float32),
            "item_factors": np.asarray(item_factors, dtype=np.float32),
            "popular": np.asarray(popular, dtype=np.int64),
            **extra,
        }
        np.savez(staging / "model.npz", **arrays)
        full = {**(meta or {}), "version": name, "created_at": time.time()}
        (staging / "meta.json").write_text(json.dumps(full))
        os.rename(staging, root / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _point(root, name)
    for old in versions(root)[:-keep]:
        shutil.rmtree(root / old, ignore_errors=True)
    return name


def _point(root: Path, name: str) -> None:
    handle, tmp = tempfile.mkstemp(prefix=".current-", dir=root)
    with os.fdopen(handle, "w") as out:
        out.write(name + "\n")
    os.replace(tmp, root / CURRENT)


def rollback(root: str | Path) -> str:
    """Serve the version before the current one; returns its name."""
    root = Path(root)
    current = current_version(root)
    older = [v for v in versions(root) if v < current]
    if not older:
        raise ArtifactError(f"{root}: no version before {current}")
    _point(root, older[-1])
    return older[-1]


def current_version(root: str | Path) -> str:
    root = Path(root)
    try:
        name = (root / CURRENT).read_text().strip()
    except FileNotFoundError:
        raise ArtifactError(f"{root}: no current version") from None
    if not VERSION.match(name) or not (root / name).is_dir():
        raise ArtifactError(f"{root}: CURRENT names {name!r}, which is not a version here")
    return name


@dataclass(frozen=True)
class RetrievalModel:
    """One loaded version: a viewer's candidates by the dot product of the embeddings."""

    version: str
    meta: dict[str, Any]
    items: npt.NDArray[np.str_]
    user_factors: npt.NDArray[np.float32]
    item_factors: npt.NDArray[np.float32]
    popular: npt.NDArray[np.int64]
    user_index: dict[str, int]
    item_index: dict[str, int]
    caption_map: npt.NDArray[np.float32] | None = None
    caption_prior: npt.NDArray[np.float32] | None = None
    # The ranker and its tables (`recsys.online`), when the version has one.
    ranker: lgb.Booster | None = None
    item_features: npt.NDArray[np.float32] | None = None
    user_features: npt.NDArray[np.float32] | None = None
    # YᵀY for `fold_in`, computed on first use (from a worker thread: under the lock).
    _gram: list[npt.NDArray[np.float64]] = field(default_factory=list, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def knows(self, viewer: str) -> bool:
        return viewer in self.user_index

    def vector(self, viewer: str) -> npt.NDArray[np.float32] | None:
        """The viewer's factor (None: a viewer the model does not know)."""
        at = self.user_index.get(viewer)
        return None if at is None else self.user_factors[at]

    def fold_in(
        self, codes: npt.NDArray[np.int64], weights: npt.NDArray[np.floating]
    ) -> npt.NDArray[np.float32] | None:
        """The factor of a viewer whose row is (`codes`, `weights`: the training weights of
        `recsys.signals`) by the iALS user solve with this version's alpha and regularization
        (`recsys.foldin`); None when the version does not record its iALS setting."""
        setting = self.meta.get("ials")
        if not isinstance(setting, dict) or "alpha" not in setting:
            return None
        if not self._gram:
            with self._lock:
                if not self._gram:
                    self._gram.append(foldin.gram(self.item_factors))
        return foldin.user_factor(
            self.item_factors,
            self._gram[0],
            codes,
            weights,
            alpha=float(setting["alpha"]),
            regularization=float(setting.get("regularization", 0.0)),
        )

    def codes(self, items: Sequence[str]) -> npt.NDArray[np.int64]:
        """Each item's row in the model (−1: an item it does not know)."""
        return np.fromiter((self.item_index.get(i, -1) for i in items), np.int64, len(items))

    def item_scores(
        self, viewer: str, codes: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32] | None:
        """The viewer's score of each item of `codes` (`codes()`; NaN where −1); None when
        the model does not know the viewer."""
        factor = self.vector(viewer)
        return None if factor is None else self.scores_for(factor, codes)

    def scores_for(
        self, factor: npt.NDArray[np.float32], codes: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """`item_scores` for a factor (a folded-in viewer's, `fold_in`)."""
        out = np.full(len(codes), np.nan, dtype=np.float32)
        known = codes >= 0
        out[known] = self.item_factors[codes[known]] @ factor
        return out

    def caption_factors(self, captions: Sequence[str]) -> npt.NDArray[np.float32]:
        """Item factors predicted from each caption by the version's caption map
        (`recsys.captions`: the shipped text model, then the ridge map fitted in the loop), one
        row per caption; raises `ArtifactError` when the version has no caption map and
        `captions.CaptionModelMissing` when the text model is not installed."""
        if self.caption_map is None or self.caption_prior is None:
            raise ArtifactError(f"{self.version}: no caption map in this version")
        text = caption_text.encoder().encode(captions)
        return caption_text.project(self.caption_map, self.caption_prior, text)

    def cold_scores(self, viewer: str, captions: Sequence[str]) -> npt.NDArray[np.float32] | None:
        """The viewer's score of videos the model does not know, from their captions alone
        (issue 17, "Cold start"), on `item_scores`' scale (the ridge estimate of the score a
        known video with that caption would get, shrunk toward the average video's); None when
        the model does not know the viewer or the version has no caption map."""
        factor = self.vector(viewer)
        if factor is None or self.caption_map is None:
            return None
        return self.cold_scores_for(factor, captions)

    def cold_scores_for(
        self, factor: npt.NDArray[np.float32], captions: Sequence[str]
    ) -> npt.NDArray[np.float32]:
        """`cold_scores` for a factor (a folded-in viewer's); raises as `caption_factors`."""
        return np.asarray(self.caption_factors(captions) @ factor, np.float32)

    def item_scores_with_captions(
        self, viewer: str, codes: npt.NDArray[np.int64], captions: Sequence[str]
    ) -> npt.NDArray[np.float32] | None:
        """`item_scores`, with the videos it does not know (code −1) scored from their caption
        (`captions`, aligned with `codes`; only those videos' are read) by `cold_scores`; they
        stay NaN when the version has no caption map. None when the model does not know the
        viewer."""
        scores = self.item_scores(viewer, codes)
        if scores is None or self.caption_map is None:
            return scores
        unknown = np.flatnonzero(codes < 0)
        if len(unknown):
            cold = self.cold_scores(viewer, [captions[n] for n in unknown.tolist()])
            if cold is not None:
                scores[unknown] = cold
        return scores

    def rank_scores(
        self, viewer: str, codes: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float64] | None:
        """The ranker's score of each candidate of `codes` for the viewer (higher: better; NaN
        where −1), from the artifact alone; a version without a ranker gives the iALS scores.
        None when the model does not know the viewer."""
        at = self.user_index.get(viewer)
        if at is None:
            return None
        if self.ranker is None or self.item_features is None or self.user_features is None:
            scores = self.item_scores(viewer, codes)
            return None if scores is None else scores.astype(np.float64)
        return online.rank_scores(
            self.ranker,
            self.item_features,
            self.user_features,
            self.user_factors[at],
            self.item_factors,
            at,
            codes,
        )

    def candidates(self, viewer: str, n: int, exclude: Collection[str] = ()) -> list[str]:
        """The viewer's `n` best items not in `exclude`, best first; a viewer the model does
        not know gets the recently popular ones."""
        at = self.user_index.get(viewer)
        if at is None:
            order = self.popular
        else:
            scores = self.item_factors @ self.user_factors[at]
            take = min(len(scores), n + len(exclude))
            top = np.argpartition(-scores, take - 1)[:take] if take else np.zeros(0, np.int64)
            order = top[np.lexsort((top, -scores[top]))]
        out: list[str] = []
        for code in order.tolist():
            item = str(self.items[code])
            if item not in exclude:
                out.append(item)
                if len(out) == n:
                    break
        return out

    def top_codes(self, viewer: str, n: int) -> npt.NDArray[np.int64] | None:
        """The rows of the viewer's `n` best items over the whole catalogue, best first (ties:
        the lower row), by exact scoring (a matrix-vector product); None when the model does
        not know the viewer."""
        factor = self.vector(viewer)
        return None if factor is None else self.top_codes_for(factor, n)

    def top_codes_for(self, factor: npt.NDArray[np.float32], n: int) -> npt.NDArray[np.int64]:
        """`top_codes` for a factor (a folded-in viewer's)."""
        scores = self.item_factors @ factor
        take = min(len(scores), max(n, 0))
        if take == 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-scores, take - 1)[:take]
        return top[np.lexsort((top, -scores[top]))].astype(np.int64)


def load(root: str | Path, version: str | None = None) -> RetrievalModel:
    """The current version under `root` (or `version`); raises `ArtifactError`."""
    root = Path(root)
    name = version or current_version(root)
    try:
        meta = json.loads((root / name / "meta.json").read_text())
        with np.load(root / name / "model.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        text = root / name / "ranker.txt"
        ranker = lgb.Booster(model_str=text.read_text()) if text.is_file() else None
    except (OSError, ValueError, KeyError, lgb.basic.LightGBMError) as exc:
        raise ArtifactError(f"{root / name}: unreadable ({exc})") from None
    users = arrays["users"]
    return RetrievalModel(
        version=name,
        meta=meta,
        items=arrays["items"],
        user_factors=arrays["user_factors"],
        item_factors=arrays["item_factors"],
        popular=arrays["popular"],
        user_index={str(u): i for i, u in enumerate(users.tolist())},
        item_index={str(v): i for i, v in enumerate(arrays["items"].tolist())},
        caption_map=arrays.get("caption_map"),
        caption_prior=arrays.get("caption_prior"),
        ranker=ranker,
        item_features=arrays.get("item_features") if ranker is not None else None,
        user_features=arrays.get("user_features") if ranker is not None else None,
    )
