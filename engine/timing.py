"""Frame timing from presentation timestamps: how long a video lasts, whether its frame rate
varies, and the constant rate to encode it at.

Every frame lasts until the next one is presented (ISO/IEC 14496-12 §8.6.1.3: composition
times), so durations come from the sorted pts, never from packet durations: in a stream with
B-frames a packet's duration is the gap between decode timestamps (§8.6.1.2, `stts`), which
after a held frame lands on the wrong picture. Only the last frame, having no successor, keeps
its own packet duration (or one typical interval when the container gives none).

A held frame (a paused screen recording, a photo opening a slideshow) is one interval of at
least `HELD_FACTOR` typical intervals. It makes the stream variable-rate however rare it is,
and it must not drag the output rate down: the rate to encode at is that of the moving frames
(the intervals that are not held), or the peak rate sustained over `PEAK_WINDOW` seconds when
that is clearly higher (a clip whose rate steps between 30 and 60 fps).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

# Common rates that measured rates snap to (NTSC rates included).
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(r)
    for r in (
        "10",
        "12",
        "15",
        "24000/1001",
        "24",
        "25",
        "30000/1001",
        "30",
        "48",
        "50",
        "60000/1001",
        "60",
        "90",
        "100",
        "120000/1001",
        "120",
    )
)
# Share of frame intervals that may stray from the median before a stream counts as VFR.
VFR_OUTLIER_SHARE = 0.02
# An interval this many typical intervals long is a held frame (at least one frame repeated).
HELD_FACTOR = 2
# The peak rate: the rate sustained over windows this long, at this quantile of the windows
# (so a glitch of a few frames is not the peak), used when it beats the moving frames' average
# by `PEAK_MARGIN` (so the timestamp jitter of a constant-rate camera is not a peak).
PEAK_WINDOW = 0.25
PEAK_QUANTILE = 0.9
PEAK_MARGIN = Fraction(5, 4)


@dataclass(frozen=True, slots=True)
class FrameTiming:
    """The timing of one video stream; times in seconds, rates in frames per second."""

    count: int
    start: float  # presentation time of the first frame
    end: float  # presentation end of the last frame
    average_rate: Fraction  # frames / (end - start): held frames drag it down
    nominal_rate: Fraction  # the rate of the moving frames, snapped: what the output keeps
    variable: bool
    held_frames: int  # frames shown for at least HELD_FACTOR typical intervals
    longest_frame: float  # the longest time one frame is shown

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def snap_rate(rate: Fraction) -> Fraction:
    """A measured rate, snapped to the nearest standard rate within 1 %, else to a whole number."""
    nearest = min(STANDARD_RATES, key=lambda standard: abs(rate - standard))
    if abs(rate - nearest) <= nearest / 100:
        return nearest
    return Fraction(max(1, round(rate)))


def frame_timing(
    stamps: Sequence[int], time_base: Fraction, last_duration: int | None
) -> FrameTiming | None:
    """Timing of a stream from its packets' pts (any order, in `time_base` units) and the
    duration of the packet presented last; None when there is no frame at all."""
    if not stamps:
        return None
    pts = sorted(stamps)
    tb = float(time_base)
    intervals = [b - a for a, b in itertools.pairwise(pts) if b > a]
    median = sorted(intervals)[len(intervals) // 2] if intervals else 0
    last = last_duration if last_duration and last_duration > 0 else median
    start, end = pts[0] * tb, (pts[-1] + last) * tb
    span = end - start
    held = [d for d in [*intervals, last] if median and d >= HELD_FACTOR * median]
    strays = sum(1 for d in intervals if abs(d - median) > max(1, median // 10))
    variable = bool(held) or strays > VFR_OUTLIER_SHARE * len(intervals)
    average = Fraction(len(pts) / span).limit_denominator(1001) if span > 0 else Fraction(0)
    if not variable:
        nominal = snap_rate(average) if average else Fraction(0)
    else:
        nominal = snap_rate(moving_rate(pts, intervals, median, tb) or average)
    return FrameTiming(
        count=len(pts),
        start=start,
        end=end,
        average_rate=average if variable else nominal,
        nominal_rate=nominal,
        variable=variable,
        held_frames=len(held),
        longest_frame=max([*intervals, last]) * tb,
    )


def moving_rate(pts: Sequence[int], intervals: Sequence[int], median: int, tb: float) -> Fraction:
    """The rate of the frames that move: the average over the intervals that are not held,
    or the peak sustained rate when it is clearly higher; 0 when nothing moves."""
    moving = [d for d in intervals if d < HELD_FACTOR * median]
    if not moving:
        return Fraction(0)
    base = Fraction(len(moving) / (sum(moving) * tb)).limit_denominator(1001)
    peak = peak_rate([p * tb for p in pts])
    return peak if peak > base * PEAK_MARGIN else base


def peak_rate(times: Sequence[float]) -> Fraction:
    """The `PEAK_QUANTILE` of the rates sustained over `PEAK_WINDOW`-second windows."""
    rates: list[float] = []
    for i, t in enumerate(times):
        j = bisect.bisect_left(times, t + PEAK_WINDOW - 1e-9, lo=i + 1)
        if j >= len(times):
            break
        rates.append((j - i) / (times[j] - t))
    if not rates:
        return Fraction(0)
    rates.sort()
    value = rates[math.floor(PEAK_QUANTILE * (len(rates) - 1))]
    return Fraction(value).limit_denominator(1001)
