"""Matching by offset-consistent votes, pure numpy (issue 5, "Copyright: audio fingerprints";
Wang 2003 §2.3 "searching and scoring").

Given the catalog rows that share a hash with a clip (classifiers/catalog.py `lookup`), `vote`
histograms `ref_offset − query_offset` for each reference: a clip taken from the reference
piles its votes into one bin (where it starts in the reference), chance coincidences spread
over all bins. The score is the tallest bin plus its two neighbours (a clip's frames fall
between the reference's, so a peak may move by one frame). Queries pool their landmarks over
time shifts, one per hash and ±1 frame (classifiers/fingerprint.py), so a posting gets one
vote from each landmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from classifiers.fingerprint import FRAME_SECONDS, Fingerprint

# Time differences are shifted positive so that a vote packs into one int64 under its ref_id.
_SHIFT = 1 << 31
# Above this many (row, query landmark) pairs, `vote` first drops the votes that cannot be the
# winner's (`_contenders`, about twice as fast on a 1,000-reference catalog): counted in buckets
# of 2**_BUCKET_BITS frames, in a hashed table of 2**_TABLE_BITS counters.
PREFILTER_PAIRS = 20_000
_BUCKET_BITS = 2
_TABLE_BITS = 18


@dataclass(frozen=True, slots=True)
class Match:
    """The best reference for a clip: where in it the clip starts, and how many votes agree."""

    ref_id: int
    score: int
    offset_frames: float
    name: str = ""
    owner: str = ""
    policy: str = "block"

    @property
    def offset_s(self) -> float:
        return self.offset_frames * FRAME_SECONDS

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.name,
            "owner": self.owner,
            "offset_s": round(self.offset_s, 3),
            "score": self.score,
        }


def vote(
    query: Fingerprint,
    hashes: NDArray[np.integer[Any]],
    ref_ids: NDArray[np.integer[Any]],
    ref_offsets: NDArray[np.integer[Any]],
    prefilter_above: int = PREFILTER_PAIRS,
) -> Match | None:
    """The reference whose rows agree with the clip on one time difference most often.

    `hashes`, `ref_ids`, `ref_offsets` are the catalog rows that share a hash with the query,
    in any order. Returns the best (ref, offset) even when weak; the caller applies a threshold.
    With more than `prefilter_above` votes, the hopeless ones are dropped first (same result).
    """
    if len(query) == 0 or len(hashes) == 0:
        return None
    keys = _vote_keys(query, hashes, ref_ids, ref_offsets)
    if len(keys) == 0:
        return None
    if len(keys) > prefilter_above:
        keys = _contenders(keys)
    bins, below, above, scores = _window_scores(keys)
    best = int(np.argmax(scores))
    key = int(bins[best])
    centre = (key & 0xFFFFFFFF) - _SHIFT
    weight = int(scores[best])
    offset = centre + (int(above[best]) - int(below[best])) / weight
    return Match(ref_id=key >> 32, score=weight, offset_frames=offset)


def _vote_keys(
    query: Fingerprint,
    hashes: NDArray[np.integer[Any]],
    ref_ids: NDArray[np.integer[Any]],
    ref_offsets: NDArray[np.integer[Any]],
) -> NDArray[np.int64]:
    """One vote per (catalog row, query landmark) of the same hash: `ref_id << 32` plus the
    time difference `ref_offset − query_offset` (shifted positive)."""
    order = np.argsort(query.hashes, kind="stable")
    q_hashes = query.hashes[order].astype(np.int64)
    q_offsets = query.offsets[order].astype(np.int64)
    row_hashes = np.asarray(hashes, dtype=np.int64)
    # Rows come grouped by hash (catalog.lookup): find each run's query range once.
    heads = np.flatnonzero(np.diff(row_hashes, prepend=row_hashes[0] - 1))
    run_lengths = np.diff(heads, append=len(row_hashes))
    run_lo = np.searchsorted(q_hashes, row_hashes[heads], side="left")
    run_counts = np.searchsorted(q_hashes, row_hashes[heads], side="right") - run_lo
    lo = np.repeat(run_lo, run_lengths)
    counts = np.repeat(run_counts, run_lengths)
    total = int(counts.sum())
    row = np.repeat(np.arange(len(row_hashes)), counts)
    starts = np.cumsum(counts) - counts
    q_index = lo[row] + (np.arange(total) - starts[row])
    diff = np.asarray(ref_offsets, dtype=np.int64)[row] - q_offsets[q_index]
    return (np.asarray(ref_ids, dtype=np.int64)[row] << 32) + (diff + _SHIFT)


def _window_scores(
    keys: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Each occupied bin (sorted), the votes one frame below and above it, and its ±1 score."""
    bins, votes = np.unique(keys, return_counts=True)
    below = _neighbour_votes(bins, votes, -1)
    above = _neighbour_votes(bins, votes, +1)
    return bins, below, above, votes + below + above


def _contenders(keys: NDArray[np.int64]) -> NDArray[np.int64]:
    """The votes that can count toward the winning bin's score; the rest go unsorted.

    A vote at time difference x counts for the bins x−1..x+1, whose ±1 scores gather votes
    from x−2..x+2: all inside the vote's coarse bucket and the two beside it, so no bin it
    counts for scores more than those three buckets hold (table collisions only add). The
    exact best score near the fullest buckets is a floor the winner reaches; every vote of a
    bin that can reach it has buckets holding at least that much and is kept, so `vote` picks
    the same bin with the same score and offset as over all the votes.
    """
    bucket = keys >> _BUCKET_BITS
    slot = _slot(bucket)
    counts = np.bincount(slot, minlength=1 << _TABLE_BITS)
    window = counts[_slot(bucket - 1)] + counts[slot] + counts[_slot(bucket + 1)]
    top = bucket[int(np.argmax(window))]
    floor = int(_window_scores(keys[np.abs(bucket - top) <= 2])[3].max())
    return keys[window >= floor]


def _slot(bucket: NDArray[np.int64]) -> NDArray[np.int64]:
    """A bucket's counter in the table (a multiplicative hash; int64 products wrap)."""
    mixed = (bucket ^ (bucket >> 27)) * -7046029254386353131  # 0x9E3779B97F4A7C15 as int64
    return (mixed >> 40) & ((1 << _TABLE_BITS) - 1)


def _neighbour_votes(
    bins: NDArray[np.int64], votes: NDArray[np.int64], step: int
) -> NDArray[np.int64]:
    """Votes in the bin `step` (±1) frames away from each bin: in sorted unique bins, that bin
    can only be the adjacent entry (0 when absent or another reference's)."""
    result = np.zeros_like(votes)
    adjacent = np.diff(bins) == 1
    if step < 0:
        result[1:] = np.where(adjacent, votes[:-1], 0)
    else:
        result[:-1] = np.where(adjacent, votes[1:], 0)
    return result
