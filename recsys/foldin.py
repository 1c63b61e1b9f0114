"""iALS fold-in (issue 17, "Cold start"): the factor of a viewer the model was not trained on,
from what they did since, with the item factors held fixed, without a retrain.

It is the user step of iALS (`recsys.mf`, `implicit`'s `AlternatingLeastSquares`) for one row,
solved exactly (what `implicit`'s `recalculate_user` / `partial_fit_users` compute; the
training itself takes a few conjugate-gradient steps per sweep instead). With the row's
weights w (summed per item, as the training matrix sums repeats) and the version's `alpha`
and `regularization`, the confidence of an item is c = alpha · w, and

    (YᵀY + λI + Σ_i (|c_i| − 1) y_i y_iᵀ) x = Σ_{c_i > 0} c_i y_i

— `implicit`'s reading of a negative confidence (a quick skip, "not interested",
`recsys.signals`): the viewer does not want the item (preference 0), with confidence |c|.
YᵀY is the same for every viewer of a version: `gram` once per version, then a fold-in costs
O(n·k² + k³) for n items and k factors (k ≤ 64: well under a millisecond).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def gram(item_factors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """YᵀY of a version's item factors (float64)."""
    y = np.asarray(item_factors, dtype=np.float64)
    return y.T @ y


def user_factor(
    item_factors: npt.NDArray[np.floating],
    yty: npt.NDArray[np.float64],
    codes: npt.NDArray[np.integer],
    weights: npt.NDArray[np.floating],
    *,
    alpha: float,
    regularization: float,
) -> npt.NDArray[np.float32]:
    """The viewer's factor from their row: `codes` (item rows, repeats summed) and `weights`
    (the training weights, `recsys.signals`), by the module doc's closed form."""
    codes = np.asarray(codes, dtype=np.int64)
    if len(codes) == 0:
        return np.zeros(yty.shape[0], dtype=np.float32)
    rows, at = np.unique(codes, return_inverse=True)
    summed = np.bincount(at, np.asarray(weights, dtype=np.float64), len(rows))
    keep = summed != 0
    rows, confidence = rows[keep], alpha * summed[keep]
    y = np.asarray(item_factors[rows], dtype=np.float64)
    a = yty + regularization * np.eye(yty.shape[0]) + (y.T * (np.abs(confidence) - 1.0)) @ y
    b = np.where(confidence > 0, confidence, 0.0) @ y
    return np.asarray(np.linalg.solve(a, b), dtype=np.float32)
