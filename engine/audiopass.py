"""An audio-only pass: the audio rendition encoded again from the source with another gain plan.

The loudness check (engine/loudness.py `correct_plan`) asks for it when the encoded track misses
its target or true-peak ceiling (the AAC encoder overshoots on hard onsets; it also cuts the top
octave, which takes loudness off bright sources). Only the audio stream is decoded (the video
packets are demuxed and dropped), through the same AudioGraph as the single decode, with the
same start shift and length, so the new track lines up with the video exactly as the first did.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from engine.encode import AudioEncoder
from engine.graphs import AudioGraph
from engine.loudness import (
    GainPlan,
    Loudness,
    LoudnessSpec,
    correct_plan,
    decoded_frames,
    measure_track,
)
from engine.source import SourceInfo
from ladders.model import AudioRung


def audio_sample_count(source: SourceInfo, frame_rate: Fraction, rung: AudioRung) -> int:
    """The audio track's length in samples: the video's, as engine/pipeline.py
    `run_single_pass` sizes it (output frames at the CFR rate)."""
    duration = Fraction(source.duration).limit_denominator(100000)
    expected_frames = max(1, round(duration * frame_rate))
    return round(expected_frames / frame_rate * rung.sample_rate)


def encode_audio(
    source: SourceInfo,
    rung: AudioRung,
    frame_rate: Fraction,
    fragment_seconds: float,
    plan: GainPlan | None,
    track_dir: Path,
    taps: Sequence[Any] = (),
) -> None:
    """Encode the source's audio alone into `track_dir` (a fresh folder) under `plan` (None: no
    level filters): the audio track of the single pass, or of a chunked job (engine/chunked.py).
    `taps` get every encoded frame as the single pass's audio taps do (`on_audio`)."""
    encoder = AudioEncoder(track_dir, rung, fragment_seconds)
    encoder.start()
    try:
        with av.open(source.path, mode="r", metadata_errors="ignore") as container:
            stream: Any = container.streams.audio[0]
            shift = round(source.start_time / stream.time_base)  # as engine/decode.py
            graph: AudioGraph | None = None
            for frame in decoded_frames(container, stream):
                frame.pts -= shift
                if graph is None:
                    graph = AudioGraph(
                        frame,
                        stream.time_base,
                        rung,
                        audio_sample_count(source, frame_rate, rung),
                        level_filters=plan.filters() if plan is not None else (),
                    )
                graph.push(frame)
                for out in graph.pull_all():
                    encoder.put(out)
                    for tap in taps:
                        tap.on_audio(out, out.pts / out.sample_rate)
            if graph is not None:
                graph.push(None)
                for out in graph.pull_all():
                    encoder.put(out)
                    for tap in taps:
                        tap.on_audio(out, out.pts / out.sample_rate)
    finally:
        encoder.finish()


def reencode_audio(
    source: SourceInfo,
    rung: AudioRung,
    frame_rate: Fraction,
    fragment_seconds: float,
    plan: GainPlan,
    track_dir: Path,
) -> None:
    """Encode the source's audio into `track_dir` (replacing what is there) under `plan`."""
    scratch = track_dir.with_name(f".{track_dir.name}.again")
    shutil.rmtree(scratch, ignore_errors=True)
    encode_audio(source, rung, frame_rate, fragment_seconds, plan, scratch)
    shutil.rmtree(track_dir)
    scratch.rename(track_dir)


def check_output(
    source: SourceInfo,
    rung: AudioRung,
    frame_rate: Fraction,
    fragment_seconds: float,
    spec: LoudnessSpec,
    measured: Loudness,
    plan: GainPlan,
    track_dir: Path,
) -> tuple[GainPlan, Loudness]:
    """Measure the encoded track; if it missed the target or the true-peak ceiling, encode the
    audio once more with the corrected plan and measure that. The plan used and the output."""
    output = measure_track(track_dir)
    again = correct_plan(measured, plan, output, spec)
    if again is None:
        return plan, output
    reencode_audio(source, rung, frame_rate, fragment_seconds, again, track_dir)
    return again, measure_track(track_dir)
