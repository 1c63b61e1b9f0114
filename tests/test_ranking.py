"""The for-you ranking as pure functions: score orderings and the serving constraints."""

from __future__ import annotations

import dataclasses
import itertools
import random
from dataclasses import replace
from typing import Any

import pytest

from api.feed import ranking
from api.feed.ranking import HOUR_MS, Candidate, Exclusions, MergeState, VideoStats

NOW = 1_750_000_000_000


def stats(
    video_id: str = "v", owner: str = "u", age_hours: float = 5, **counters: int
) -> VideoStats:
    counters.setdefault("impression_count", 1000)
    return VideoStats(
        id=video_id, owner_id=owner, published_at=NOW - int(age_hours * HOUR_MS), **counters
    )


def score(s: VideoStats) -> float:
    return ranking.score(s, NOW)


def counts(name: str, value: int) -> dict[str, Any]:
    return {name: value}


# Each signal, 50 events on 1,000 impressions: the stronger signal must rank higher.
SIGNAL_ORDER = ["completion_count", "share_count", "comment_count", "like_count"]


@pytest.mark.parametrize(("stronger", "weaker"), list(itertools.combinations(SIGNAL_ORDER, 2)))
def test_signal_weights_are_ordered(stronger: str, weaker: str) -> None:
    assert score(stats(**counts(stronger, 50))) > score(stats(**counts(weaker, 50)))


@pytest.mark.parametrize("signal", SIGNAL_ORDER)
def test_each_positive_signal_raises_the_score(signal: str) -> None:
    assert score(stats(**counts(signal, 10))) > score(stats())


@pytest.mark.parametrize("negative", ["skip_count", "not_interested_count"])
def test_negative_signals_lower_the_score(negative: str) -> None:
    base = stats(like_count=200, completion_count=100)
    assert score(replace(base, **counts(negative, 50))) < score(base)


def test_not_interested_counts_more_than_a_skip() -> None:
    base = stats(like_count=200, completion_count=100)
    assert score(replace(base, not_interested_count=30)) < score(replace(base, skip_count=30))


@pytest.mark.parametrize(("younger", "older"), [(0, 1), (1, 6), (6, 24), (24, 24 * 7)])
def test_same_engagement_older_ranks_lower(younger: float, older: float) -> None:
    counters: dict[str, Any] = {
        "like_count": 100,
        "completion_count": 300,
        "impression_count": 1000,
    }
    assert score(stats(age_hours=younger, **counters)) > score(stats(age_hours=older, **counters))


def test_decay_lowers_even_a_video_with_only_negative_signals() -> None:
    counters: dict[str, Any] = {"skip_count": 900, "impression_count": 1000}
    assert score(stats(age_hours=1, **counters)) > score(stats(age_hours=48, **counters))
    assert score(stats(age_hours=1, **counters)) > 0


def test_prior_keeps_tiny_samples_from_dominating() -> None:
    tiny = stats("tiny", impression_count=2, like_count=2)
    proven = stats("proven", impression_count=10_000, like_count=5_000)
    assert score(proven) > score(tiny)
    # ...while a tiny sample still moves the score in the right direction.
    assert score(tiny) > score(stats("tiny", impression_count=2))


def test_quality_normalizes_by_impressions() -> None:
    seen_often = stats(like_count=100, impression_count=100_000)
    seen_rarely = stats(like_count=100, impression_count=1_000)
    assert score(seen_rarely) > score(seen_often)


def test_views_count_as_exposure_when_impressions_are_missing() -> None:
    assert ranking.exposure(stats(impression_count=0, view_count=40)) == 40


@pytest.mark.parametrize(
    ("age_hours", "impressions", "cold"),
    [(1, 0, True), (47, 199, True), (47, 200, False), (49, 0, False)],
)
def test_cold_start_definition(age_hours: float, impressions: int, cold: bool) -> None:
    s = stats(age_hours=age_hours, impression_count=impressions)
    assert ranking.is_cold(s, NOW) is cold


def test_rank_candidates_orders_by_score_and_appends_the_cold_pool() -> None:
    ranked = [stats(f"v{i}", f"u{i}", impression_count=1000, like_count=10 * i) for i in range(20)]
    fresh = stats("fresh", "new", age_hours=30, impression_count=0)
    items, cold = ranking.rank_candidates([*ranked, fresh], NOW, limit=10)
    assert len(items) == 11
    scores = [c.score for c in items[:10]]
    assert scores == sorted(scores, reverse=True)
    assert items[0].id == "v19"
    assert [items[i].id for i in cold] == ["fresh"]


