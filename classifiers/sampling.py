"""Which decoded frames the safety analyzers look at (issue 5, "Keyframe moderation").

The spec asks for every keyframe plus at least one frame a second, capped per video. The taps
see the source's keyframe flags (they survive the filter graph; the encoders reset only the
picture type), and a cut that the source's encoder made no keyframe for is detected directly:

- a periodic sample every `1 / fps` seconds (stretched for long videos so the periodic samples
  fit in three quarters of the cap, spread over the whole video rather than its start);
- every keyframe of the source that the periodic samples do not already take, unless the frame
  before it was a keyframe too (an intra-only source, all keyframes, has none worth a sample);
- a scene-change sample when the luma histogram (32 bins, every 8th pixel of every 8th row of
  the Y plane, read in place: ~75 µs at 1080x1920) moves by more than `scene_threshold` in
  total-variation distance from the previous frame;
- keyframe and scene samples at least `min_scene_gap` seconds after the last of them (flashing
  content must not eat the cap) and only within the part of the cap the periodic samples
  leave; never more than `max_frames` in all.

One sampler is shared by the analyzers of one job (moderation and PDQ look at the same
frames); `take` remembers its last answer, so each analyzer can ask for the same frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

HISTOGRAM_BINS = 32
STRIDE = 8


@dataclass(frozen=True, slots=True)
class SamplingSpec:
    """Picklable sampling settings (they cross into the transcode's child process)."""

    fps: float = 1.0
    max_frames: int = 64
    scene_threshold: float = 0.35
    min_scene_gap: float = 0.5

    def __post_init__(self) -> None:
        if self.fps <= 0 or self.max_frames < 1:
            raise ValueError("sampling needs fps > 0 and max_frames >= 1")


@dataclass(frozen=True, slots=True)
class FrameFacts:
    """A frame as the sampler sees it: its time, whether it is a keyframe after a frame that
    was not, and its histogram's distance from the previous frame's (None: the first frame)."""

    time: float
    lone_key: bool
    distance: float | None


def periodic_due(time: float, next_at: float) -> bool:
    return time + 1e-6 >= next_at


def next_periodic(time: float, interval: float) -> float:
    """When the periodic sample after the one at `time` is due."""
    return (math.floor(time / interval + 1e-6) + 1) * interval


def luma_histogram(frame: Any) -> np.ndarray:
    """Normalized 32-bin histogram of a subsampled luma plane (8-bit planar YUV frames)."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    sub = rows[::STRIDE, : plane.width : STRIDE]
    counts = np.bincount((sub >> 3).ravel(), minlength=HISTOGRAM_BINS)
    return counts / max(1, counts.sum())


@dataclass
class FrameSampler:
    """Decides, frame by frame, which frames are sampled (see the module docstring)."""

    spec: SamplingSpec
    duration: float | None = None
    interval: float = 0.0
    next_periodic: float = 0.0
    last_extra: float = -math.inf  # the last keyframe or scene sample
    taken: int = 0
    reasons: dict[str, int] = field(
        default_factory=lambda: {"periodic": 0, "keyframe": 0, "scene": 0}
    )
    _previous: np.ndarray | None = None
    _previous_key: bool = True
    _last: tuple[float, bool] | None = None

    def __post_init__(self) -> None:
        self.interval = 1.0 / self.spec.fps
        if self.duration:
            periodic_budget = max(1, (self.spec.max_frames * 3) // 4)
            self.interval = max(self.interval, self.duration / periodic_budget)

    @property
    def extra_budget(self) -> int:
        if not self.duration:
            return self.spec.max_frames // 4
        periodic = math.floor(self.duration / self.interval) + 1
        return max(0, self.spec.max_frames - periodic)

    def take(self, frame: Any, time: float) -> bool:
        """Whether the frame at `time` is sampled; the same answer for repeated asks."""
        if self._last is not None and self._last[0] == time:
            return self._last[1]
        decision = self._decide(frame, time)
        self._last = (time, decision)
        return decision

    def _decide(self, frame: Any, time: float) -> bool:
        return self.decide(self.facts(frame, time))

    def facts(self, frame: Any, time: float) -> FrameFacts:
        """What the decision needs of the frame, given the frame before it (the state this
        keeps between frames: its histogram and its keyframe flag)."""
        histogram = luma_histogram(frame)
        previous, self._previous = self._previous, histogram
        key = bool(getattr(frame, "key_frame", False))
        lone_key, self._previous_key = key and not self._previous_key, key
        distance = None if previous is None else 0.5 * float(np.abs(histogram - previous).sum())
        return FrameFacts(time, lone_key, distance)

    def decide(self, facts: FrameFacts) -> bool:
        """The decision on a frame from its facts and the samples taken before it (a chunked
        job replays it on the facts its chunks recorded: engine/tapmerge.py)."""
        time = facts.time
        if self.taken >= self.spec.max_frames:
            return False
        if periodic_due(time, self.next_periodic):
            self.next_periodic = next_periodic(time, self.interval)
            return self._count("periodic", time)
        if facts.distance is None or self.taken - self.reasons["periodic"] >= self.extra_budget:
            return False
        if time - self.last_extra < self.spec.min_scene_gap:
            return False
        if facts.lone_key:
            reason = "keyframe"
        elif facts.distance > self.spec.scene_threshold:
            reason = "scene"
        else:
            return False
        self.last_extra = time
        return self._count(reason, time)

    def _count(self, reason: str, time: float) -> bool:
        self.taken += 1
        self.reasons[reason] += 1
        return True
