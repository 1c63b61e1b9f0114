"""engine/chunks.py `plan_chunks`: chunks of whole segments whose segment boundaries are the
single pass's after packager/timeline.py merges a short tail (table-tested, pure)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from engine.chunks import plan_chunks, short_tail

# (total frames, GOP frames, segments per chunk, rate, segment s) →
#   [(start, end, first segment, segments, files written)], segment starts
CASES = [
    # 10.4 s at 30 fps, 2 s segments, 2 per chunk: the 0.4 s tail merges into the 5th.
    (
        312,
        60,
        2,
        Fraction(30),
        2.0,
        [(0, 120, 1, 2, 2), (120, 240, 3, 2, 2), (240, 312, 5, 1, 2)],
        (0, 60, 120, 180, 240),
    ),
    # Exactly 10 s: no tail, the last chunk takes the one segment left.
    (
        300,
        60,
        2,
        Fraction(30),
        2.0,
        [(0, 120, 1, 2, 2), (120, 240, 3, 2, 2), (240, 300, 5, 1, 1)],
        (0, 60, 120, 180, 240),
    ),
    # A 1.0 s tail is half a segment: it stays a segment of its own (not less than half).
    (
        330,
        60,
        3,
        Fraction(30),
        2.0,
        [(0, 180, 1, 3, 3), (180, 330, 4, 3, 3)],
        (0, 60, 120, 180, 240, 300),
    ),
    # A tail that would be a chunk of its own merges into the chunk before.
    (
        250,
        60,
        4,
        Fraction(30),
        2.0,
        [(0, 250, 1, 4, 5)],
        (0, 60, 120, 180),
    ),
    (
        250,
        60,
        2,
        Fraction(30),
        2.0,
        [(0, 120, 1, 2, 2), (120, 250, 3, 2, 3)],
        (0, 60, 120, 180),
    ),
    # Shorter than one segment: one chunk, one segment, nothing to merge into.
    (10, 60, 2, Fraction(30), 2.0, [(0, 10, 1, 1, 1)], (0,)),
    # One segment per chunk at 29.97 fps (GOP 60 frames = 2.002 s): a 30-frame tail (1.001 s)
    # stays; 28 frames (0.934 s) would merge.
    (
        210,
        60,
        1,
        Fraction(30000, 1001),
        2.0,
        [(0, 60, 1, 1, 1), (60, 120, 2, 1, 1), (120, 180, 3, 1, 1), (180, 210, 4, 1, 1)],
        (0, 60, 120, 180),
    ),
    (
        208,
        60,
        1,
        Fraction(30000, 1001),
        2.0,
        [(0, 60, 1, 1, 1), (60, 120, 2, 1, 1), (120, 208, 3, 1, 2)],
        (0, 60, 120),
    ),
    # 24 fps, 0.5 s segments (12 frames), 48 frames: no tail.
    (
        48,
        12,
        1,
        Fraction(24),
        0.5,
        [(0, 12, 1, 1, 1), (12, 24, 2, 1, 1), (24, 36, 3, 1, 1), (36, 48, 4, 1, 1)],
        (0, 12, 24, 36),
    ),
]


@pytest.mark.parametrize(
    ("total", "gop", "per_chunk", "rate", "seconds", "chunks", "starts"), CASES
)
def test_plan_chunks(
    total: int,
    gop: int,
    per_chunk: int,
    rate: Fraction,
    seconds: float,
    chunks: list[tuple[int, int, int, int, int]],
    starts: tuple[int, ...],
) -> None:
    plan = plan_chunks(total, gop, per_chunk, rate, seconds)
    got = [
        (c.start_frame, c.end_frame, c.first_segment, c.segments, c.segment_files)
        for c in plan.chunks
    ]
    assert got == chunks
    assert plan.segment_starts == starts
    assert [c.index for c in plan.chunks] == list(range(len(chunks)))
    assert [c.last for c in plan.chunks] == [False] * (len(chunks) - 1) + [True]
    # The chunks tile the frames, each starts on a segment boundary, numbering is contiguous.
    assert plan.chunks[0].start_frame == 0 and plan.chunks[-1].end_frame == total
    for before, after in zip(plan.chunks, plan.chunks[1:], strict=False):
        assert before.end_frame == after.start_frame
        assert after.first_segment == before.first_segment + before.segments
    assert all(c.start_frame in starts for c in plan.chunks)
    assert sum(c.segments for c in plan.chunks) == len(starts)


def test_short_tail_is_finish_tracks_rule() -> None:
    # Less than half a segment, and at least two segments: 29 frames of 60 at 30 fps.
    assert short_tail(89, 60, Fraction(30), 2.0)
    assert not short_tail(90, 60, Fraction(30), 2.0)  # exactly half stays
    assert not short_tail(29, 60, Fraction(30), 2.0)  # a lone segment has nothing to join
    assert not short_tail(120, 60, Fraction(30), 2.0)  # no tail at all


@pytest.mark.parametrize("bad", [(0, 60, 2), (100, 0, 2), (100, 60, 0)])
def test_plan_rejects_nonsense(bad: tuple[int, int, int]) -> None:
    with pytest.raises(ValueError):
        plan_chunks(*bad, Fraction(30), 2.0)
