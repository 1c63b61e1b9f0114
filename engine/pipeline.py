"""`transcode`: probe → policy → one decode → every rung encoded in the same pass → CMAF
segments → HLS + DASH manifests, poster and storyboard, download.mp4 (a remux), report.json.

Outputs are staged in a sibling folder and renamed into place only when everything is
written, so a failed or rejected job never leaves a partial output behind.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from engine.analysis import build_analyzers, close_analyzers, collect_results
from engine.audiopass import check_output
from engine.decode import SingleDecode
from engine.encode import AudioEncoder, VideoEncoder
from engine.errors import UndecodableError
from engine.graphs import AudioGraph, VideoGraph
from engine.hdr import plan_tone_map
from engine.loudness import GainPlan, plan_source
from engine.options import StageClock, TranscodeOptions, plan_encoders, planned_frames
from engine.outputs import (
    discard_staging,
    package,
    prepare_outdir,
    publish_outdir,
    write_report,
)
from engine.policy import InputPolicy
from engine.sandbox import ProgressFn
from engine.source import SourceInfo, probe
from engine.thumbnails import ThumbnailTap

__all__ = ["FrameConsumer", "TranscodeOptions", "finish_all", "run_single_pass", "transcode"]


class FrameConsumer(Protocol):
    """A tap on the single decode: sees every upright output frame of the largest rung.

    A tap that also defines `on_audio(frame, time)` gets every audio frame as the AAC encoder
    does (48 kHz stereo float planar, aligned with the video), e.g. for fingerprinting.
    """

    def on_video(self, frame: Any, time: float) -> None: ...


def probe_and_check(path: Path, policy: InputPolicy) -> SourceInfo:
    policy.check_file_size(path.stat().st_size)
    source = probe(path, max_scan_seconds=policy.max_duration + 5)
    policy.enforce(source)
    return source


def finish_all(encoders: Sequence[Any]) -> None:
    """Flush every encoder at once, even when one fails; raise the first failure."""
    for encoder in encoders:
        encoder.stop()
    failure: BaseException | None = None
    for encoder in encoders:
        try:
            encoder.finish()
        except BaseException as exc:
            failure = failure or exc
    if failure is not None:
        raise failure


def run_single_pass(
    source: SourceInfo,
    video: Sequence[VideoEncoder],
    audio: AudioEncoder | None,
    frame_rate: Fraction,
    options: TranscodeOptions,
    taps: Sequence[FrameConsumer],
    progress: ProgressFn | None,
    audio_gain: GainPlan | None = None,
) -> dict[str, Any]:
    """Decode once; feed every rung's encoder, the audio encoder and the taps."""
    deadline = time.monotonic() + options.policy.max_wall_seconds
    expected_frames = planned_frames(source, frame_rate)
    audio_samples = round(expected_frames / frame_rate * audio.rung.sample_rate) if audio else 0
    video_graph: VideoGraph | None = None
    audio_graph: AudioGraph | None = None
    rungs = [encoder.rung for encoder in video]
    frame_time = float(1 / frame_rate)
    out_frames = 0

    def feed_video(frames_per_rung: list[list[Any]]) -> None:
        nonlocal out_frames
        for encoder, frames in zip(video, frames_per_rung, strict=True):
            for frame in frames:
                encoder.put(frame)
        for frame in frames_per_rung[0]:
            out_frames += 1
            for tap in taps:
                tap.on_video(frame, frame.pts * frame_time)
        if progress is not None and frames_per_rung[0]:
            progress(min(1.0, out_frames / expected_frames))

    audio_taps = [tap for tap in taps if callable(getattr(tap, "on_audio", None))]

    def feed_audio(frames: list[Any]) -> None:
        assert audio is not None
        for frame in frames:
            audio.put(frame)
            for tap in audio_taps:
                tap.on_audio(frame, frame.pts / frame.sample_rate)  # type: ignore[attr-defined]

    # Each frame is pushed once the next one arrives, so the last one can be given the
    # duration the probe measured: the `fps` filter repeats it up to that end, not to the end
    # its packet claims (a gap between decode timestamps, engine/timing.py).
    held_back: Any = None
    with SingleDecode(source, deadline=deadline) as decode:
        for kind, frame in decode.frames():
            if kind == "video":
                if video_graph is None:
                    video_graph = VideoGraph(
                        frame,
                        decode.video.time_base,
                        source.rotation,
                        frame_rate,
                        rungs,
                        threads=options.filter_threads,
                        tone_map=plan_tone_map(source.color, options.tone_map),
                    )
                if held_back is not None:
                    video_graph.push(held_back)
                    feed_video(video_graph.pull_all())
                held_back = frame
            elif audio is not None:
                if audio_graph is None:
                    audio_graph = AudioGraph(
                        frame,
                        decode.audio.time_base,
                        audio.rung,
                        audio_samples,
                        level_filters=audio_gain.filters() if audio_gain else (),
                    )
                audio_graph.push(frame)
                feed_audio(audio_graph.pull_all())
        stats = decode.stats
        video_time_base = decode.video.time_base
    if video_graph is None:
        raise UndecodableError("undecodable video stream: no frame decoded")
    end = round(Fraction(source.duration).limit_denominator(100000) / video_time_base)
    if end > held_back.pts:
        held_back.duration = end - held_back.pts
    video_graph.push(held_back)
    video_graph.push(None)
    feed_video(video_graph.pull_all())
    if audio is not None:
        if audio_graph is None:
            raise UndecodableError("undecodable audio stream: no audio frame decoded")
        audio_graph.push(None)
        feed_audio(audio_graph.pull_all())
    if out_frames < expected_frames // 2:
        raise UndecodableError(
            f"undecodable video stream: only {out_frames} of {expected_frames} frames decoded"
        )
    return {
        "packets": stats.packets,
        "decoded_video_frames": stats.video_frames,
        "decoded_audio_frames": stats.audio_frames,
        "decode_errors": stats.errors,
        "output_frames": out_frames,
        "expected_frames": expected_frames,
        "audio_packets_skipped": stats.audio_packets_skipped,
    }


