"""`transcode`: probe → policy → one decode → every rung encoded in the same pass → CMAF
segments → HLS + DASH manifests, poster and storyboard, download.mp4 (a remux), report.json.

Outputs are staged in a sibling folder and renamed into place only when everything is
written, so a failed or rejected job never leaves a partial output behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

from engine.analysis import AnalysisSpec, build_analyzers, close_analyzers, collect_results
from engine.audiopass import check_output
from engine.decode import SingleDecode
from engine.encode import AudioEncoder, VideoEncoder
from engine.encoders import (
    DEFAULT_PRESET,
    gop_frames_for,
    select_encoder,
    thread_plan,
    usable_cpus,
)
from engine.errors import EngineError, UndecodableError
from engine.graphs import AudioGraph, VideoGraph
from engine.hdr import ToneMapSettings, not_applied, plan_tone_map
from engine.loudness import GainPlan, LoudnessSpec, loudness_report, plan_source
from engine.policy import InputPolicy
from engine.report import build_report, timing_report
from engine.sandbox import ProgressFn
from engine.source import SourceInfo, probe
from engine.thumbnails import ThumbnailTap
from ladders import AudioRung, choose_ladder
from packager.cmaf import describe_track
from packager.manifests import write_manifests
from packager.progressive import write_download
from packager.timeline import finish_tracks


class FrameConsumer(Protocol):
    """A tap on the single decode: sees every upright output frame of the largest rung.

    A tap that also defines `on_audio(frame, time)` gets every audio frame as the AAC encoder
    does (48 kHz stereo float planar, aligned with the video), e.g. for fingerprinting.
    """

    def on_video(self, frame: Any, time: float) -> None: ...


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


def probe_and_check(path: Path, policy: InputPolicy) -> SourceInfo:
    policy.check_file_size(path.stat().st_size)
    source = probe(path, max_scan_seconds=policy.max_duration + 5)
    policy.enforce(source)
    return source


def prepare_outdir(outdir: Path) -> Path:
    """A fresh staging folder next to `outdir`; `outdir` must not hold anything yet."""
    if outdir.exists() and (not outdir.is_dir() or any(outdir.iterdir())):
        raise EngineError(f"output folder {outdir} exists and is not empty")
    outdir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{outdir.name}.partial-", dir=outdir.parent))


def publish_outdir(staging: Path, outdir: Path) -> None:
    if outdir.exists():
        outdir.rmdir()
    staging.rename(outdir)


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
    expected_frames = max(
        1, round(Fraction(source.duration).limit_denominator(100000) * frame_rate)
    )
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
    rungs = choose_ladder(source)
    audio_rung = AudioRung() if source.audio is not None else None
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
            for rung, s in zip(rungs, settings, strict=True)
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
            measured, plan = source_loudness, gain
            gain, output_loudness = clock.run(
                "loudness_output",
                lambda: check_output(
                    source,
                    audio_rung,
                    frame_rate,
                    options.segment_seconds,
                    loud,
                    measured,
                    plan,
                    staging / audio_rung.name,
                ),
            )
        output_duration = decode_stats["output_frames"] / frame_rate
        thumbs = (
            clock.run("thumbnails", lambda: thumbnails.close(float(output_duration)))
            if options.thumbnails
            else {}
        )

        def package() -> tuple[list[Any], Any]:
            finish_tracks(
                [staging / rung.name for rung in rungs],
                staging / audio_rung.name if audio_rung is not None else None,
                options.segment_seconds,
            )
            tracks = [describe_track(staging / rung.name, rung.name) for rung in rungs]
            audio_track = (
                describe_track(staging / audio_rung.name, audio_rung.name)
                if audio_rung is not None
                else None
            )
            write_manifests(staging, tracks, audio_track)
            return tracks, audio_track

        video_tracks, audio_track = clock.run("package", package)
        download = (
            clock.run("download", lambda: write_download(staging, video_tracks, audio_track))
            if options.download
            else None
        )
        clock.seconds["total"] = round(time.perf_counter() - started, 4)
        report = build_report(
            source,
            rungs,
            settings,
            audio_rung,
            video_tracks,
            audio_track,
            frame_rate,
            decode_stats,
            thumbs,
            clock.seconds,
            staging,
        )
        report["timing"] = timing_report(source, frame_rate, decode_stats)
        if analysis is not None:
            report["analysis"] = analysis
        if download is not None:
            report["output"]["download"] = download.to_json()  # its time: stages.download
        tone_map = plan_tone_map(source.color, options.tone_map)
        report["tone_mapping"] = (
            tone_map.to_json() if tone_map is not None else not_applied(source.color)
        )
        if audio_rung is not None:
            report["loudness"] = loudness_report(loud, source_loudness, gain, output_loudness)
        (staging / "report.json").write_text(json.dumps(report, indent=2) + "\n")
        publish_outdir(staging, outdir)
        return report
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
