"""Split and stitch, the frame taps of one chunk (issue 15: the per-frame analyzers run where
their frames are, inside the chunk jobs; no second decode of the video for them).

The single pass's taps are sequential: the sampler (classifiers/sampling.py) takes a frame
depending on what it took before (the periodic grid, the last keyframe or scene sample, the
cap), and the thumbnail tap counts its storyboard slots and chains its poster candidates. A
chunk cannot know its predecessors' decisions, so it records what the merge needs to replay
them exactly (engine/tapmerge.py):

- every frame's sampling facts (`FrameFacts`: time, lone keyframe, histogram distance from the
  frame before, which the chunk decodes for that purpose: `lead`);
- the analyzers' output (moderation scores, PDQ hashes, the worst-frame thumbnails) for every
  frame the single pass *could* sample there, whatever happened before (`RangeSampler`): the
  periodic grid's frames (a function of time alone) and the keyframe and scene candidates that
  some earlier state would take (`min_scene_gap` after the last one taken: the possible last
  times are tracked as a small set, and a state unknown at the chunk's start only matters for
  its first `min_scene_gap` seconds);
- the storyboard's thumbnails of its slots, and the poster candidates with their scores
  (both slot counts and candidate times are functions of the frame times alone, replayed from
  frame 0 to the chunk's start).

Times are the taps' own, `n * frame_time` for output frame n.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from classifiers.base import Analyzer
from classifiers.moderation import ModerationAnalyzer
from classifiers.pdq import PdqAnalyzer
from classifiers.sampling import FrameFacts, FrameSampler, SamplingSpec, next_periodic, periodic_due
from engine.analysis import AnalysisSpec, build_analyzers, close_analyzers
from engine.thumbnails import ThumbnailTap, encode_jpeg, interest, thumb_size

TAPS_FILE = "taps.json"
ARTIFACTS = "analysis"  # in the chunk's folder: the candidates' worst-frame images
THUMBS_FILE = "thumbs.npy"
POSTER_PREFIX = "poster-"


class RangeSampler:
    """`take` answers True for every frame of the range that the single pass's sampler could
    sample (see the module doc), and records every frame's facts."""

    def __init__(
        self, spec: SamplingSpec, duration: float | None, start_frame: int, frame_time: float
    ) -> None:
        self.spec = spec
        self.probe = FrameSampler(spec, duration=duration)  # its facts() and its interval
        self.interval = self.probe.interval
        self.next_at = 0.0
        for n in range(start_frame):
            if periodic_due(n * frame_time, self.next_at):
                self.next_at = next_periodic(n * frame_time, self.interval)
        self.start = start_frame * frame_time
        # The possible times of the last keyframe/scene sample, and (not at frame 0) the
        # unknown one from before the chunk: any time below `self.start`, above `unknown_low`.
        self.states: set[float] = {-math.inf} if start_frame == 0 else set()
        self.unknown_low: float | None = None if start_frame == 0 else -math.inf
        self.facts: list[FrameFacts] = []
        self._last: tuple[float, bool] | None = None

    def lead(self, frame: Any, time: float) -> None:
        """The frame before the chunk's first: the previous histogram and keyframe flag."""
        self.probe.facts(frame, time)

    def take(self, frame: Any, time: float) -> bool:
        if self._last is not None and self._last[0] == time:
            return self._last[1]
        facts = self.probe.facts(frame, time)
        self.facts.append(facts)
        decision = self._possible(facts)
        self._last = (time, decision)
        return decision

    def _possible(self, facts: FrameFacts) -> bool:
        time = facts.time
        if periodic_due(time, self.next_at):
            self.next_at = next_periodic(time, self.interval)
            return True
        if facts.distance is None:
            return False
        if not (facts.lone_key or facts.distance > self.spec.scene_threshold):
            return False
        gap = self.spec.min_scene_gap
        takers = {last for last in self.states if time - last >= gap}
        unknown = self.unknown_low is not None and time - self.unknown_low >= gap
        if unknown:  # those that do not take it lie after time - gap (inclusive: a superset)
            self.unknown_low = time - gap if time - gap < self.start else None
        if not takers and not unknown:
            return False
        self.states = (self.states - takers) | {time}
        return True


