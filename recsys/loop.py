"""The For You learning loop's training step (issue 17, "Learning loop"): the next version of
the retrieval model (`recsys.artifact`) from the service's whole event log
(`recsys.signals.weighted_log`), as cheaply as the log allows:

- nothing new (the log's `source` fingerprint is the current version's): no new version;
- the iALS setting (factors, confidence, regularization) is tuned on the log's past
  (`recsys.mf.TunedIALS`, 12 fits) for the first version and again whenever the log has grown
  `RETUNE_GROWTH`× since the last tuning; otherwise the current version's setting is reused;
- a version that is not retuned starts from the current version's factors (viewers and videos
  it knew; new ones start small and random) and runs `WARM_ITERATIONS` sweeps instead of 15;
- given the videos' captions, every version refits the caption map ("Cold start",
  `recsys.captions`: the shipped text model's caption vectors → the new item factors, ridge),
  which places videos newer than the version (`RetrievalModel.cold_scores`);
- the LightGBM ranker (`recsys.online`, unless `ranker=False`) is trained anew around the
  version's embeddings and stored with it, for `RetrievalModel.rank_scores`.

Every version is a whole model of the whole log (retired viewers and videos stay until the
tables lose them); the previous ones stay for `artifact.rollback` (the last `keep`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

from recsys import artifact, online
from recsys import captions as caption_text
from recsys.baselines import MostPopular
from recsys.data import Interactions, train_set
from recsys.mf import IALS, TunedIALS

RETUNE_GROWTH = 2.0
WARM_ITERATIONS = 5


@dataclass(frozen=True)
class Retrained:
    """What one training step did: the version serving now, and whether it is new."""

    version: str | None
    new: bool
    tuned: bool = False
    warm: bool = False
    interactions: int = 0
    seconds: float = 0.0


def current(root: str | Path) -> artifact.RetrievalModel | None:
    try:
        return artifact.load(root)
    except artifact.ArtifactError:
        return None


def unchanged(root: str | Path, source: dict[str, Any]) -> str | None:
    """The current version's name when it was trained on this `source`, else None."""
    try:
        name = artifact.current_version(root)
        meta = artifact.load(root, name).meta
    except artifact.ArtifactError:
        return None
    return name if meta.get("source") == source else None


def retrain(
    log: Interactions,
    root: str | Path,
    *,
    source: dict[str, Any],
    threads: int = 1,
    seed: int = 0,
    keep: int = 3,
    captions: dict[str, str] | None = None,
    ranker: bool = True,
) -> Retrained:
    """Write the next version from `log` (the module doc); `source` fingerprints the tables it
    was read from (a version trained on the same `source` is not trained again); `captions`
    (video → caption) feeds the caption map."""
    started = time.monotonic()
    same = unchanged(root, source)
    if same is not None:
        return Retrained(same, new=False)
    previous = current(root)
    train = train_set(log, float(np.max(log.time)) + 1.0)
    meta = previous.meta if previous is not None else {}
    tuned_at = float(meta.get("tuned_interactions", 0))
    retune = previous is None or "ials" not in meta or len(log) >= RETUNE_GROWTH * tuned_at
    with threadpool_limits(1, "blas"):
        if retune:
            tuned = TunedIALS(threads=threads, seed=seed)
            tuned.fit(train)
            ials: IALS = tuned
            setting, tuned_at = dict(tuned.chosen), float(len(log))
        else:
            setting = dict(meta["ials"])
            ials = IALS(threads=threads, seed=seed, iterations=WARM_ITERATIONS, **setting)  # type: ignore[arg-type]
            assert previous is not None
            rng = np.random.default_rng(seed)
            ials.fit_from(
                train,
                _start(previous.user_index, previous.user_factors, log.users, rng),
                _start(previous.item_index, previous.item_factors, log.items, rng),
            )
        # The ranker (`recsys.online`) around these embeddings, retrained with every version.
        ranker_started = time.monotonic()
        trained = (
            online.maybe_train_online(train, ials, setting, threads=threads, seed=seed)
            if ranker
            else None
        )
        ranker_seconds = round(time.monotonic() - ranker_started, 3)
    popular_train = train_set(log.subset(log.positive), train.now)
    recent = MostPopular(recent=True)
    recent.fit(popular_train)
    popular = np.argsort(-recent.item_scores, kind="stable")[:1000]
    caption_meta: dict[str, Any] = {}
    caption_map, caption_started = None, time.monotonic()
    if captions:
        try:
            caption_map = caption_text.fit_from_captions(
                log.items.tolist(), ials.item_factors, captions, seed=seed
            )
        except caption_text.CaptionModelMissing as exc:
            caption_meta = {"captions": {"error": str(exc)}}
        caption_meta["caption_seconds"] = round(time.monotonic() - caption_started, 3)
    seconds = time.monotonic() - started
    name = artifact.save(
        root,
        users=log.users,
        items=log.items,
        user_factors=ials.user_factors,
        item_factors=ials.item_factors,
        popular=popular,
        meta={
            "interactions": len(log),
            "trained_until": float(np.max(log.time)),
            "ials": setting,
            "tuned_interactions": tuned_at,
            "warm_start": not retune,
            "source": source,
            "train_seconds": round(seconds, 3),
            "ranker": trained is not None,
            "ranker_seconds": ranker_seconds,
            **caption_meta,
        },
        keep=keep,
        caption_map=caption_map,
        ranker=trained,
    )
    return Retrained(name, True, retune, not retune, len(log), seconds)


def _start(
    index: dict[str, int],
    factors: npt.NDArray[np.float32],
    names: npt.NDArray[np.str_],
    rng: np.random.Generator,
) -> npt.NDArray[np.float32]:
    """Starting factors for `names`: the previous version's row where it had one, else small
    random values (as `implicit` starts)."""
    out = (rng.random((len(names), factors.shape[1]), dtype=np.float32) * 0.01).astype(np.float32)
    at = np.fromiter((index.get(str(n), -1) for n in names.tolist()), np.int64, len(names))
    known = at >= 0
    out[known] = factors[at[known]]
    return out
