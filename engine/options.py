"""What a transcode is asked to do (`TranscodeOptions`), the encoders it opens for a source
(`plan_encoders`), and the clock its stages are timed with; shared by the single pass
(engine/pipeline.py) and the chunked one (engine/chunked.py, engine/stitch.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from engine.analysis import AnalysisSpec
from engine.encoders import (
    DEFAULT_PRESET,
    EncoderSettings,
    gop_frames_for,
    select_encoder,
    thread_plan,
    usable_cpus,
)
from engine.hdr import ToneMapSettings
from engine.loudness import LoudnessSpec
from engine.policy import InputPolicy
from engine.source import SourceInfo
from ladders import AudioRung, Rung, choose_ladder


@dataclass(frozen=True, slots=True)
class TranscodeOptions:
    segment_seconds: float = 2.0
    preset: str = DEFAULT_PRESET
    encoder: str = "auto"
    policy: InputPolicy = field(default_factory=InputPolicy)
    # Slice threads of the scaling graph; 0: FFmpeg's auto (one per CPU). One is the default:
    # the encoders keep every core busy anyway, and slicing the cascade's scales cost 30 % more
    # CPU for the same work (measured on the bench source: 0.87 vs 1.14 CPU-s per 300 frames).
    filter_threads: int = 1
    # Frame threads per rung's x264 encoder: None sizes them by `thread_plan` for the CPUs
    # this process may use; 0 leaves each to x264 (a pool sized for the whole machine).
    encoder_threads: int | None = None
    thumbnails: bool = True
    # Content analysis on the same decode (engine/analysis.py); None: none.
    analysis: AnalysisSpec | None = None
    # download.mp4: the 720p rung + audio remuxed into a progressive MP4 (packager/progressive.py).
    download: bool = True
    # HDR (PQ, HLG) → SDR BT.709 tone mapping (engine/hdr.py); None: HDR passes untouched.
    tone_map: ToneMapSettings | None = field(default_factory=ToneMapSettings)
    # Loudness normalization of the audio rendition (engine/loudness.py).
    loudness: LoudnessSpec = field(default_factory=LoudnessSpec)


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)


@dataclass(frozen=True, slots=True)
class EncodePlan:
    """The renditions of one source: the ladder, each rung's encoder settings, the audio rung."""

    rungs: list[Rung]
    settings: list[EncoderSettings]
    audio_rung: AudioRung | None
    frame_rate: Fraction  # the CFR output rate
    gop_frames: int  # = frames per segment


def plan_encoders(source: SourceInfo, options: TranscodeOptions) -> EncodePlan:
    rungs = choose_ladder(source)
    profile = select_encoder(options.encoder)
    frame_rate = source.output_frame_rate
    gop = gop_frames_for(frame_rate, options.segment_seconds)
    threads = (
        thread_plan(rungs, usable_cpus())
        if options.encoder_threads is None
        else [options.encoder_threads] * len(rungs)
    )
    settings = [
        profile.settings(rung, frame_rate, gop, options.preset, n)
        for rung, n in zip(rungs, threads, strict=True)
    ]
    audio_rung = AudioRung() if source.audio is not None else None
    return EncodePlan(rungs, settings, audio_rung, frame_rate, gop)


def planned_frames(source: SourceInfo, frame_rate: Fraction) -> int:
    """Output frames the source should give at `frame_rate` (its probed duration, rounded)."""
    return max(1, round(Fraction(source.duration).limit_denominator(100000) * frame_rate))