def creators_ok(owners: list[str], window: int = 5) -> bool:
    return all(
        len(set(owners[i : i + window])) == len(owners[i : i + window]) for i in range(len(owners))
    )


def prolific_snapshot() -> list[Candidate]:
    """A creator with 30 top videos ahead of 40 videos by 20 other creators."""
    items = [Candidate(f"p{i}", "prolific", 100.0 - i) for i in range(30)]
    items += [Candidate(f"o{i}", f"other{i % 20}", 50.0 - i) for i in range(40)]
    return items


def test_diversity_holds_over_forty_items_paged_in_any_sizes() -> None:
    items = prolific_snapshot()
    rng = random.Random(7)
    for _ in range(20):
        state, served = MergeState(), list[int]()
        while len(served) < 40:
            picks, state, _ = ranking.merge(items, [], state, Exclusions(), rng.randint(1, 9))
            assert picks
            served += picks
        owners = [items[i].owner_id for i in served]
        assert creators_ok(owners)
        assert len(set(served)) == len(served)
        assert owners.count("prolific") >= 8  # still one in every five


def test_merge_with_a_short_horizon_equals_the_full_scan() -> None:
    items = prolific_snapshot()
    cold = [55, 68]
    seen_ids = {"o3", "p1"}
    full_state = short_state = MergeState()
    for size in (7, 5, 9):
        full, full_state, _ = ranking.merge(items, cold, full_state, Exclusions(seen_ids), size)
        horizon = ranking.horizon_for(items, short_state, size)
        short, next_state, exhausted = ranking.merge(
            items, cold, short_state, Exclusions(seen_ids), size, horizon=horizon
        )
        while len(short) < size and not exhausted:
            horizon *= 2
            short, next_state, exhausted = ranking.merge(
                items, cold, short_state, Exclusions(seen_ids), size, horizon=horizon
            )
        short_state = next_state
        assert short == full


def test_cold_slot_is_one_in_every_eight() -> None:
    items = [Candidate(f"r{i}", f"u{i}", 100.0 - i) for i in range(40)]
    items += [Candidate(f"c{i}", f"new{i}", 0.001) for i in range(10)]
    cold = list(range(40, 50))
    picks, _, _ = ranking.merge(items, cold, MergeState(), Exclusions(), 32)
    ids = [items[i].id for i in picks]
    slots = [n for n, video_id in enumerate(ids) if video_id.startswith("c")]
    assert slots == [4, 12, 20, 28]


def test_exclusions_and_own_videos_never_served() -> None:
    items = [Candidate(f"v{i}", f"u{i % 7}", 100.0 - i) for i in range(60)]
    excluded = {"v0", "v5", "v17"}
    picks, _, exhausted = ranking.merge(
        items, [], MergeState(), Exclusions(excluded, owner_id="u3"), 60
    )
    ids = {items[i].id for i in picks}
    assert exhausted
    assert not ids & excluded
    assert all(items[i].owner_id != "u3" for i in picks)
    assert len(ids) == 60 - len(excluded) - sum(
        1 for i in range(60) if i % 7 == 3 and f"v{i}" not in excluded
    )


def test_served_bitmap_round_trips() -> None:
    served = {0, 1, 2, 9, 63, 64, 999}
    data = ranking.encode_served(served)
    assert len(data) == 125
    assert ranking.decode_served(data) == served
    assert ranking.decode_served(ranking.encode_served(set())) == set()


def test_reports_over_ten_deprioritize_and_bar_the_cold_slot() -> None:
    """Issue 5: over 10 distinct reporters the video sinks in for-you and loses its
    cold-start eligibility; at 10 nothing changes."""
    now = 1_000 * ranking.HOUR_MS
    base = ranking.VideoStats(
        id="v_a",
        owner_id="u_a",
        published_at=now - ranking.HOUR_MS,
        like_count=50,
        impression_count=100,
    )
    ten = dataclasses.replace(base, report_count=10)
    eleven = dataclasses.replace(base, report_count=11)
    assert ranking.score(ten, now) == ranking.score(base, now)
    assert ranking.score(eleven, now) < ranking.score(base, now) / 5
    assert ranking.is_cold(base, now) and not ranking.is_cold(eleven, now)
