"""Captions as item factors (issue 17, "Cold start": "a video's caption can place it before
anyone watched it (a small text model shipped inside a PyPI wheel, loaded from site-packages,
never from a hub at run time)").

The text model is WordLlama's `l2_supercat` 256-dimensional static token embeddings (MIT, the
`wordllama` wheel carries `wordllama/weights/l2_supercat_256.safetensors`, 16 MB, and its
tokenizer's JSON): a caption's vector is the mean of its tokens' embeddings, scaled to unit
length (WordLlama's own pooling). The files are opened where the installed distribution put
them (`importlib.metadata`); nothing here imports `wordllama` itself (its loader looks for the
tokenizer in a folder the wheel does not have, then asks the hub for it) or can reach a
network: `tokenizers` reads a local JSON file, `safetensors` a local array file.

The map from a caption's vector to the iALS item-factor space is a ridge regression fitted in
the training loop on the videos the model knows (`fit_map`): predicted factors are the
regression's estimate of the factors a video with that caption would have, so a viewer's
score for them (`project` then a dot product) is on `item_scores`' scale, shrunk toward the
average video's (the regression's shrinkage); a caption with no tokens gets the average
video's factors.
"""

from __future__ import annotations

import functools
import importlib.metadata
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

DISTRIBUTION = "wordllama"
WEIGHTS = "wordllama/weights/l2_supercat_256.safetensors"
TOKENIZER = "wordllama/tokenizers/l2_supercat_tokenizer_config.json"
MODEL = "wordllama l2_supercat 256"
TENSOR = "embedding.weight"
RIDGE_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
HOLDOUT = 0.2
MIN_ITEMS = 20
BATCH = 4_096
CACHE_ENTRIES = 20_000  # 20 MB of vectors at most

Floats = npt.NDArray[np.float32]


class CaptionModelMissing(RuntimeError):
    """The text model's files are not installed (the `wordllama` distribution)."""


def model_files() -> tuple[Path, Path]:
    """The weights and tokenizer files inside the installed wheel (site-packages)."""
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise CaptionModelMissing(f"the {DISTRIBUTION!r} package is not installed") from None
    files = Path(str(dist.locate_file(WEIGHTS))), Path(str(dist.locate_file(TOKENIZER)))
    for path in files:
        if not path.is_file():
            raise CaptionModelMissing(f"{path}: not in the installed {DISTRIBUTION!r} wheel")
    return files


class CaptionEncoder:
    """Captions → unit vectors (zero for a caption without tokens); a served caption's vector
    is remembered (up to `CACHE_ENTRIES`, then the memory starts again), so scoring the same
    snapshot's new videos again costs a dictionary look-up each."""

    def __init__(self, weights: Path, tokenizer: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.embedding: Floats = np.ascontiguousarray(load_file(str(weights))[TENSOR], np.float32)
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.dim = int(self.embedding.shape[1])
        self._cache: dict[str, Floats] = {}
        self._lock = threading.Lock()

    def encode(self, captions: Sequence[str], *, remember: bool = True) -> Floats:
        """One row per caption; `remember=False` (training: every caption once) leaves the
        memory as it is."""
        out = np.zeros((len(captions), self.dim), dtype=np.float32)
        cache, missing = self._cache, []
        for n, caption in enumerate(captions):
            vector = cache.get(caption)
            if vector is None:
                missing.append(n)
            else:
                out[n] = vector
        if not missing:
            return out
        texts = [captions[n] for n in missing]
        fresh = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            fresh[start : start + BATCH] = self._mean_tokens(texts[start : start + BATCH])
        norms = np.linalg.norm(fresh, axis=1, keepdims=True)
        fresh /= np.where(norms > 0, norms, 1.0)
        out[missing] = fresh
        if remember and len(texts) <= CACHE_ENTRIES:
            with self._lock:
                if len(self._cache) + len(texts) > CACHE_ENTRIES:
                    self._cache = {}
                self._cache.update(zip(texts, fresh, strict=True))
        return out

    def _mean_tokens(self, texts: list[str]) -> Floats:
        """Each text's mean token embedding (a sparse averaging matrix times the table)."""
        from scipy.sparse import csr_matrix

        # `encode_batch_fast` (tokenizers ≥ 0.20) skips the character offsets we do not use.
        tokenize = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)
        encoded = tokenize(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encoded), np.int64, len(encoded))
        ids = np.fromiter((i for e in encoded for i in e.ids), np.int64, int(lengths.sum()))
        ids = np.clip(ids, 0, len(self.embedding) - 1)
        share = np.repeat(1.0 / np.maximum(lengths, 1), lengths).astype(np.float32)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        average = csr_matrix((share, ids, indptr), shape=(len(texts), len(self.embedding)))
        return np.asarray(average @ self.embedding, dtype=np.float32)