class RangeThumbs:
    """The thumbnail tap's share of a chunk: its storyboard slots and poster candidates."""

    def __init__(self, folder: Path, start_frame: int, frame_time: float) -> None:
        self.folder = folder
        self.like = ThumbnailTap(folder)  # the single pass's settings
        self.slots = 0
        self.next_thumb = 0.0
        self.next_poster = 0.0
        self.seen = False  # whether the single pass's tap has a poster before this frame
        for n in range(start_frame):
            self._slot(n * frame_time)
            self._poster_due(n * frame_time)
        self.first_slot = self.slots
        self.thumbs: list[np.ndarray] = []
        self.size = (0, 0)
        self.posters: list[tuple[float, float, str]] = []

    def _slot(self, time: float) -> bool:
        if time >= self.next_thumb and self.slots < self.like.max_thumbs:
            self.slots += 1
            self.next_thumb = self.slots * self.like.interval
            return True
        return False

    def _poster_due(self, time: float) -> bool:
        if time >= self.next_poster and (time <= self.like.poster_window or not self.seen):
            self.seen = True
            self.next_poster = time + 0.5
            return True
        return False

    def on_video(self, frame: Any, time: float) -> None:
        if self._slot(time):
            self.size = thumb_size(frame.width, frame.height, self.like.long_side)
            small = frame.reformat(width=self.size[0], height=self.size[1], format="rgb24")
            self.thumbs.append(small.to_ndarray())
        if self._poster_due(time):
            name = f"{POSTER_PREFIX}{len(self.posters)}.jpg"
            (self.folder / name).write_bytes(encode_jpeg(frame, quality=2))
            self.posters.append((time, interest(frame), name))

    def close(self) -> dict[str, Any]:
        if self.thumbs:
            np.save(self.folder / THUMBS_FILE, np.stack(self.thumbs))
        return {
            "first_slot": self.first_slot,
            "count": len(self.thumbs),
            "size": list(self.size),
            "interval": self.like.interval,
            "columns": self.like.columns,
            "posters": self.posters,
        }


class RangeTaps:
    """A chunk's taps (thumbnails, moderation, PDQ) over output frames [start_frame, ...),
    recorded into `folder` (`TAPS_FILE` and the files it names) for engine/tapmerge.py."""

    def __init__(
        self,
        spec: AnalysisSpec | None,
        thumbnails: bool,
        duration: float,
        start_frame: int,
        frame_time: float,
        folder: Path,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.start_frame = start_frame
        self.thumbs = RangeThumbs(folder, start_frame, frame_time) if thumbnails else None
        frames = spec is not None and (spec.moderation is not None or spec.pdq is not None)
        self.sampler: RangeSampler | None = None
        self.analyzers: list[Analyzer] = []
        if spec is not None and frames:
            self.sampler = RangeSampler(spec.sampling, duration, start_frame, frame_time)
            # The fingerprint is the audio job's; images go with the chunk's files.
            images = str(folder / ARTIFACTS) if spec.artifacts_dir else None
            ranged = replace(spec, fingerprint=None, artifacts_dir=images)
            self.analyzers = build_analyzers(ranged, duration, self.sampler)
        self.led = start_frame == 0

    @property
    def taps(self) -> list[Any]:
        return [*([self.thumbs] if self.thumbs is not None else []), *self.analyzers]

    def lead(self, frame: Any, time: float) -> None:
        self.led = True
        if self.sampler is not None:
            self.sampler.lead(frame, time)

    def abort(self) -> None:
        close_analyzers(self.analyzers)

    def close(self) -> None:
        """Finish the analyzers and write `TAPS_FILE`."""
        if not self.led:
            raise RuntimeError(f"frame {self.start_frame - 1}, the chunk's lead, never came")
        record: dict[str, Any] = {"start_frame": self.start_frame}
        if self.sampler is not None:
            record["facts"] = [[f.time, f.lone_key, f.distance] for f in self.sampler.facts]
        for analyzer in self.analyzers:
            if isinstance(analyzer, ModerationAnalyzer):
                record["moderation"] = _moderation(analyzer)
            elif isinstance(analyzer, PdqAnalyzer):
                record["pdq"] = {
                    "hashes": [[h["time"], h] for h in analyzer.hashes],
                    "skipped_at": analyzer.skipped_at,
                    "timing": analyzer.result()["timing"],
                }
        if self.thumbs is not None:
            record["thumbs"] = self.thumbs.close()
        (self.folder / TAPS_FILE).write_text(json.dumps(record))


def _moderation(analyzer: ModerationAnalyzer) -> dict[str, Any]:
    """Every candidate's score row (exact: float32 or float64 values as JSON floats) and the
    thumbnails of all of them (the merge keeps the worst frames')."""
    times, rows, wait = analyzer.samples()
    images = analyzer.write_images(set(times)) if analyzer.artifacts_dir else {}
    return {
        "samples": [[t, [float(x) for x in row]] for t, row in zip(times, rows, strict=True)],
        "dtype": str(rows[0].dtype) if rows else "float32",
        "images": sorted(images.items()),
        "timing": analyzer.timing(wait),
        "error": analyzer.error,
    }
