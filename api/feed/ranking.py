"""The for-you ranking (issue 3, "Feed"): pure functions, no I/O.

Score (v1, engagement-weighted with time decay)::

    points   = 4·completions + 3·shares + 2·comments + 1·likes − 1·skips − 4·not_interested
    exposure = max(impressions, views)
    quality  = max((points + K·m) / (exposure + K), floor)        K = 100, m = 0.1, floor = 1e-6
    decay    = (age_hours + 2) ^ −1.2
    score    = quality · decay

- The weights order the signals as the spec asks (completion > share > comment > like) and
  count skips and "not interested" against a video.
- `quality` is engagement per impression shrunk towards a prior (a Bayesian average): the video
  starts as if it had `K` impressions worth `m` points each, so 2 likes on 2 impressions
  (≈ 0.12) never beats 5,000 likes on 10,000 impressions (≈ 0.50). A never-shown video gets `m`.
  The floor keeps the score positive, so the decay always lowers an older video's score
  (a negative quality divided by a decay would rank older videos *higher*).
- `decay` is Hacker-News-style gravity on the age in hours; the 2 h offset keeps a brand-new
  video from getting an unbounded boost.

Serving constraints (`merge`): at most one video per creator in any 5 consecutive items (the
window spans page boundaries: the state carries the last 4 creators), one slot in every 8
(position 4 of each 8, counting from 0) for a cold-start video (published in the last 48 h with
fewer than 200 impressions), never an excluded video (seen, marked, gone) nor the viewer's own.
Every parameter lives in `RankParams`; the score's formula is `recsys.v1score` (shared with
the offline evaluation, which replays it on interaction logs).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from api.moderation.thresholds import DEPRIORITIZE_OVER, report_penalty
from recsys import v1score
from recsys.v1score import HOUR_MS, V1Weights


@dataclass(frozen=True)
class RankParams(V1Weights):
    """Weights and constants of the v1 score (`recsys.v1score.V1Weights`, the one copy of the
    formula) and of the serving constraints."""

    # Cold start: what counts as a fresh video with few impressions, and where its slot is.
    cold_max_age_hours: float = 48.0
    cold_max_impressions: int = 200
    cold_every: int = 8
    cold_slot: int = 4
    # At most one video per creator in any `diversity_window` consecutive items.
    diversity_window: int = 5


DEFAULT_PARAMS = RankParams()


@dataclass(frozen=True)
class VideoStats:
    """The counters a score is computed from (one `videos` row)."""

    id: str
    owner_id: str
    published_at: int
    completion_count: int = 0
    share_count: int = 0
    comment_count: int = 0
    like_count: int = 0
    skip_count: int = 0
    not_interested_count: int = 0
    impression_count: int = 0
    view_count: int = 0
    # Distinct viewers' reports since the last approval (issue 5: > 10 deprioritizes).
    report_count: int = 0


class Candidate(msgspec.Struct, array_like=True, frozen=True):
    """One entry of a candidate snapshot (array-encoded: the snapshot is cached as a whole)."""

    id: str
    owner_id: str
    score: float


def engagement_points(stats: VideoStats, p: RankParams = DEFAULT_PARAMS) -> float:
    """The weighted engagement sum (negative signals subtract)."""
    return v1score.points(
        p,
        completions=stats.completion_count,
        shares=stats.share_count,
        comments=stats.comment_count,
        likes=stats.like_count,
        skips=stats.skip_count,
        not_interested=stats.not_interested_count,
    )


def exposure(stats: VideoStats) -> int:
    """How often the video was shown: impressions, or views when a client sent no impression."""
    return max(stats.impression_count, stats.view_count, 0)


def quality(stats: VideoStats, p: RankParams = DEFAULT_PARAMS) -> float:
    """Engagement per impression shrunk towards the prior, floored to stay positive."""
    return v1score.quality(engagement_points(stats, p), exposure(stats), p)


def decay(age_ms: int, p: RankParams = DEFAULT_PARAMS) -> float:
    """Gravity on the age in hours: (age_hours + offset) ^ −gravity (future times count as 0)."""
    return v1score.decay(age_ms, p)


def score(stats: VideoStats, now_ms: int, p: RankParams = DEFAULT_PARAMS) -> float:
    """The v1 for-you score: quality × decay × the reports penalty (see the module
    docstring; `api.moderation.report_penalty` is 1.0 up to 10 distinct reporters)."""
    return (
        quality(stats, p)
        * decay(now_ms - stats.published_at, p)
        * report_penalty(stats.report_count)
    )


def is_cold(stats: VideoStats, now_ms: int, p: RankParams = DEFAULT_PARAMS) -> bool:
    """A fresh video with few impressions: eligible for the cold-start slot."""
    fresh = now_ms - stats.published_at <= p.cold_max_age_hours * HOUR_MS
    reported = stats.report_count > DEPRIORITIZE_OVER
    return fresh and not reported and exposure(stats) < p.cold_max_impressions


def rank_candidates(
    stats: Iterable[VideoStats],
    now_ms: int,
    *,
    limit: int = 1000,
    cold_limit: int = 200,
    p: RankParams = DEFAULT_PARAMS,
) -> tuple[list[Candidate], list[int]]:
    """The candidate snapshot: the top `limit` videos by score, then the cold-start videos
    not already among them; returns (items, cold) where `cold` indexes `items`, least exposed
    (then newest) first."""
    ranker = CandidateRanker(now_ms, limit=limit, cold_limit=cold_limit, p=p)
    ranker.add(stats)
    return ranker.result()


class CandidateRanker:
    """`rank_candidates` fed in batches (a caller may let other work run between them)."""

    def __init__(
        self,
        now_ms: int,
        *,
        limit: int = 1000,
        cold_limit: int = 200,
        p: RankParams = DEFAULT_PARAMS,
    ) -> None:
        self.now_ms, self.limit, self.cold_limit, self.p = now_ms, limit, cold_limit, p
        # (−score, id, owner): ascending order is the ranking (score, then id, for ties).
        self._scored: list[tuple[float, str, str]] = []
        # (exposure, −published_at, id, owner, score): ascending order is the cold pool's.
        self._cold: list[tuple[int, int, str, str, float]] = []

    def add(self, stats: Iterable[VideoStats]) -> None:
        now, p = self.now_ms, self.p
        for s in stats:
            value = score(s, now, p)
            self._scored.append((-value, s.id, s.owner_id))
            if is_cold(s, now, p):
                self._cold.append((exposure(s), -s.published_at, s.id, s.owner_id, value))

    def result(self) -> tuple[list[Candidate], list[int]]:
        top = heapq.nsmallest(self.limit, self._scored)
        items = [Candidate(video_id, owner, -negated) for negated, video_id, owner in top]
        position = {c.id: i for i, c in enumerate(items)}
        cold: list[int] = []
        for _, _, video_id, owner, value in heapq.nsmallest(self.cold_limit, self._cold):
            if video_id not in position:
                position[video_id] = len(items)
                items.append(Candidate(video_id, owner, value))
            cold.append(position[video_id])
        return items, cold


@dataclass
class MergeState:
    """Where a viewer is in a snapshot: what was served (or skipped for good), the creators of
    the last items (diversity window, across pages) and how many items were served (slots)."""

    served: set[int] = field(default_factory=set)
    recent: list[str] = field(default_factory=list)
    count: int = 0

    def copy(self) -> MergeState:
        return MergeState(set(self.served), list(self.recent), self.count)


@dataclass(frozen=True)
class Exclusions:
    """What a viewer must never get: video ids (seen, marked, gone) and their own videos."""

    video_ids: Collection[str] = frozenset()
    owner_id: str | None = None

    def excludes(self, item: Candidate) -> bool:
        return item.id in self.video_ids or (
            self.owner_id is not None and item.owner_id == self.owner_id
        )


def horizon_for(items: Sequence[Candidate], state: MergeState, unserved: int) -> int:
    """The end index of the smallest prefix of `items` holding `unserved` unserved entries."""
    remaining = unserved
    for index in range(len(items)):
        if index not in state.served:
            remaining -= 1
            if remaining == 0:
                return index + 1
    return len(items)


def merge(
    items: Sequence[Candidate],
    cold: Sequence[int],
    state: MergeState,
    exclusions: Exclusions,
    size: int,
    *,
    horizon: int | None = None,
    p: RankParams = DEFAULT_PARAMS,
    order: Sequence[int] | None = None,
) -> tuple[list[int], MergeState, bool]:
    """Pick up to `size` more items; returns (indexes into `items`, the new state, exhausted).

    Greedy: each position takes the best eligible item, from the cold pool first on a cold
    slot and from the ranked list otherwise (each source backs the other up). Eligible: not
    served, not excluded, creator not among the last `diversity_window − 1` served items.
    Ranked picks only look below `horizon`; when the page comes out short, `exhausted` tells
    whether that is the end of the feed (True) or the horizon was too short (False): the picks
    made under a horizon are the picks of a full scan, so a caller may start with a short
    horizon (fewer seen rows to read) and widen it only when needed. Excluded items met on the
    way are marked served so later pages skip them without reading them again. `order` (a
    permutation of the indexes: a viewer's own order, `api.feed.personal`) replaces the
    ranked order; the horizon is then the whole list.
    """
    limit = len(items) if horizon is None or order is not None else min(horizon, len(items))
    ranked: Sequence[int] = range(limit) if order is None else order
    new = state.copy()
    picks: list[int] = []
    keep = max(p.diversity_window - 1, 0)
    while len(picks) < size:
        blocked = set(new.recent[-keep:]) if keep else set()
        cold_turn = new.count % p.cold_every == p.cold_slot
        pick = _first_eligible(items, cold, new, exclusions, blocked) if cold_turn else None
        if pick is None:
            pick = _first_eligible(items, ranked, new, exclusions, blocked)
            if pick is None and limit < len(items):
                # A full scan might find one past the horizon: widen it rather than guess.
                return picks, new, False
        if pick is None and not cold_turn:
            pick = _first_eligible(items, cold, new, exclusions, blocked)
        if pick is None:
            return picks, new, True
        picks.append(pick)
        new.served.add(pick)
        new.recent = [*new.recent, items[pick].owner_id][-keep:] if keep else []
        new.count += 1
    return picks, new, False


def _first_eligible(
    items: Sequence[Candidate],
    source: Iterable[int],
    state: MergeState,
    exclusions: Exclusions,
    blocked: set[str],
) -> int | None:
    for index in source:
        if index in state.served:
            continue
        item = items[index]
        if exclusions.excludes(item):
            state.served.add(index)
            continue
        if item.owner_id not in blocked:
            return index
    return None


def encode_served(served: Iterable[int]) -> bytes:
    """A bitmap of served indexes (little-endian, trailing zero bytes dropped): a snapshot of
    1,000 items fits in 125 bytes, whatever the session's length."""
    bits = 0
    for index in served:
        bits |= 1 << index
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def decode_served(data: bytes) -> set[int]:
    bits = int.from_bytes(data, "little")
    result: set[int] = set()
    index = 0
    while bits:
        if bits & 1:
            result.add(index)
        bits >>= 1
        index += 1
    return result