@functools.cache
def encoder() -> CaptionEncoder:
    """The shipped text model, loaded once per process; raises `CaptionModelMissing`."""
    return CaptionEncoder(*model_files())


@dataclass(frozen=True)
class CaptionMap:
    """Caption vector → item factors: `weights` (text dim + 1 rows, the last the intercept),
    and `prior`, the average factors (for a caption without tokens)."""

    weights: Floats
    prior: Floats
    ridge: float
    holdout_r2: float
    items: int

    def meta(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "items": self.items,
            "ridge": self.ridge,
            "holdout_r2": round(self.holdout_r2, 4),
        }


def project(weights: Floats, prior: Floats, text: Floats) -> Floats:
    """Predicted item factors for caption vectors (`CaptionEncoder.encode`)."""
    out = text @ weights[:-1] + weights[-1]
    empty = ~np.any(text != 0, axis=1)
    out[empty] = prior
    return np.asarray(out, dtype=np.float32)


Stats = tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64], Any, Any]


def _stats(x: Floats, y: Floats) -> Stats:
    """What the ridge solutions need of some rows: n, Σx, Σy, XᵀX, XᵀY (summable)."""
    xx, xy = (x.T @ x).astype(np.float64), (x.T @ y).astype(np.float64)
    return len(x), x.sum(0, dtype=np.float64), y.sum(0, dtype=np.float64), xx, xy


def _solve(stats: Stats, ridge: float) -> Floats:
    """Ridge regression with an unpenalized intercept: (dim + 1, k)."""
    n, sx, sy, xx, xy = stats
    mx, my = sx / n, sy / n
    gram = xx - n * np.outer(mx, mx) + ridge * np.eye(len(mx))
    w = np.linalg.solve(gram, xy - n * np.outer(mx, my))
    return np.vstack([w, (my - mx @ w)[None, :]]).astype(np.float32)


def _r2(weights: Floats, x: Floats, y: Floats) -> float:
    residual = y - (x @ weights[:-1] + weights[-1])
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    return 1.0 - float((residual**2).sum()) / total if total > 0 else 0.0


def fit_map(text: Floats, factors: Floats, *, seed: int = 0) -> CaptionMap | None:
    """The ridge map from `text` (caption vectors, one row per video; zero rows are left out)
    to `factors` (those videos' iALS item factors): the penalty of `RIDGE_GRID` with the best
    R² on a random `HOLDOUT` of the videos, refitted on all; None under `MIN_ITEMS` videos."""
    has_text = np.any(text != 0, axis=1)
    x, y = text[has_text].astype(np.float32), factors[has_text].astype(np.float32)
    if len(x) < MIN_ITEMS:
        return None
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(len(x) * HOLDOUT))
    held, kept = order[:cut], order[cut:]
    train, rest = _stats(x[kept], y[kept]), _stats(x[held], y[held])
    best, best_r2 = RIDGE_GRID[0], -np.inf
    for ridge in RIDGE_GRID:
        r2 = _r2(_solve(train, ridge), x[held], y[held])
        if r2 > best_r2:
            best, best_r2 = ridge, r2
    n, sx, sy, xx, xy = (a + b for a, b in zip(train, rest, strict=True))
    both: Stats = (int(n), sx, sy, xx, xy)
    return CaptionMap(_solve(both, best), y.mean(axis=0), best, float(best_r2), len(x))


def fit_from_captions(
    items: Sequence[str], item_factors: Floats, captions: dict[str, str], *, seed: int = 0
) -> CaptionMap | None:
    """`fit_map` on the videos of `items` (the model's rows) that have a caption."""
    texts = [captions.get(str(item), "") for item in items]
    return fit_map(encoder().encode(texts, remember=False), item_factors, seed=seed)
