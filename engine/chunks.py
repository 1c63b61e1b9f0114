"""Split and stitch, the plan: a source's output frames cut at segment boundaries into chunks
of whole segments, each encoded on its own (engine/chunked.py) and stitched back into one
presentation (engine/stitch.py) with exactly the segments the single pass would have made.

Segments are GOPs: output frame `k * gop_frames` starts segment k+1 (engine/encoders.py). The
last one holds what is left; when that lasts less than half a segment, packager/timeline.py
`merge_short_tail` appends it to the one before. The plan makes the same merge, so it never
plans a chunk that would be only such a tail: the last chunk takes the remainder, tail included,
and the stitch's `finish_tracks` merges its two last segment files as the single pass does.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True, slots=True)
class Chunk:
    """Output frames [start_frame, end_frame) of the presentation, a whole number of segments.

    Frame numbers are on the global output timeline: frame n presents at n / frame_rate and is
    the encoder's pts n. `first_segment` is the 1-based number of the chunk's first segment
    file (`segment_name`); `segments` how many segments the chunk ends up as (after the
    tail merge), `segment_files` how many files its encoder writes (one more when it ends with
    the short tail that the stitch merges)."""

    index: int
    start_frame: int
    end_frame: int
    first_segment: int
    segments: int
    segment_files: int
    last: bool

    @property
    def frames(self) -> int:
        return self.end_frame - self.start_frame


@dataclass(frozen=True, slots=True)
class ChunkPlan:
    total_frames: int
    gop_frames: int
    segment_starts: tuple[int, ...]  # output frame of each segment's first frame, after merging
    chunks: tuple[Chunk, ...]

    @property
    def tail_merged(self) -> bool:
        return len(self.segment_starts) < -(-self.total_frames // self.gop_frames)


def short_tail(
    total_frames: int, gop_frames: int, frame_rate: Fraction, segment_seconds: float
) -> bool:
    """Whether the last segment is merged into the one before (packager/timeline.py
    `merge_short_tail`: there are two or more and the last lasts less than half a segment)."""
    count = -(-total_frames // gop_frames)
    tail = total_frames - (count - 1) * gop_frames
    half = Fraction(segment_seconds).limit_denominator(1_000_000) / 2
    return count >= 2 and tail / frame_rate < half


def plan_chunks(
    total_frames: int,
    gop_frames: int,
    segments_per_chunk: int,
    frame_rate: Fraction,
    segment_seconds: float,
) -> ChunkPlan:
    """Chunks of `segments_per_chunk` segments of `gop_frames` frames each over `total_frames`
    output frames; the last chunk takes the remainder (and a short tail)."""
    if total_frames < 1 or gop_frames < 1 or segments_per_chunk < 1:
        raise ValueError(
            f"need positive frames, GOP and chunk size: {total_frames}, {gop_frames}, "
            f"{segments_per_chunk}"
        )
    files = -(-total_frames // gop_frames)
    merged = short_tail(total_frames, gop_frames, frame_rate, segment_seconds)
    starts = tuple(k * gop_frames for k in range(files - merged))
    chunks = []
    for index, first in enumerate(range(0, len(starts), segments_per_chunk)):
        count = min(segments_per_chunk, len(starts) - first)
        last = first + count == len(starts)
        chunks.append(
            Chunk(
                index=index,
                start_frame=starts[first],
                end_frame=total_frames if last else starts[first + count],
                first_segment=first + 1,
                segments=count,
                segment_files=count + (merged and last),
                last=last,
            )
        )
    return ChunkPlan(total_frames, gop_frames, starts, tuple(chunks))
