"""How per-frame moderation scores are aggregated over time: a sample's score confirmed by its
neighbours (`sustained_scores`), which routing (api/safety/routing.py) weighs against the
thresholds.
"""

from __future__ import annotations

import numpy as np


def sustained_scores(times: list[float], scores: np.ndarray, window: float) -> np.ndarray:
    """Each sample's score confirmed by its neighbours: the median over the samples within
    `window` seconds of it (itself included).

    A lone spike (a blurred, skin-toned close-up in one sampled frame: cockatoo.mp4 at 8.0 s
    scores 0.78 while the frames a second either side score 0.02–0.05) is not sustained;
    content that stays on screen is. Routing uses both: the sustained score against both
    thresholds, the single-frame maximum against the reject threshold as a reason to review.
    """
    if not len(scores):
        return np.zeros(0)
    t = np.asarray(times, dtype=np.float64)
    near = np.abs(t[:, None] - t[None, :]) <= window + 1e-6
    return np.array([float(np.median(scores[row])) for row in near])
