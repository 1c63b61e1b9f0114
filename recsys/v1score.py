"""Today's for-you score (v1, issue 3 "Feed"), the pure formula: engagement points per
exposure shrunk towards a prior, times a time decay. `api/feed/ranking.py` serves with it and
`recsys.baselines` replays it on an interaction log, so both use this one copy.

    points   = 4·completions + 3·shares + 2·comments + 1·likes − 1·skips − 4·not_interested
    quality  = max((points + K·m) / (exposure + K), floor)        K = 100, m = 0.1, floor = 1e-6
    decay    = (age_hours + 2) ^ −1.2
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class V1Weights:
    """The v1 score's weights and constants (`api.feed.ranking.RankParams` takes its defaults
    from `V1`)."""

    completion_weight: float = 4.0
    share_weight: float = 3.0
    comment_weight: float = 2.0
    like_weight: float = 1.0
    skip_weight: float = 1.0
    not_interested_weight: float = 4.0
    # The prior: K impressions worth m points each (Bayesian average).
    prior_impressions: float = 100.0
    prior_points: float = 0.1
    quality_floor: float = 1e-6
    gravity: float = 1.2
    age_offset_hours: float = 2.0


V1 = V1Weights()


def points(
    w: V1Weights,
    *,
    completions: float = 0,
    shares: float = 0,
    comments: float = 0,
    likes: float = 0,
    skips: float = 0,
    not_interested: float = 0,
) -> float:
    """The weighted engagement sum (negative signals subtract)."""
    return (
        w.completion_weight * completions
        + w.share_weight * shares
        + w.comment_weight * comments
        + w.like_weight * likes
        - w.skip_weight * skips
        - w.not_interested_weight * not_interested
    )


def quality(points: float, exposure: float, w: V1Weights = V1) -> float:
    """Engagement per impression shrunk towards the prior, floored to stay positive."""
    prior = w.prior_impressions
    raw = (points + prior * w.prior_points) / (max(exposure, 0) + prior)
    return max(raw, w.quality_floor)


def decay(age_ms: float, w: V1Weights = V1) -> float:
    """Gravity on the age in hours: (age_hours + offset) ^ −gravity (future times count as 0)."""
    age_hours = max(age_ms, 0) / HOUR_MS
    return float((age_hours + w.age_offset_hours) ** -w.gravity)