def transcode(
    input_path: str | Path,
    outdir: str | Path,
    options: TranscodeOptions | None = None,
    progress: ProgressFn | None = None,
    taps: Sequence[FrameConsumer] = (),
) -> dict[str, Any]:
    """Run the whole job; return the report (also written to OUTDIR/report.json)."""
    options = options or TranscodeOptions()
    input_path, outdir = Path(input_path), Path(outdir)
    clock = StageClock()
    started = time.perf_counter()
    source = clock.run("probe", lambda: probe_and_check(input_path, options.policy))
    plan = plan_encoders(source, options)
    rungs, audio_rung, frame_rate = plan.rungs, plan.audio_rung, plan.frame_rate
    staging = prepare_outdir(outdir)
    try:
        # Measured before the single decode starts: an audio-only pass (no video decoded).
        loud = options.loudness
        source_loudness, gain = (
            clock.run("loudness_measure", lambda: plan_source(source.path, source.duration, loud))
            if audio_rung is not None and loud.enabled
            else (None, None)
        )
        video = [
            VideoEncoder(staging / rung.name, rung, s, options.segment_seconds)
            for rung, s in zip(rungs, plan.settings, strict=True)
        ]
        audio = (
            AudioEncoder(staging / audio_rung.name, audio_rung, options.segment_seconds)
            if audio_rung is not None
            else None
        )
        encoders = [*video, *([audio] if audio is not None else [])]
        thumbnails = ThumbnailTap(staging)
        frame_taps = [thumbnails, *taps] if options.thumbnails else list(taps)
        # Built here, in the job's (child) process: they hold sessions and threads.
        spec = options.analysis
        analyzers = (
            clock.run("analysis_setup", lambda: build_analyzers(spec, source.duration))
            if spec is not None and spec.enabled
            else []
        )
        frame_taps += analyzers
        for encoder in encoders:
            encoder.start()
        try:
            decode_stats = clock.run(
                "decode_encode",
                lambda: run_single_pass(
                    source,
                    video,
                    audio,
                    frame_rate,
                    options,
                    frame_taps,
                    progress,
                    gain,
                ),
            )
        except BaseException:
            close_analyzers(analyzers)
            raise
        finally:
            clock.run("encoder_flush", lambda: finish_all(encoders))
        analysis = clock.run("analysis", lambda: collect_results(analyzers)) if analyzers else None
        output_loudness = None
        if audio_rung is not None and source_loudness is not None and gain is not None:
            measured, first_plan = source_loudness, gain
            gain, output_loudness = clock.run(
                "loudness_output",
                lambda: check_output(
                    source,
                    audio_rung,
                    frame_rate,
                    options.segment_seconds,
                    loud,
                    measured,
                    first_plan,
                    staging / audio_rung.name,
                ),
            )
        output_duration = decode_stats["output_frames"] / frame_rate
        thumbs = (
            clock.run("thumbnails", lambda: thumbnails.close(float(output_duration)))
            if options.thumbnails
            else {}
        )
        tracks = package(staging, plan, options, clock)
        clock.seconds["total"] = round(time.perf_counter() - started, 4)
        report = write_report(
            staging,
            source,
            plan,
            options,
            tracks,
            decode_stats,
            thumbs,
            clock.seconds,
            (source_loudness, gain, output_loudness),
            {"analysis": analysis} if analysis is not None else None,
        )
        publish_outdir(staging, outdir)
        return report
    except BaseException:
        discard_staging(staging)
        raise
